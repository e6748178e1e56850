"""Conversations to Markdown, HTML, JSON and plain text; everything to a zip with an index.

Pure functions over core objects: the window, the CLI and tests call the same code.
Text formats show the active thread (the branch the user is looking at) and say so when
other branches exist; JSON keeps the whole tree and is the lossless, importable form.
PDF is made from the HTML by chatapp.gui.pdf, which needs Qt and so lives outside core.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import secrets
import shutil
import unicodedata
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from chatapp.core import atomic
from chatapp.core.conversation import Conversation, Message, Role, thread
from chatapp.core.errors import UserError
from chatapp.core.export.images import html_figures
from chatapp.core.export.images import text_lines as image_lines
from chatapp.core.export.schema import conversation_to_doc
from chatapp.core.export.tool_parts import (
    call_title,
    calls_of,
    is_result,
    result_note,
    result_title,
)

log = logging.getLogger(__name__)

TEXT_FORMATS = ("md", "html", "json", "txt")
FORMATS = (*TEXT_FORMATS, "pdf")
EXTENSIONS = {"md": ".md", "html": ".html", "json": ".json", "txt": ".txt", "pdf": ".pdf"}

Progress = Callable[[int, int], None]  # (done, total); may raise to cancel
Renderer = Callable[[Conversation, Sequence[Message]], bytes]


def stamp(t: float) -> str:
    """A timestamp for people; UTC so an export reads the same everywhere."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def role_label(m: Message) -> str:
    if is_result(m):
        return result_title(m)
    source = m.meta.get("source_role")
    if isinstance(source, str) and source and source != m.role.value:
        return source.capitalize()
    return m.role.value.capitalize()


def active_thread(conv: Conversation, messages: Sequence[Message]) -> list[Message]:
    return thread(messages, conv.current_leaf_id)


def branch_note(conv: Conversation, messages: Sequence[Message]) -> str:
    """A sentence for text formats when the tree holds more than the active thread."""
    shown = len(active_thread(conv, messages))
    hidden = len(messages) - shown
    if hidden <= 0:
        return ""
    return (
        f"This conversation has other branches: {hidden} message(s) not on the branch "
        f"shown here are kept in the JSON export."
    )


def model_names(branch: Iterable[Message]) -> list[str]:
    return list(dict.fromkeys(m.model for m in branch if m.model))


# -- Markdown ------------------------------------------------------------------------

_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def fence_for(text: str, char: str = "`") -> str:
    """A fence longer than any run of the fence character inside the text (at least 3)."""
    runs = re.findall(re.escape(char) + "+", text)
    return char * max(3, 1 + max((len(r) for r in runs), default=0))


def close_open_fence(text: str) -> str:
    """Close a code block left open (a cut-off reply) so it cannot swallow what follows."""
    open_fence: str | None = None
    for line in text.split("\n"):
        m = _FENCE_LINE.match(line)
        if not m:
            continue
        fence, rest = m.group(1), m.group(2)
        if open_fence is None:
            if not (fence[0] == "`" and "`" in rest):  # a backtick fence's info has no `
                open_fence = fence
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence) and not rest.strip():
            open_fence = None
    if open_fence is None:
        return text
    return text + ("" if text.endswith("\n") else "\n") + open_fence


def _quote(text: str) -> str:
    return "\n".join(("> " + line).rstrip() for line in text.split("\n"))


def to_markdown(conv: Conversation, messages: Sequence[Message]) -> str:
    branch = active_thread(conv, messages)
    out = [f"# {_md_line(conv.title)}", ""]
    out.append(f"- Created: {stamp(conv.created_at)}")
    out.append(f"- Updated: {stamp(conv.updated_at)}")
    models = model_names(branch)
    if models:
        out.append("- Model: " + ", ".join(f"`{_md_code_span(m)}`" for m in models))
    out.append(f"- Conversation id: `{conv.id}`")
    out.append("")
    note = branch_note(conv, messages)
    if note:
        out += [f"> **Note:** {note}", ""]
    if conv.system_prompt.strip():
        prompt = _nl(conv.system_prompt)
        fence = fence_for(prompt)
        out += ["## System prompt", "", fence + "text", prompt, fence, ""]
    for m in branch:
        out += ["---", "", f"## {_message_heading(m)}", ""]
        if m.thinking.strip():
            out += ["> **Thinking**", ">", _quote(close_open_fence(_nl(m.thinking))), ""]
        images = image_lines(m)
        if images:
            out += [*(f"*{_md_line(line)}*" for line in images), ""]
        out += _md_body(m)
        stats = message_stats(m)
        if stats:
            out += [f"*{stats}*", ""]
    return _unix_lines("\n".join(out))


def _md_body(m: Message) -> list[str]:
    """A message's text; a tool result verbatim in a fence; then the answer's calls."""
    calls = calls_of(m)
    if is_result(m):
        text = _nl(m.content)
        fence = fence_for(text)
        out = [fence + "text", text, fence, ""]
        note = result_note(m)
        return out + ([f"*{_md_line(note)}*", ""] if note else [])
    body = close_open_fence(_nl(m.content)).rstrip("\n")
    out = [body, ""] if body or not calls else []
    if not out:
        out = ["*(empty)*", ""] if not calls else []
    for call in calls:
        args = _nl(call.arguments)
        fence = fence_for(args)
        out += [f"**{_md_line(call_title(call))}**", "", fence + ("text" if call.error else "json")]
        out += [args, fence, ""]
    return out


def _message_heading(m: Message) -> str:
    parts = [role_label(m), stamp(m.created_at)]
    if m.role is Role.ASSISTANT and m.model:
        parts.append(m.model)
    return _md_line(" · ".join(parts))


def message_stats(m: Message) -> str:
    bits = []
    if m.completion_tokens:
        bits.append(f"{m.completion_tokens} tokens")
    if m.tokens_per_second:
        bits.append(f"{m.tokens_per_second:.1f} tokens/s")
    if m.finish_reason is not None and m.finish_reason.value not in ("stop", "streaming"):
        bits.append(m.finish_reason.value)
    return ", ".join(bits)


def _nl(text: str) -> str:
    """One kind of line ending (a stray \r ends a line for some readers only)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unix_lines(text: str) -> str:
    return _nl(text).rstrip("\n") + "\n"


def _md_line(text: str) -> str:
    """One line of plain text made safe inside a Markdown heading or list item."""
    line = " ".join(text.split())
    return re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", line)


def _md_code_span(text: str) -> str:
    return text.replace("`", "'")


# -- plain text ------------------------------------------------------------------------


def to_text(conv: Conversation, messages: Sequence[Message]) -> str:
    branch = active_thread(conv, messages)
    out = [conv.title, "=" * max(3, min(len(conv.title), 72)), ""]
    out.append(f"Created: {stamp(conv.created_at)}")
    models = model_names(branch)
    if models:
        out.append("Model: " + ", ".join(models))
    note = branch_note(conv, messages)
    if note:
        out += ["", f"Note: {note}"]
    if conv.system_prompt.strip():
        out += ["", "[System prompt]", _nl(conv.system_prompt)]
    for m in branch:
        out += ["", "-" * 72, f"[{role_label(m)}] {stamp(m.created_at)}"]
        if m.role is Role.ASSISTANT and m.model:
            out[-1] += f"  ({m.model})"
        out.append("")
        if m.thinking.strip():
            out += ["(thinking)", *("  " + line for line in _nl(m.thinking).split("\n")), ""]
        out += image_lines(m)
        if m.content or not calls_of(m):
            out.append(_nl(m.content))
        if is_result(m) and result_note(m):
            out += ["", f"({result_note(m)})"]
        for call in calls_of(m):
            out += ["", f"[{call_title(call)}]"]
            out += ["  " + line for line in _nl(call.arguments).split("\n")]
    return _unix_lines("\n".join(out))


# -- JSON and HTML -------------------------------------------------------------------


def to_json(conv: Conversation, messages: Sequence[Message]) -> str:
    doc = conversation_to_doc(conv, messages)
    return json.dumps(doc, ensure_ascii=False, indent=2, allow_nan=False) + "\n"


def to_html(conv: Conversation, messages: Sequence[Message]) -> str:
    branch = active_thread(conv, messages)
    return document_html(conv, branch, branch_note(conv, messages))


def print_html(conv: Conversation, messages: Sequence[Message]) -> str:
    """The HTML export restyled for Qt's rich text engine, which lays out the PDF."""
    branch = active_thread(conv, messages)
    return document_html(conv, branch, branch_note(conv, messages), css=PRINT_CSS + code_css())


def render(fmt: str, conv: Conversation, messages: Sequence[Message]) -> str:
    writers = {"md": to_markdown, "html": to_html, "json": to_json, "txt": to_text}
    if fmt not in writers:
        raise ValueError(f"not a text export format: {fmt!r}")
    return writers[fmt](conv, messages)


def text_renderer(fmt: str) -> Renderer:
    return lambda conv, messages: render(fmt, conv, messages).encode("utf-8")


# -- file names ---------------------------------------------------------------------

_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
_BAD_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f]')
MAX_NAME_BYTES = 150  # well under the 255-byte limit of common file systems, with a suffix


def safe_filename(title: str, ext: str, taken: set[str] | None = None) -> str:
    """A file name from a title: no path parts or reserved names, limited, unique in `taken`.

    `taken` holds lower-cased names already used (case-insensitive file systems); the
    chosen name is added to it.
    """
    name = unicodedata.normalize("NFC", title)
    name = " ".join(name.split())  # tabs, newlines and odd spaces become one space
    name = _BAD_CHARS.sub("_", name)
    name = name.strip(" .")
    name = _clip(name, MAX_NAME_BYTES).rstrip(" .") or "conversation"
    if name.split(".")[0].strip().upper() in _RESERVED:
        name = "_" + name
    taken = taken if taken is not None else set()
    candidate, n = name + ext, 1
    while candidate.lower() in taken:
        n += 1
        candidate = f"{name}-{n}{ext}"
    taken.add(candidate.lower())
    return candidate


def _clip(text: str, limit: int) -> str:
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


# -- everything at once ----------------------------------------------------------------

Loader = Callable[[str], tuple[Conversation, list[Message]]]


def export_many(
    conversation_ids: Sequence[str],
    load: Loader,
    fmt: str,
    dest: str | Path,
    *,
    renderer: Renderer | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write conversations into a zip (dest ends in .zip) or a folder, with an index.

    `load(id)` fetches one conversation with all its messages, so memory holds one at a
    time plus the zip being built. Both are all or nothing: the zip is written atomically
    when complete; a folder's files are written into a hidden staging folder and moved
    into place only once every one of them is on disk.
    """
    dest = Path(dest)
    if dest.suffix.lower() == ".zip":
        return _export_many(conversation_ids, load, fmt, dest, renderer, progress)
    staging = _staging_folder(dest)
    try:
        _export_many(conversation_ids, load, fmt, staging, renderer, progress)
        _publish_folder(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %d conversations as %s to %s", len(conversation_ids), fmt, dest)
    return dest


def _staging_folder(dest: Path) -> Path:
    """Beside a new folder (then one rename publishes it), inside an existing one (so the
    moves stay on one file system)."""
    parent = dest if dest.is_dir() else dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            staging = parent / f".{dest.name}.export-{secrets.token_hex(4)}"
            try:
                # 0777 less the umask, as any folder the user makes: a new export
                # folder is this one renamed
                staging.mkdir(0o777)
                return staging
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free staging name", str(parent))
    except OSError as e:
        raise UserError(f"Could not write into {parent}: {e.strerror or e}") from e


def _publish_folder(staging: Path, dest: Path) -> None:
    try:
        if not dest.exists():
            os.rename(staging, dest)
            return
        for f in sorted(staging.iterdir()):
            os.replace(f, dest / f.name)
    except OSError as e:
        raise UserError(f"Could not move the export into {dest}: {e.strerror or e}") from e


def _export_many(
    conversation_ids: Sequence[str],
    load: Loader,
    fmt: str,
    dest: Path,
    renderer: Renderer | None,
    progress: Progress | None,
) -> Path:
    render_bytes = renderer or text_renderer(fmt)
    ext = EXTENSIONS[fmt]
    taken = {"index.html", "index.json"}
    entries: list[dict[str, object]] = []
    as_zip = dest.suffix.lower() == ".zip"
    buffer = io.BytesIO()
    zf = zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) if as_zip else None
    total = len(conversation_ids)
    for i, conv_id in enumerate(conversation_ids):
        if progress:
            progress(i, total)
        conv, messages = load(conv_id)
        name = safe_filename(conv.title, ext, taken)
        data = render_bytes(conv, messages)
        if zf is not None:
            zf.writestr(_zip_info(name, conv.updated_at), data)
        else:
            atomic.write_bytes(dest / name, data, mode=atomic.USER_FILE)
        entries.append(
            {
                "id": conv.id,
                "title": conv.title,
                "file": name,
                "created_at": conv.created_at,
                "updated_at": conv.updated_at,
                "messages": len(messages),
            }
        )
    index_json = json.dumps(
        {"format": "chatapp.export-index", "version": 1, "conversations": entries},
        ensure_ascii=False,
        indent=2,
    ).encode("utf-8")
    index_page = index_html(entries).encode("utf-8")
    if zf is not None:
        zf.writestr(_zip_info("index.html", 0), index_page)
        zf.writestr(_zip_info("index.json", 0), index_json)
        zf.close()
        atomic.write_bytes(dest, buffer.getvalue(), mode=atomic.USER_FILE)
    else:
        atomic.write_bytes(dest / "index.html", index_page, mode=atomic.USER_FILE)
        atomic.write_bytes(dest / "index.json", index_json, mode=atomic.USER_FILE)
    if progress:
        progress(total, total)
    if as_zip:
        log.info("exported %d conversations as %s to %s", total, fmt, dest)
    return dest


def _zip_info(name: str, t: float) -> zipfile.ZipInfo:
    """Entries with fixed times and modes, so the same data gives the same zip."""
    when = datetime.fromtimestamp(max(t, 315532800), timezone.utc).timetuple()[:6]
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


# -- HTML ----------------------------------------------------------------------------
# One self-contained file: inline CSS, no scripts, no external resources. All message
# text goes through markdown-it with raw HTML off (so <script> in a message is shown as
# text) and images off (no network fetches); a Content-Security-Policy backs that up.

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
:root { color-scheme: light dark; --fg: #1f2328; --muted: #59636e; --bg: #ffffff;
  --card: #f6f8fa; --user: #ddf4ff; --border: #d1d9e0; --code: #f6f8fa; --accent: #0969da; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --card: #151b23; --user: #0c2d4b;
    --border: #3d444d; --code: #161b22; --accent: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", "Noto Sans", Roboto, sans-serif; }
main { max-width: 52rem; margin: 0 auto; padding: 2rem 1.25rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
.meta, .stats, .head time, .head .model { color: var(--muted); font-size: .875rem; }
.stats { margin-top: .5rem; }
.system pre { margin: .25rem 0 0; }
.note { border-left: 4px solid var(--accent); padding: .5rem .9rem; background: var(--card);
  border-radius: 6px; }
.msg, .system { margin: 1.1rem 0; padding: .8rem 1.1rem; border: 1px solid var(--border);
  border-radius: 10px; background: var(--card); }
.msg.user { background: var(--user); }
.msg.tool { border-style: dashed; }
.tool-call { margin: .6rem 0 0; padding-left: .8rem; border-left: 3px solid var(--accent); }
.tool-call pre { margin: .25rem 0 0; }
.head { display: flex; gap: .75rem; align-items: baseline; flex-wrap: wrap;
  margin-bottom: .35rem; }
.role { font-weight: 650; }
.body { overflow-wrap: anywhere; }
.body > :first-child { margin-top: 0; }
.body > :last-child { margin-bottom: 0; }
pre { background: var(--code); border: 1px solid var(--border); border-radius: 6px;
  padding: .75rem .9rem; overflow-x: auto; font-size: .875rem; line-height: 1.45; }
pre.plain { white-space: pre-wrap; }
code { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas,
  monospace; font-size: .9em; }
:not(pre) > code { background: var(--code); padding: .1em .3em; border-radius: 4px; }
details.thinking { margin: .25rem 0 .75rem; padding: .35rem .8rem; border-radius: 6px;
  border: 1px dashed var(--border); color: var(--muted); }
details.thinking summary { cursor: pointer; font-style: italic; }
table { border-collapse: collapse; }
th, td { border: 1px solid var(--border); padding: .25rem .6rem; }
blockquote { margin: 0; padding-left: 1rem; border-left: 3px solid var(--border);
  color: var(--muted); }
a { color: var(--accent); }
ul.index { padding-left: 1.2rem; }
ul.index li { margin: .35rem 0; }
@media print { body { background: #fff; color: #000; } .msg, .system { break-inside: avoid; } }
"""


# QTextDocument understands a subset of CSS (no custom properties or media queries):
# these rules restate the look of the page in terms it applies. Code wraps (pre-wrap)
# instead of running past the margin, where a printed page would cut it.
PRINT_CSS = """
body { font-size: 10pt; color: #1f2328; }
h1 { font-size: 16pt; }
.meta, .stats, .model, time { color: #59636e; font-size: 8.5pt; }
.role { font-weight: bold; }
.head { margin-top: 10pt; }
.note { color: #0969da; }
pre { background-color: #f6f8fa; font-size: 8.5pt; white-space: pre-wrap; }
code { font-family: "DejaVu Sans Mono", monospace; }
.thinking { color: #59636e; font-style: italic; }
.tool-call { margin-left: 8pt; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d1d9e0; padding: 2pt; }
"""


def code_css(style: str = "default") -> str:
    """Pygments rules for highlighted code blocks (our own pre background wins)."""
    from pygments.formatters import HtmlFormatter

    rules = HtmlFormatter(style=style).get_style_defs("pre.code")
    return "\n".join(ln for ln in rules.splitlines() if not ln.startswith("pre.code  {")) + "\n"


def _pygments_css() -> str:
    dark = code_css("github-dark")
    return f"{code_css()}@media (prefers-color-scheme: dark) {{\n{dark}}}\n"


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments for fenced code with a known language; "" lets markdown-it escape it."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    name = lang.split()[0] if lang.strip() else ""
    if name.lower() not in _builtin_lexer_aliases():
        return ""
    body = highlight(code, get_lexer_by_name(name), HtmlFormatter(nowrap=True))
    # Pygments before 2.21 also escaped quotes in text; the same file whichever is installed.
    body = body.replace("&quot;", '"').replace("&#39;", "'")
    return f'<pre class="code"><code class="language-{_esc(name)}">{body}</code></pre>'


_aliases: frozenset[str] | None = None


def _builtin_lexer_aliases() -> frozenset[str]:
    """Pygments' own lexers only: looking up plugin lexers imports arbitrary packages."""
    global _aliases
    if _aliases is None:
        from pygments.lexers import get_all_lexers

        _aliases = frozenset(
            a.lower() for _, names, _, _ in get_all_lexers(plugins=False) for a in names
        )
    return _aliases


_markdown = None


def markdown_html(text: str) -> str:
    """Message Markdown to safe HTML (raw HTML is escaped, images are left out)."""
    global _markdown
    if _markdown is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
        _markdown = md.enable(["table", "strikethrough"]).disable("image")
    return str(_markdown.render(text))


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def _page(title: str, body: list[str], css: str | None = None) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="chatapp">',
            f"<title>{_esc(title)}</title>",
            f"<style>{_CSS + _pygments_css() if css is None else css}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def document_html(
    conv: Conversation, branch: Sequence[Message], note: str = "", *, css: str | None = None
) -> str:
    """The HTML page of one conversation thread."""
    meta = [f'Created <time datetime="{_iso(conv.created_at)}">{stamp(conv.created_at)}</time>']
    models = model_names(branch)
    if models:
        meta.append("Model " + ", ".join(f"<code>{_esc(m)}</code>" for m in models))
    body = [
        "<header>",
        f'<h1 dir="auto">{_esc(conv.title)}</h1>',
        f'<p class="meta">{" · ".join(meta)}</p>',
        "</header>",
    ]
    if note:
        body.append(f'<p class="note">{_esc(note)}</p>')
    if conv.system_prompt.strip():
        body += [
            '<section class="system">',
            '<div class="head"><span class="role">System prompt</span></div>',
            f'<pre class="plain" dir="auto">{_esc(conv.system_prompt)}</pre>',
            "</section>",
        ]
    for m in branch:
        body += _message_html(m)
    return _page(conv.title, body, css)


def _message_html(m: Message) -> list[str]:
    head = [
        f'<span class="role">{_esc(role_label(m))}</span>',
        f'<time datetime="{_iso(m.created_at)}">{stamp(m.created_at)}</time>',
    ]
    if m.role is Role.ASSISTANT and m.model:
        head.append(f'<span class="model">{_esc(m.model)}</span>')
    out = [f'<article class="msg {m.role.value}" id="m-{_esc(m.id)}">']
    out.append(f'<div class="head">{" ".join(head)}</div>')
    if m.thinking.strip():
        out += [
            '<details class="thinking">',
            "<summary>Thinking</summary>",
            f'<div class="body" dir="auto">{markdown_html(m.thinking)}</div>',
            "</details>",
        ]
    figures = html_figures(m)
    if figures:
        out.append(figures)
    if is_result(m):  # a tool's output is shown as it came, not as Markdown
        out.append(f'<pre class="plain tool-output" dir="auto">{_esc(m.content)}</pre>')
        if result_note(m):
            out.append(f'<div class="stats">{_esc(result_note(m))}</div>')
    elif m.content or not calls_of(m):
        out.append(f'<div class="body" dir="auto">{markdown_html(m.content)}</div>')
    for call in calls_of(m):
        out += [
            '<div class="tool-call">',
            f'<div class="role">{_esc(call_title(call))}</div>',
            f'<pre class="plain"><code>{_esc(call.arguments)}</code></pre>',
            "</div>",
        ]
    stats = message_stats(m)
    if stats:
        out.append(f'<div class="stats">{_esc(stats)}</div>')
    out.append("</article>")
    return out


def index_html(entries: Sequence[dict[str, object]]) -> str:
    """The index page of an export of many conversations."""
    from urllib.parse import quote

    items = []
    for e in entries:
        t = float(e["updated_at"])  # type: ignore[arg-type]
        items.append(
            f'<li><a href="{_esc(quote(str(e["file"])))}" dir="auto">{_esc(str(e["title"]))}</a>'
            f' <span class="meta">{stamp(t)} · {e["messages"]} messages</span></li>'
        )
    body = [
        "<header>",
        "<h1>Exported conversations</h1>",
        f'<p class="meta">{len(entries)} conversations</p>',
        "</header>",
        '<ul class="index">',
        *items,
        "</ul>",
    ]
    return _page("Exported conversations", body)
