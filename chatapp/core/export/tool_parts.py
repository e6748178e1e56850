"""Tool calls and results as the text exports show them.

An answer that called tools keeps its calls in meta["tool_calls"] ({id, name, arguments},
with raw and error for a call that could not be read); a result is a message of role
tool with meta tool_call_id, name and how it went (is_error, denied, truncated, seconds).
The JSON export keeps both as they are (the meta dicts); Markdown, HTML, text and PDF
show them readably: each call with its tool, id and arguments, each result with the call
it answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chatapp.core.conversation import Message, Role


@dataclass(frozen=True)
class CallView:
    name: str
    id: str
    arguments: str  # pretty JSON, or the raw text of a call that could not be read
    error: str = ""


def calls_of(m: Message) -> list[CallView]:
    """The tool calls an answer made, as shown (none for other messages)."""
    if m.role is not Role.ASSISTANT:
        return []
    raw = m.meta.get("tool_calls")
    if not isinstance(raw, list):
        return []
    out = []
    for c in raw:
        if not isinstance(c, dict):
            continue
        given = c.get("function")
        fn: dict[str, Any] = given if isinstance(given, dict) else c
        args: Any = fn.get("arguments", {})
        error = str(c.get("error") or "")
        if error:
            text = str(c.get("raw") or "")
        elif isinstance(args, str):  # OpenAI's shape: a JSON string
            text = _pretty(args)
        else:
            text = json.dumps(args, ensure_ascii=False, indent=2, sort_keys=False)
        out.append(CallView(str(fn.get("name") or "?"), str(c.get("id") or ""), text, error))
    return out


def _pretty(args: str) -> str:
    try:
        return json.dumps(json.loads(args), ensure_ascii=False, indent=2)
    except (ValueError, TypeError):
        return args


def call_title(call: CallView) -> str:
    """ "Tool call: calculator (id call_1)" or "Unreadable tool call (...)"."""
    ident = f" (id {call.id})" if call.id else ""
    if call.error:
        return f"Unreadable tool call{ident}: {call.error}"
    return f"Tool call: {call.name}{ident}"


def is_result(m: Message) -> bool:
    return m.role is Role.TOOL


def result_title(m: Message) -> str:
    """The heading of a tool result: "Tool result: calculator"."""
    name = m.meta.get("name") or m.meta.get("source_name")
    return f"Tool result: {name}" if isinstance(name, str) and name else "Tool result"


def result_note(m: Message) -> str:
    """What else a result says: the call it answers, and how it went."""
    bits = []
    call_id = m.meta.get("tool_call_id")
    if isinstance(call_id, str) and call_id:
        bits.append(f"for call {call_id}")
    if m.meta.get("denied"):
        bits.append("denied")
    elif m.meta.get("is_error"):
        bits.append("error")
    if m.meta.get("truncated"):
        bits.append("cut to fit")
    seconds = m.meta.get("seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
        bits.append(f"{seconds:.3g} s")
    return ", ".join(bits)
