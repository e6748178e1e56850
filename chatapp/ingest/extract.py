"""Text out of a file, in sections that follow its structure (a PDF's pages, headings,
code blocks), or an ExtractError with one line a person can read.

Every problem a file can have (encrypted, no text layer, binary, too large, a zip bomb,
damaged) is an ExtractError: the indexer writes its line in the collection's report and
goes on with the next file.
"""

from __future__ import annotations

import hashlib
import html.parser
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_FILE_BYTES = 64 * 1024 * 1024  # larger files are reported, not read
MAX_DOCX_UNPACKED = 256 * 1024 * 1024  # a DOCX that unpacks to more is a zip bomb
MAX_DOCX_RATIO = 200  # ... or one that compresses better than this

MARKDOWN = {".md", ".markdown", ".mdown", ".mkd"}
HTML = {".html", ".htm", ".xhtml"}
TEXT = {".txt", ".text", ".rst", ".csv", ".tsv", ".log", ".org", ".adoc", ".tex", ".ini", ".cfg"}
CODE = {
    ".py", ".pyi", ".js", ".jsx", ".ts", ".tsx", ".c", ".h", ".cc", ".cpp", ".hpp", ".cxx",
    ".rs", ".go", ".java", ".kt", ".swift", ".rb", ".php", ".cs", ".m", ".scala", ".lua",
    ".sh", ".bash", ".zsh", ".ps1", ".sql", ".r", ".jl", ".hs", ".ml", ".ex", ".exs",
    ".toml", ".yaml", ".yml", ".json", ".xml", ".css", ".scss", ".vue", ".svelte", ".dart",
}  # fmt: skip
SUPPORTED = MARKDOWN | HTML | TEXT | CODE | {".pdf", ".docx"}


class ExtractError(Exception):
    """A file that cannot be read as text; str() is the line for the report."""


@dataclass(frozen=True)
class Section:
    """A piece of a document that chunks never cross: a page, or the text under a heading.
    code: a code block or a source file (chunks keep its lines whole)."""

    text: str
    page: int | None = None  # 1-based, PDFs only
    heading: str = ""  # "Title > Subtitle"
    code: bool = False


@dataclass(frozen=True)
class Document:
    path: Path
    kind: str  # pdf, docx, markdown, html, text, code
    sha256: str
    size: int
    sections: list[Section] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(s.text for s in self.sections if s.text.strip())


def kind_of(path: Path) -> str | None:
    """The kind of file by its name, or None for one this does not read."""
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix == ".docx":
        return "docx"
    if suffix in MARKDOWN:
        return "markdown"
    if suffix in HTML:
        return "html"
    if suffix in CODE:
        return "code"
    if suffix in TEXT:
        return "text"
    return None


def read_bytes(path: Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ExtractError(os_reason(e)) from e
    if size > max_bytes:
        raise ExtractError(f"too large ({_mb(size)}; the limit is {_mb(max_bytes)})")
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ExtractError(os_reason(e)) from e
    if len(data) > max_bytes:
        raise ExtractError(f"too large (over {_mb(max_bytes)})")
    return data


def extract(path: Path, data: bytes | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> Document:
    """The document's text in sections. data: the file's bytes when already read."""
    kind = kind_of(path) or "text"
    if data is None:
        data = read_bytes(path, max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        sections = _pdf(data)
    elif kind == "docx":
        sections = _docx(data)
    else:
        text = _decode(data)
        if kind == "markdown":
            sections = markdown_sections(text)
        elif kind == "html":
            sections = _html(text)
        else:
            sections = [Section(text, code=kind == "code")]
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise ExtractError("no text")
    return Document(path, kind, sha, len(data), sections)


def _decode(data: bytes) -> str:
    head = data[:8192]
    if b"\x00" in head:
        raise ExtractError("binary data, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > len(text[:8192]) * 0.05:
        raise ExtractError("binary data, not text")
    return text


# -- Markdown ---------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_sections(text: str) -> list[Section]:
    """Sections under each heading; a fenced code block is a section of its own."""
    out: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    fence: list[str] | None = None
    fence_mark = ""

    def heading() -> str:
        return " > ".join(t for _, t in path)

    def flush() -> None:
        if lines and "".join(lines).strip():
            out.append(Section("\n".join(lines).strip(), heading=heading()))
        lines.clear()

    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence is not None:
            fence.append(line)
            if m and m.group(1) == fence_mark:
                out.append(Section("\n".join(fence), heading=heading(), code=True))
                fence = None
            continue
        if m:
            flush()
            fence, fence_mark = [line], m.group(1)
            continue
        h = _HEADING.match(line)
        if h:
            flush()
            level = len(h.group(1))
            path = [(lv, t) for lv, t in path if lv < level] + [(level, h.group(2))]
            lines.append(line)
            continue
        lines.append(line)
    if fence is not None:
        out.append(Section("\n".join(fence), heading=heading(), code=True))
    flush()
    return out


# -- HTML -------------------------------------------------------------------------------


class _HTMLText(html.parser.HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "blockquote", "table", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.parts: list[str] = []
        self.heading: list[tuple[int, str]] = []
        self.skip = 0
        self.in_heading: int | None = None
        self.heading_text: list[str] = []
        self.pre = 0

    def _flush(self) -> None:
        text = re.sub(r"\n{3,}", "\n\n", "".join(self.parts)).strip()
        if text:
            self.sections.append(Section(text, heading=" > ".join(t for _, t in self.heading)))
        self.parts = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self._flush()
            self.in_heading, self.heading_text = int(tag[1]), []
        elif tag == "pre":
            self.pre += 1
            self.parts.append("\n\n")
        elif tag in self.BLOCK:
            self.parts.append("\n\n" if tag == "p" else "\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif self.in_heading is not None and tag == f"h{self.in_heading}":
            title = " ".join("".join(self.heading_text).split())
            level = self.in_heading
            self.heading = [(lv, t) for lv, t in self.heading if lv < level] + [(level, title)]
            self.parts.append(title + "\n\n")
            self.in_heading = None
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.in_heading is not None:
            self.heading_text.append(data)
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def _html(text: str) -> list[Section]:
    p = _HTMLText()
    p.feed(text)
    p.close()
    p._flush()
    return p.sections


# -- PDF --------------------------------------------------------------------------------


def _pdf(data: bytes) -> list[Section]:
    import logging

    import pypdf
    from pypdf.errors import PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files say so below
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = bool(reader.decrypt(""))  # an empty user password opens some
            except Exception:  # pypdf raises many kinds on broken encryption  # noqa: BLE001
                opened = False
            if not opened:
                raise ExtractError("encrypted PDF (it needs a password)")
        pages = []
        for number, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            pages.append(Section(_tidy(text), page=number))
    except ExtractError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise ExtractError(f"damaged PDF ({e})") from e
    except Exception as e:  # pypdf raises many kinds on broken files
        if "crypt" in str(e).lower() or "password" in str(e).lower():
            raise ExtractError("encrypted PDF (it needs a password)") from e
        raise ExtractError(f"damaged PDF ({type(e).__name__}: {e})") from e
    if pages and not any(p.text.strip() for p in pages):
        raise ExtractError("no text; scanned pages need OCR")
    return pages


def _tidy(text: str) -> str:
    return re.sub(r"[ \t]+\n", "\n", text).strip()


# -- DOCX -------------------------------------------------------------------------------


def check_zip(data: bytes, what: str = "DOCX") -> None:
    """Refuse an archive that would unpack to far more than it is (a zip bomb), before a
    library unpacks it: the sizes in its directory are checked, then every member is
    inflated here, a megabyte at a time, and must unpack to exactly the size it declares.
    (zipfile trusts a member's stream, not its declared size: a member that declares a
    kilobyte but inflates to gigabytes would be unpacked whole in memory, then cut.)"""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ExtractError(f"damaged {what} (not a zip archive: {e})") from e
    total = sum(i.file_size for i in members)
    if total > MAX_DOCX_UNPACKED or total > max(len(data), 1) * MAX_DOCX_RATIO:
        raise ExtractError(
            f"{what} would unpack to {_mb(total)} from {_mb(len(data))}: refused as a zip bomb"
        )
    for info in members:
        unpacked = _inflated_size(data, info, info.file_size)
        if unpacked != info.file_size:
            raise ExtractError(
                f"{what} member {info.filename} declares {info.file_size:,} bytes but "
                f"unpacks to {'more' if unpacked < 0 else f'{unpacked:,}'}: refused as a zip bomb"
            )


def _inflated_size(data: bytes, info: zipfile.ZipInfo, declared: int) -> int:
    """How many bytes the member really unpacks to; -(declared + 1) as soon as it is
    more than declared (inflating stops there)."""
    import struct
    import zlib

    at = info.header_offset
    head = data[at : at + 30]
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise ExtractError(f"damaged zip member {info.filename}")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    start = at + 30 + name_len + extra_len
    raw = data[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        return len(raw)
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise ExtractError(f"zip member {info.filename} uses an unsupported compression")
    inflater = zlib.decompressobj(-15)
    size = 0
    pending = raw
    try:
        while pending and not inflater.eof:
            size += len(inflater.decompress(pending, 1 << 20))
            if size > declared:
                return -(declared + 1)
            pending = inflater.unconsumed_tail
        size += len(inflater.flush())
    except zlib.error as e:
        raise ExtractError(f"damaged zip member {info.filename} ({e})") from e
    return -(declared + 1) if size > declared else size


def _docx(data: bytes) -> list[Section]:
    check_zip(data)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ExtractError(f"damaged DOCX ({e})") from e
    except Exception as e:  # lxml errors on broken XML
        raise ExtractError(f"damaged DOCX ({type(e).__name__}: {e})") from e
    out: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []

    def flush() -> None:
        if "".join(lines).strip():
            out.append(Section("\n\n".join(lines).strip(), heading=" > ".join(t for _, t in path)))
        lines.clear()

    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = para.text.strip()
        m = re.match(r"(?:Heading|Title)\s*(\d*)", style)
        if m and text:
            flush()
            level = int(m.group(1) or 1) if style.startswith("Heading") else 0
            path = [(lv, t) for lv, t in path if lv < level] + [(level, text)]
            lines.append(text)
        elif text:
            lines.append(text)
    for table in document.tables:
        rows = [" | ".join(c.text.strip() for c in row.cells) for row in table.rows]
        lines.append("\n".join(rows))
    flush()
    return out


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


def os_reason(e: OSError) -> str:
    """A file's or folder's OSError in the words of a collection's report."""
    import errno

    if e.errno == errno.ELOOP:
        return "a symbolic link loop"
    if e.errno == errno.ENOENT:
        return "vanished before it was read"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return e.strerror or str(e)
