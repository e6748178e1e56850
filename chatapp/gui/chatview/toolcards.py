"""Tool call and result cards, drawn inside a message's body.

An answer that called tools shows one card per call under its text: the tool, where it
comes from (built-in or an MCP server) and the exact arguments; a call the model wrote
but that could not be read says so, with its text. A tool message (role "tool") is the
result card: the tool, how long it took, whether it failed, was denied or was cut, and
its text (at most DISPLAY_LIMIT characters here; Copy copies all of it).

Each card has "Hide"/"Show" and "Copy" links (toolcard:toggle:N, toolcard:copy:N) that
the view handles. Colours come from the view's theme (the palette); the text wraps at
the view's width (pre-wrap, broken anywhere), so a long line never widens the message.
"""

from __future__ import annotations

import html
import json
from typing import Any

from PySide6.QtCore import QCoreApplication

from chatapp.core.conversation import Message, Role
from chatapp.gui.chatview.model import Row
from chatapp.gui.chatview.theme import Theme

DISPLAY_LIMIT = 2_000  # characters of a result shown in its card
PREFIX = "toolcard:"
SEPARATOR = "__"  # an MCP tool is "<server>__<tool>" (chatapp.tools.mcp_client)


def calls_of(message: Message) -> list[dict[str, Any]]:
    """The calls an answer holds (meta "tool_calls", as core.toolcalls.ToolCall.as_json)."""
    calls = message.meta.get("tool_calls")
    if not isinstance(calls, list):
        return []
    return [c for c in calls if isinstance(c, dict)]


def has_cards(row: Row) -> bool:
    return row.role is Role.TOOL or bool(calls_of(row.message))


def source_of(name: str) -> str:
    """Where a tool comes from, by its name: an MCP server's, or built in."""
    server, sep, _tool = name.partition(SEPARATOR)
    if sep and server:
        return QCoreApplication.translate("ToolCards", "MCP server “{server}”").format(
            server=server
        )
    return QCoreApplication.translate("ToolCards", "built-in")


def arguments_text(call: dict[str, Any]) -> str:
    """The call's arguments exactly as the tool receives them (JSON), or the text the
    model wrote when it could not be read."""
    if call.get("error"):
        return str(call.get("raw", ""))
    return json.dumps(call.get("arguments", {}), ensure_ascii=False, indent=2, sort_keys=False)


def copy_text(row: Row, index: int) -> str:
    """What a card's Copy puts on the clipboard: the call (name and arguments) or the
    whole result."""
    if row.role is Role.TOOL:
        return row.text
    calls = calls_of(row.message)
    if not 0 <= index < len(calls):
        return ""
    call = calls[index]
    if call.get("error"):
        return str(call.get("raw", ""))
    return json.dumps(
        {"name": call.get("name", ""), "arguments": call.get("arguments", {})},
        ensure_ascii=False,
        indent=2,
    )


def row_text(row: Row) -> str:
    """What a row's Copy action copies: its text, or an answer's calls if it is only calls."""
    calls = calls_of(row.message)
    if row.text or not calls or row.role is not Role.ASSISTANT:
        return row.text
    return "\n".join(copy_text(row, i) for i in range(len(calls)))


def _links(index: int, closed: bool) -> str:
    toggle = (
        QCoreApplication.translate("ToolCards", "Show")
        if closed
        else QCoreApplication.translate("ToolCards", "Hide")
    )
    return (
        f'<a href="{PREFIX}toggle:{index}">{html.escape(toggle)}</a>'
        f'&nbsp;&nbsp;<a href="{PREFIX}copy:{index}">{html.escape(QCoreApplication.translate("ToolCards", "Copy"))}</a>'
    )


def _card(theme: Theme, title: str, facts: list[str], links: str, body: str) -> str:
    code = theme.code
    head = f"<b>{html.escape(title)}</b>"
    if facts:
        head += (
            f' <span style="color:{code.caption};">· '
            + " · ".join(html.escape(f) for f in facts)
            + "</span>"
        )
    rows = f'<tr><td style="color:{code.text};">{head}&nbsp;&nbsp;&nbsp;{links}</td></tr>'
    if body:
        rows += f"<tr><td>{body}</td></tr>"
    return (
        f'<table width="100%" border="1" cellpadding="6" cellspacing="0" '
        f'style="border-color:{code.rule}; border-style:solid; '
        f'background-color:{code.background}; margin-top:4px;">{rows}</table>'
    )


def _pre(theme: Theme, text: str, *, error: bool = False) -> str:
    weight = "font-weight:bold; " if error else ""
    return (
        f'<pre style="white-space:pre-wrap; margin:0; {weight}color:{theme.code.text};">'
        f"{html.escape(text)}</pre>"
    )


def call_cards(row: Row, theme: Theme) -> str:
    out = []
    for i, call in enumerate(calls_of(row.message)):
        closed = i in row.cards_closed
        name = str(call.get("name") or "?")
        if call.get("error"):
            title = QCoreApplication.translate("ToolCards", "Unreadable tool call")
            facts = [name, str(call["error"])] if call.get("name") else [str(call["error"])]
        else:
            title = QCoreApplication.translate("ToolCards", "Tool call: {name}").format(name=name)
            facts = [source_of(name)]
        body = "" if closed else _pre(theme, arguments_text(call), error=bool(call.get("error")))
        out.append(_card(theme, title, facts, _links(i, closed), body))
    return "".join(out)


def result_card(row: Row, theme: Theme) -> str:
    meta = row.message.meta
    name = str(meta.get("name") or "")
    closed = 0 in row.cards_closed
    facts = []
    seconds = meta.get("seconds")
    if isinstance(seconds, (int, float)):
        facts.append(
            QCoreApplication.translate("ToolCards", "{s} s").format(
                s=f"{seconds:.3g}" if seconds < 10 else f"{seconds:.0f}"
            )
        )
    if meta.get("denied"):
        title = QCoreApplication.translate("ToolCards", "Not run: {name}").format(name=name)
    elif meta.get("is_error"):
        title = QCoreApplication.translate("ToolCards", "Error from {name}").format(name=name)
    else:
        title = QCoreApplication.translate("ToolCards", "Result of {name}").format(name=name)
    if meta.get("truncated"):
        facts.append(QCoreApplication.translate("ToolCards", "cut: the model saw only the start"))
    text = row.text
    body = ""
    if not closed:
        shown = text[:DISPLAY_LIMIT]
        body = _pre(theme, shown, error=bool(meta.get("is_error")))
        if len(text) > DISPLAY_LIMIT:
            more = len(text) - DISPLAY_LIMIT
            note = QCoreApplication.translate(
                "ToolCards", "[{n} more characters not shown here; Copy copies all]"
            ).format(n=f"{more:,}")
            body += f'<p style="margin:0; color:{theme.code.caption};">{html.escape(note)}</p>'
    else:
        facts.append(
            QCoreApplication.translate("ToolCards", "{n} characters").format(n=f"{len(text):,}")
        )
    return _card(theme, title, facts, _links(0, closed), body)


def with_cards(row: Row, body_html: str, theme: Theme) -> str:
    """The body's HTML with the row's cards: a result replaces the plain text, an
    answer's calls follow its text (an answer that is only calls shows only them)."""
    if row.role is Role.TOOL:
        return result_card(row, theme)
    cards = call_cards(row, theme)
    if not cards:
        return body_html
    if not row.text.strip() and not row.thinking:
        return cards
    return body_html + cards


def estimate_lines(row: Row, per_line: int) -> int:
    """Extra lines the cards take (a cheap guess for rows not laid out yet)."""
    if row.role is Role.TOOL:
        shown = row.text[:DISPLAY_LIMIT]
        return 2 + sum(max(1, -(-len(p) // per_line)) for p in shown.split("\n"))
    lines = 0
    for call in calls_of(row.message):
        lines += 2 + arguments_text(call).count("\n") + 1
    return lines
