"""Message Markdown to the HTML subset Qt's rich text engine shows.

markdown-it-py parses (CommonMark + tables + strikethrough) with raw HTML disabled, so
a message's own <tags> show as text; Pygments colours fenced code with inline styles.
"""

from __future__ import annotations

import html
from functools import lru_cache

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, guess_lexer
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True, style="default")
_PRE = (
    '<table width="100%" cellpadding="8" cellspacing="0" style="background-color:#f6f8fa;'
    ' margin-top:4px; margin-bottom:4px;"><tr><td>'
    '<pre style="font-family:monospace; margin:0;">{code}</pre></td></tr></table>'
)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    if lexer is None and len(code) > 40:
        try:
            lexer = guess_lexer(code)
        except ClassNotFound:
            lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    return _PRE.format(code=body.rstrip("\n"))


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md


def to_html(text: str) -> str:
    rendered = _md().render(text).replace(
        "<table>", '<table border="1" cellspacing="0" cellpadding="4" style="border-color:#d0d7de;">'
    )
    # markdown-it wraps highlighted output in <pre><code>; the table already frames it
    return rendered.replace("<pre><code", "<div").replace("</code></pre>", "</div>")


def plain_to_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")
