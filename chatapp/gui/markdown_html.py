"""Message Markdown to the HTML subset Qt's rich text engine shows.

markdown-it-py parses (CommonMark + tables + strikethrough) with raw HTML disabled, so
a message's own <tags> show as text; Pygments colours fenced code with inline styles.
Colours come from a `CodeTheme` the view derives from its palette, so code blocks read
under light and dark themes. Code keeps its line breaks but wraps at the view's width
(white-space: pre-wrap): a long line never widens the message.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from chatapp.gui.chatview.contrast import parse_hex, readable, to_hex


@dataclass(frozen=True)
class CodeTheme:
    """Colours of code blocks: background, caption text, table rules, Pygments style."""

    background: str = "#f3f4f6"
    text: str = "#1f2328"
    caption: str = "#59636e"
    rule: str = "#d0d7de"
    style: str = "default"  # a Pygments style; "github-dark" under a dark palette


LIGHT = CodeTheme()


@dataclass(frozen=True)
class Rendered:
    html: str
    code_blocks: tuple[str, ...]  # each fenced/indented block's source, in document order


@lru_cache(maxsize=4)
def _formatter(style: str) -> HtmlFormatter[Any]:
    return HtmlFormatter(noclasses=True, nowrap=True, style=style)


def _lexer(lang: str) -> Any:
    """The named language's lexer; none for an unnamed block (guessing tries every lexer
    Pygments has, far too slow for text that re-renders while it streams)."""
    if not lang:
        return None
    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


_COLOUR = re.compile(r"(?<!-)color: ?#([0-9a-fA-F]{6})")


@lru_cache(maxsize=512)
def _readable_colour(colour: str, background: str, text: str) -> str:
    return to_hex(readable(parse_hex(colour), parse_hex(background), parse_hex(text)))


def _fix_colours(body: str, theme: CodeTheme) -> str:
    """Pygments styles pick token colours for their own background: each is moved just
    far enough towards the text colour to read on ours (WCAG 4.5:1)."""
    return _COLOUR.sub(
        lambda m: "color: " + _readable_colour(m.group(1), theme.background, theme.text), body
    )


@lru_cache(maxsize=512)
def code_block_html(code: str, lang: str, theme: CodeTheme) -> str:
    """A code block as a two-row table: a caption row (where the view paints its Copy
    button) and the code, wrapped rather than cut (pre-wrap; the view's text option
    breaks an unbroken line anywhere). Cached: while an answer streams, the blocks it
    has finished are not highlighted again on every update."""
    lexer = _lexer(lang)
    if lexer:
        body = _fix_colours(highlight(code, lexer, _formatter(theme.style)), theme)
    else:
        body = html.escape(code)
    caption = html.escape(lang or (lexer.name.lower() if lexer else "code"))
    return (
        f'<table width="100%" border="0" cellpadding="6" cellspacing="0"'
        f' bgcolor="{theme.background}" style="margin-top:4px; margin-bottom:4px;">'
        f'<tr><td><span style="font-size:small; color:{theme.caption};">{caption}</span></td></tr>'
        f'<tr><td><pre style="white-space:pre-wrap; margin:0; color:{theme.text};">'
        f"{body.rstrip(chr(10))}</pre>"
        "</td></tr></table>"
    )


# a bare http(s) URL, up to whitespace or an angle bracket; trailing punctuation that
# ends a sentence ("see https://x.org.") is not part of it
_URL = re.compile(r"https?://[^\s<>\"']*[^\s<>\"'.,;:!?)\]}]")


def _links_in_text(
    state: Any, needle: str, pattern: re.Pattern[str], href: Callable[[re.Match[str]], str | None]
) -> None:
    """Make each match of `pattern` in plain text a link to href(match) (None: left as
    text), outside links and code (code is never a text token)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        out: list[Token] = []
        depth = 0
        for tok in block.children:
            if tok.type == "link_open":
                depth += 1
            elif tok.type == "link_close":
                depth -= 1
            if tok.type != "text" or depth or needle not in tok.content:
                out.append(tok)
                continue
            pos = 0
            for m in pattern.finditer(tok.content):
                target = href(m)
                if target is None:
                    continue
                if m.start() > pos:
                    out.append(Token("text", "", 0, content=tok.content[pos : m.start()]))
                out.append(Token("link_open", "a", 1, attrs={"href": target}))
                out.append(Token("text", "", 0, content=m.group(0)))
                out.append(Token("link_close", "a", -1))
                pos = m.end()
            if pos < len(tok.content):
                out.append(Token("text", "", 0, content=tok.content[pos:]))
        block.children = out


def _bare_urls(state: Any) -> None:
    """Turn bare URLs in text into links (as chat apps do), outside links and code:
    a core rule, so no extra dependency (markdown-it's linkify needs linkify-it-py)."""
    _links_in_text(state, "://", _URL, lambda m: m.group(0))


_CITE = re.compile(r"\[(\d{1,3})\]")


def _citations(state: Any) -> None:
    """An answer's "[2]" becomes a link "cite:2" when the answer was given 2 or more
    numbered passages (env["cite"]): the message view opens that passage's card. Not in
    code or inside links."""
    last = int(state.env.get("cite", 0)) if isinstance(state.env, dict) else 0
    if not last:
        return

    def cite(m: re.Match[str]) -> str | None:
        n = int(m.group(1))
        return f"cite:{n}" if 1 <= n <= last else None

    _links_in_text(state, "[", _CITE, cite)


@lru_cache(maxsize=1)
def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("bare_urls", _bare_urls)
    md.core.ruler.push("citations", _citations)
    return md


@lru_cache(maxsize=256)
def render(text: str, theme: CodeTheme = LIGHT, cite: int = 0) -> Rendered:
    """Markdown to Qt rich text, with the sources of its code blocks (for Copy). Cached:
    a resize or a palette change lays rows out again without parsing them again.
    cite: how many numbered passages the answer was given ([1]..[cite] become links)."""
    md = _md()
    tokens = md.parse(text, {"cite": cite} if cite else None)
    blocks: list[str] = []
    for tok in tokens:
        if tok.type in ("fence", "code_block"):
            blocks.append(tok.content)
            lang = tok.info.split()[0] if tok.type == "fence" and tok.info.strip() else ""
            # replace the token by its rendering: the renderer copies html_block verbatim
            tok.type = "html_block"
            tok.content = code_block_html(tok.content, lang, theme)
    rendered = md.renderer.render(tokens, md.options, {})
    rendered = rendered.replace(
        "<table>",
        f'<table border="1" cellspacing="0" cellpadding="4" style="border-color:{theme.rule};">',
    )
    return Rendered(rendered, tuple(blocks))


def to_html(text: str, theme: CodeTheme = LIGHT) -> str:
    return render(text, theme).html


def plain_to_html(text: str) -> str:
    """Plain text (a user's message, reasoning) as rich text that keeps its line breaks
    and wraps long words."""
    return (
        '<p style="white-space:pre-wrap; margin:0;">'
        + html.escape(text).replace("\n", "<br>")
        + "</p>"
    )
