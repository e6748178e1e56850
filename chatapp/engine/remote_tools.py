"""Tools and structured output over an OpenAI-compatible server (engine.remote).

What the request adds: the tools (OpenAI function specs, as the turn offers them),
tool_choice in OpenAI's shape (a name becomes {"type": "function", "function": {"name"}}),
parallel_tool_calls, and response_format. Past calls and results go as OpenAI expects
them (a call's arguments as a JSON string; a tool message with its tool_call_id).

What comes back: the server's tool_calls, streamed as deltas (index, then id, name and
pieces of the arguments; some servers repeat the id and name in every piece), gathered
into the same core.toolcalls.ToolCall objects the local path makes.

A server that cannot do what was asked says so in one line, never silently: a
json_schema response_format it rejects is sent once more in the form llama.cpp's and
llama-cpp-python's servers take ({"type": "json_object", "schema": ...}); if that is
refused too, the turn fails saying the server cannot constrain the answer. An answer
that comes back complete but does not follow the schema (a server that ignores
response_format) fails the turn with the schema's complaint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chatapp.core.toolcalls import ToolCall, new_call_id


def tool_choice_wire(choice: str | None) -> Any:
    """tool_choice as OpenAI takes it."""
    if choice in (None, "auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def tool_body(
    tools: list[dict[str, Any]] | None,
    choice: str | None,
    parallel: bool | None,
    response_format: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields a request body gains for tools and structured output."""
    body: dict[str, Any] = {}
    if tools:
        body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = tool_choice_wire(choice)
        if parallel is not None:
            body["parallel_tool_calls"] = parallel
    if response_format is not None:
        body["response_format"] = response_format
    return body


def fallback_format(response_format: Any) -> dict[str, Any] | None:
    """The json_object-with-schema form llama.cpp's and llama-cpp-python's servers take,
    for a json_schema response_format a server rejected (None: no other form)."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    return {"type": "json_object", "schema": spec.get("schema", {})}


def rejects_format(message: str) -> bool:
    """Whether a server's error message is about response_format."""
    text = message.lower()
    return "response_format" in text or "json_schema" in text


def wire_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as an OpenAI server takes them: a call's arguments as a JSON string, a
    tool message with only role, content and tool_call_id."""
    out = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function", c)
                args = fn.get("arguments", {})
                calls.append(
                    {
                        "id": c.get("id") or new_call_id(),
                        "type": "function",
                        "function": {
                            "name": fn.get("name", ""),
                            "arguments": args
                            if isinstance(args, str)
                            else json.dumps(args, ensure_ascii=False),
                        },
                    }
                )
            # "" rather than null: llama-cpp-python's server refuses a null content
            out.append({**m, "content": m.get("content") or "", "tool_calls": calls})
        elif m.get("role") == "tool":
            out.append(
                {
                    "role": "tool",
                    "content": str(m.get("content", "")),
                    "tool_call_id": str(m.get("tool_call_id", "")),
                }
            )
        else:
            out.append(m)
    return out


@dataclass
class _Part:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class CallDeltas:
    """The tool_calls deltas of one answer, gathered by index."""

    def __init__(self) -> None:
        self._parts: dict[int, _Part] = {}

    def __bool__(self) -> bool:
        return bool(self._parts)

    def add(self, deltas: Any) -> None:
        """One event's tool_calls (a list; raises TypeError for another shape)."""
        if not isinstance(deltas, list):
            raise TypeError("tool_calls")
        for position, d in enumerate(deltas):
            if not isinstance(d, dict):
                raise TypeError("tool_call")
            index = d.get("index", position)
            if not isinstance(index, int):
                raise TypeError("tool_call index")
            part = self._parts.setdefault(index, _Part())
            fn = d.get("function") or {}
            if not isinstance(fn, dict):
                raise TypeError("tool_call function")
            if isinstance(d.get("id"), str) and d["id"] and not part.id:
                part.id = d["id"]
            name = fn.get("name")
            if isinstance(name, str) and name and not part.name:
                part.name = name  # servers that repeat it in every piece: once
            args = fn.get("arguments")
            if isinstance(args, str):
                part.arguments.append(args)
            elif isinstance(args, dict):  # a whole answer from a lenient server
                part.arguments.append(json.dumps(args, ensure_ascii=False))

    def calls(self) -> list[ToolCall]:
        out = []
        for _, part in sorted(self._parts.items()):
            raw = "".join(part.arguments)
            call_id = part.id or new_call_id()
            if not part.name:
                out.append(ToolCall(call_id, "", {}, raw, "The server sent a call without a name."))
                continue
            try:
                args = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError as e:
                out.append(
                    ToolCall(
                        call_id,
                        part.name,
                        {},
                        raw,
                        f"Could not read the tool call: its arguments are not valid JSON ({e.msg}).",
                    )
                )
                continue
            if not isinstance(args, dict):
                out.append(
                    ToolCall(call_id, part.name, {}, raw, "The arguments are not an object.")
                )
                continue
            out.append(ToolCall(call_id, part.name, args, raw))
        return out


def format_problem(response_format: Any, answer: str) -> str:
    """Why a complete answer does not follow the response_format ("" if it does)."""
    if not isinstance(response_format, dict):
        return ""
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return ""
    try:
        value = json.loads(answer)
    except ValueError:
        return "it is not JSON"
    schema = None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    elif "schema" in response_format:
        schema = response_format["schema"]
    if schema is None:
        return "" if isinstance(value, dict) else "it is not a JSON object"
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path)
        return f"{e.message}" + (f" (at {where})" if where else "")
    except jsonschema.SchemaError as e:
        return f"the schema itself is not valid ({e.message})"
    return ""
