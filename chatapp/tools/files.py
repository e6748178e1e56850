"""Read, list and search files in the folders the user granted, and nowhere else.

Every path is resolved (symlinks followed, `..` collapsed) and must then lie inside a
granted folder: `../x` and a symlink pointing outside are refused the same way. Reads
and searches are size-capped; a binary file is described, not dumped.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

READ_BYTES = 256_000  # the most read_file returns at once (offset to read further)
SEARCH_FILE_BYTES = 2_000_000  # larger files are skipped by search_files
MAX_LIST = 500
MAX_HITS = 100
MAX_SCANNED = 5_000


class FileToolError(ValueError):
    """A refused path or a missing file: the message is for the model."""


class GrantedFolders:
    def __init__(self, folders: Sequence[Path]) -> None:
        self.roots = [Path(f).expanduser().resolve() for f in folders]

    def describe(self) -> str:
        return ", ".join(str(r) for r in self.roots) if self.roots else "(none granted)"

    def resolve(self, path: str) -> Path:
        """The real path of `path` (absolute, or relative to the first granted folder
        that has it), refused unless it lies inside a granted folder."""
        if not self.roots:
            raise FileToolError("no folder is granted to the file tools in this chat")
        if not isinstance(path, str) or not path.strip() or "\x00" in path:
            raise FileToolError("give a path inside a granted folder")
        raw = Path(path.strip()).expanduser()
        candidates = [raw] if raw.is_absolute() else [root / raw for root in self.roots]
        for c in candidates:
            real = c.resolve()
            if not self.contains(real):
                raise FileToolError(f"{path!r} is outside the granted folders ({self.describe()})")
            if real.exists():
                return real
        raise FileToolError(f"{path!r} does not exist in the granted folders")

    def contains(self, real: Path) -> bool:
        return any(real == r or r in real.parents for r in self.roots)

    def shown(self, real: Path) -> str:
        return str(real)


def read_file(folders: GrantedFolders, path: str, offset: int = 0) -> tuple[str, bool]:
    """The text of a file from byte `offset`, and whether more follows."""
    real = folders.resolve(path)
    if real.is_dir():
        raise FileToolError(f"{path!r} is a folder: use list_files")
    size = real.stat().st_size
    offset = max(int(offset or 0), 0)
    with real.open("rb") as f:
        f.seek(offset)
        data = f.read(READ_BYTES)
    if b"\x00" in data[:8192]:
        return f"{folders.shown(real)} is a binary file of {size} bytes; not shown.", False
    if offset + len(data) < size:  # end the window on a whole character
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start >= len(data) - 3:
                data = data[: e.start]
    more = offset + len(data) < size
    text = data.decode("utf-8", "replace")
    if more:
        text += (
            f"\n[read bytes {offset}-{offset + len(data)} of {size}; "
            f"call again with offset={offset + len(data)} for more]"
        )
    return text, more


def list_files(
    folders: GrantedFolders, path: str = "", recursive: bool = False
) -> tuple[str, bool]:
    """The entries of a folder (one level, or all below it), folders marked with '/'."""
    if not path:
        if not folders.roots:
            raise FileToolError("no folder is granted to the file tools in this chat")
        if len(folders.roots) > 1:
            return "Granted folders:\n" + "\n".join(f"{r}/" for r in folders.roots), False
        path = str(folders.roots[0])
    real = folders.resolve(path)
    if not real.is_dir():
        raise FileToolError(f"{path!r} is a file, not a folder")
    lines: list[str] = []
    cut = False
    for entry in _walk(real, folders, recursive):
        if len(lines) >= MAX_LIST:
            cut = True
            break
        rel = entry.relative_to(real)
        if entry.is_dir():
            lines.append(f"{rel}/")
        else:
            lines.append(f"{rel}  ({_size(entry)})")
    head = f"{real}/ ({'everything below it' if recursive else 'one level'}):"
    if not lines:
        return f"{head}\n(empty)", False
    if cut:
        lines.append(f"[only the first {MAX_LIST} entries are listed]")
    return "\n".join([head, *lines]), cut


def search_files(
    folders: GrantedFolders, query: str, path: str = "", glob: str = "*"
) -> tuple[str, bool]:
    """Lines containing `query` (case-insensitive) in text files below `path`."""
    if not isinstance(query, str) or not query.strip():
        raise FileToolError("give some text to search for")
    needle = query.casefold()
    tops = [folders.resolve(path)] if path else list(folders.roots)
    if not tops:
        raise FileToolError("no folder is granted to the file tools in this chat")
    hits: list[str] = []
    scanned = 0
    cut = False
    for top in tops:
        entries = [top] if top.is_file() else _walk(top, folders, True)
        for entry in entries:
            if entry.is_dir() or not fnmatch.fnmatch(entry.name, glob or "*"):
                continue
            scanned += 1
            if scanned > MAX_SCANNED or len(hits) >= MAX_HITS:
                cut = True
                break
            try:
                if entry.stat().st_size > SEARCH_FILE_BYTES:
                    continue
                data = entry.read_bytes()
            except OSError:
                continue
            if b"\x00" in data[:8192]:
                continue
            for n, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
                if needle in line.casefold():
                    hits.append(f"{entry}:{n}: {line.strip()[:300]}")
                    if len(hits) >= MAX_HITS:
                        break
    if not hits:
        return f"No line contains {query!r}.", False
    if cut:
        hits.append(f"[stopped after {MAX_HITS} matches or {MAX_SCANNED} files]")
    return "\n".join(hits), cut


def _walk(top: Path, folders: GrantedFolders, recursive: bool) -> Iterator[Path]:
    """Entries below `top` that resolve inside a granted folder (symlinks out are skipped)."""
    if not recursive:
        for entry in sorted(top.iterdir()):
            if folders.contains(entry.resolve()):
                yield entry
        return
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        base = Path(dirpath)
        for name in dirnames:
            yield base / name
        for name in sorted(filenames):
            entry = base / name
            if folders.contains(entry.resolve()):
                yield entry


def _size(p: Path) -> str:
    try:
        n = p.stat().st_size
    except OSError:
        return "?"
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
