"""Tool calls in a model's output, read while it streams, per model family.

    hermes   Hermes, Qwen, ChatML (our default):  <tool_call>{"name": .., "arguments": {..}}</tool_call>
    llama3   Llama 3.x:  <|python_tag|>{"name": .., "parameters": {..}}  or an answer that is
             only such a JSON object
    mistral  [TOOL_CALLS][{"name": .., "arguments": {..}}]  or  [TOOL_CALLS]name[ARGS]{..}
    granite  <|tool_call|>[{"name": .., "arguments": {..}}]
    harmony  gpt-oss:  <|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{..}<|call|>
             (core.harmony: its analysis channel comes out as thinking, a Thought)

ToolCallParser.feed() takes pieces of text as they come and gives back the answer text
(a marker, or the start of one, is held back until it is known) and each call once it is
complete. A call that cannot be read is still given back, with its error and raw text,
so it is shown and never silently dropped.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from chatapp.core import harmony
from chatapp.core.harmony import HarmonyReader, RawCall, Thought
from chatapp.core.json_grammar import SchemaGrammar, literal

HERMES, LLAMA3, MISTRAL, GRANITE = "hermes", "llama3", "mistral", "granite"
HARMONY = "harmony"
FAMILIES = (HERMES, LLAMA3, MISTRAL, GRANITE, HARMONY)

# family -> (start marker, end marker; "" = the call runs to the end of the output)
_MARKERS = {
    HERMES: ("<tool_call>", "</tool_call>"),
    LLAMA3: ("<|python_tag|>", ""),
    MISTRAL: ("[TOOL_CALLS]", ""),
    GRANITE: ("<|tool_call|>", ""),
    HARMONY: (harmony.CHANNEL, harmony.CALL),
}

DENIED = "The user denied this call."


def new_call_id() -> str:
    return "call_" + secrets.token_hex(12)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made. error: why it could not be read (then it is not run)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""  # the text the model wrote for it
    error: str = ""

    def openai(self) -> dict[str, Any]:
        """The call in OpenAI's shape (arguments as a JSON string)."""
        args = json.dumps(self.arguments, ensure_ascii=False) if not self.error else self.raw
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": args},
        }

    def as_json(self) -> dict[str, Any]:
        """As stored in a message's meta."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "arguments": self.arguments}
        if self.raw:
            out["raw"] = self.raw
        if self.error:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ToolCall:
        return cls(
            str(data.get("id", "")),
            str(data.get("name", "")),
            dict(data.get("arguments") or {}),
            str(data.get("raw", "")),
            str(data.get("error", "")),
        )


def family_for(template_text: str) -> str:
    """The call format a chat template's model writes (hermes when it says nothing)."""
    if harmony.CHANNEL in template_text and "to=functions." in template_text:
        return HARMONY
    for family in (LLAMA3, MISTRAL, GRANITE):
        if _MARKERS[family][0] in template_text:
            return family
    if "ipython" in template_text and "<|eot_id|>" in template_text:
        return LLAMA3
    return HERMES


def start_marker(family: str) -> str:
    return _MARKERS[family][0]


def kept_markers(marker: str) -> tuple[str, ...]:
    """The control tokens that pass as text while tools are offered, given the family's
    start marker (ChatRequest.tool_marker): gpt-oss writes a call with several."""
    if marker == harmony.CHANNEL:
        return harmony.MARKERS
    return (marker,) if marker else ()


def call_text(family: str, name: str, arguments: dict[str, Any]) -> str:
    """How the family writes a call (a stored call shown to a template that has no
    place for tool_calls; the constrained grammar's shape)."""
    args = json.dumps(arguments, ensure_ascii=False)
    if family == HARMONY:
        return harmony.call_text(name, args)
    if family == LLAMA3:
        return f'<|python_tag|>{{"name": {json.dumps(name)}, "parameters": {args}}}'
    if family in (MISTRAL, GRANITE):
        body = f'[{{"name": {json.dumps(name)}, "arguments": {args}}}]'
        return start_marker(family) + body
    return f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {args}}}\n</tool_call>'


class ToolCallParser:
    """Feed text pieces; get answer text and completed calls, in order."""

    def __init__(self, family: str = HERMES) -> None:
        if family not in _MARKERS:
            raise ValueError(f"unknown tool call family {family!r}")
        self.family = family
        self.start, self.end = _MARKERS[family]
        self._held = ""  # text that may be the start of a marker
        self._call: list[str] | None = None  # inside a call: its text so far
        self._bare: list[str] | None = None  # llama3: an answer that opens with "{"
        self._seen_text = False
        self.calls: list[ToolCall] = []
        self._harmony = HarmonyReader() if family == HARMONY else None

    def feed(self, text: str) -> list[str | ToolCall | Thought]:
        if self._harmony is not None:
            return self._from_harmony(self._harmony.feed(text))
        out: list[str | ToolCall | Thought] = []
        self._held += text
        while self._held:
            if self._bare is not None:
                self._bare.append(self._held)
                self._held = ""
                break
            if self._call is not None:
                if not self.end:
                    self._call.append(self._held)
                    self._held = ""
                    break
                i = self._held.find(self.end)
                if i < 0:
                    keep = _partial_suffix(self._held, self.end)
                    self._call.append(self._held[: len(self._held) - keep])
                    self._held = self._held[len(self._held) - keep :]
                    break
                self._call.append(self._held[:i])
                self._held = self._held[i + len(self.end) :]
                out.extend(self._close("".join(self._call)))
                self._call = None
                continue
            if self.family == LLAMA3 and not self._seen_text:
                stripped = self._held.lstrip()
                if not stripped:
                    break
                if stripped.startswith("{"):
                    self._bare = [self._held]
                    self._held = ""
                    break
            i = self._held.find(self.start)
            if i < 0:
                keep = _partial_suffix(self._held, self.start)
                shown = self._held[: len(self._held) - keep]
                self._held = self._held[len(self._held) - keep :]
                if shown:
                    self._emit_text(out, shown)
                break
            if i:
                self._emit_text(out, self._held[:i])
            self._held = self._held[i + len(self.start) :]
            self._call = []
        return out

    def _emit_text(self, out: list[str | ToolCall | Thought], text: str) -> None:
        if text.strip():
            self._seen_text = True
        out.append(text)

    def _from_harmony(self, items: list[str | Thought | RawCall]) -> list[str | ToolCall | Thought]:
        out: list[str | ToolCall | Thought] = []
        for item in items:
            if not isinstance(item, RawCall):
                out.append(item)
                continue
            raw = item.header + harmony.MESSAGE + item.body
            name = item.name.removeprefix("functions.")
            try:
                args = json.loads(item.body) if item.body.strip() else {}
            except json.JSONDecodeError as e:
                call = _broken(raw, f"not valid JSON ({e.msg})")
                call = ToolCall(call.id, name, {}, raw, call.error)
            else:
                call = ToolCall(new_call_id(), name, args if isinstance(args, dict) else {}, raw)
                if not isinstance(args, dict):
                    call = ToolCall(call.id, name, {}, raw, "The arguments are not an object.")
            out.extend(self._record([call]))
        return out

    def finish(self) -> list[str | ToolCall | Thought]:
        """The end of the output: a call still open is read as it stands."""
        if self._harmony is not None:
            return self._from_harmony(self._harmony.finish())
        out: list[str | ToolCall | Thought] = []
        if self._bare is not None:
            raw = "".join(self._bare)
            self._bare = None
            calls = _read_calls(raw, self.family)
            if calls and not any(c.error for c in calls):
                out.extend(self._record(calls))
            else:
                out.append(raw)  # an answer that merely starts with "{"
        elif self._call is not None:
            raw = "".join(self._call) + self._held
            self._call, self._held = None, ""
            if self.end:
                out.extend(self._record([_broken(raw, "the call was not closed")]))
            else:
                out.extend(self._close(raw))
        if self._held:
            out.append(self._held)
            self._held = ""
        return out

    def _close(self, raw: str) -> list[ToolCall]:
        calls = _read_calls(raw, self.family) or [_broken(raw, "the call holds no JSON")]
        return self._record(calls)

    def _record(self, calls: list[ToolCall]) -> list[ToolCall]:
        self.calls.extend(calls)
        return calls


def _partial_suffix(text: str, marker: str) -> int:
    """How many characters at the end of text could begin marker."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _broken(raw: str, why: str) -> ToolCall:
    return ToolCall(new_call_id(), "", {}, raw, f"Could not read the tool call: {why}.")


def _read_calls(raw: str, family: str) -> list[ToolCall]:
    text = raw.strip()
    if not text:
        return []
    if family == MISTRAL and "[ARGS]" in text:  # [TOOL_CALLS]name[ARGS]{...}
        name, _, args = text.partition("[ARGS]")
        return [_one({"name": name.strip(), "arguments": _loads(args)}, raw)]
    try:
        data = _loads(text)
    except ValueError as e:
        if family == LLAMA3 and ";" in text:  # several calls: {..}; {..}
            parts = [p for p in text.split(";") if p.strip()]
            try:
                return [_one(_loads(p), p) for p in parts]
            except ValueError:
                pass
        return [_broken(raw, f"not valid JSON ({e})")]
    items = data if isinstance(data, list) else [data]
    return [_one(item, raw) for item in items]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(e.msg) from e


def _one(item: Any, raw: str) -> ToolCall:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        return _broken(raw, "no tool name")
    args = item.get("arguments", item.get("parameters", {}))
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return ToolCall(new_call_id(), item["name"], {}, raw, "Could not read the arguments.")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ToolCall(new_call_id(), item["name"], {}, raw, "The arguments are not an object.")
    call_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else None
    return ToolCall(call_id or new_call_id(), item["name"], args, raw.strip())


def call_grammar(family: str, tools: list[dict[str, Any]], name: str | None = None) -> str:
    """A GBNF grammar for exactly one call, in the family's format, to one of `tools`
    (OpenAI-shaped function specs) or to the one named: the arguments follow each
    tool's JSON schema (raises json_grammar.BadSchema)."""
    chosen = [t for t in tools if _fn(t).get("name") == name] if name else list(tools)
    if not chosen:
        raise ValueError(f"no tool named {name!r}" if name else "no tools to call")
    g = SchemaGrammar()
    key = "parameters" if family == LLAMA3 else "arguments"
    options = []
    for tool in chosen:
        fn = _fn(tool)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        g = _with_root(g, params)
        args = g.add(params, f"args-{fn['name']}")
        if family == HARMONY:  # the name is in the header, the body is the arguments
            head = f"{harmony.CHANNEL}commentary to=functions.{fn['name']} "
            tail = f"{harmony.CONSTRAIN}json{harmony.MESSAGE}"
            options.append(f"{literal(head + tail)} {args}")
            continue
        options.append(
            f'"{{" ws "\\"name\\"" ws ":" ws {literal(json.dumps(fn["name"]))} ws "," ws '
            f'{literal(json.dumps(key))} ws ":" ws {args} ws "}}"'
        )
    call = g._rule("call", " | ".join(f"( {o} )" for o in options))
    if family == HARMONY:
        root = call
    elif family == HERMES:
        root = f'"<tool_call>" "\\n"? {call} "\\n"? "</tool_call>"'
    elif family == LLAMA3:
        root = f'"<|python_tag|>" {call}'
    else:
        root = f'{literal(start_marker(family))} "[" {call} "]"'
    return g.text(root)


def _fn(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function", tool)
    return fn if isinstance(fn, dict) else {}


def _with_root(g: SchemaGrammar, schema: Any) -> SchemaGrammar:
    """The grammar with `schema` as the document its $refs point into."""
    g._root = schema if isinstance(schema, dict) else {}
    g._refs = {}
    return g


# --- the prompt side: tools and past calls for a template ---------------------------------

TOOLS_SYSTEM = (
    "You may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\n"
    "For each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)


def reads_tools(template_text: str) -> bool:
    """Whether a template renders the `tools` variable itself."""
    return "tools" in template_text


def tools_system_text(tools: list[dict[str, Any]]) -> str:
    """The Hermes/Qwen tools section, for a template that has no place for tools."""
    return TOOLS_SYSTEM.format(tools="\n".join(json.dumps(t, ensure_ascii=False) for t in tools))


def for_template(messages: list[dict[str, Any]], template_text: str) -> list[dict[str, Any]]:
    """Past calls and results the way a template can show them: as they are where the
    template reads tool_calls and the tool role; otherwise in the family's text (a call
    appended to the answer, a result as a user turn in <tool_response> tags, as Hermes
    and Qwen write them), so the model still sees what happened."""
    if "tool_calls" in template_text and "tool" in template_text:
        return messages
    return _adapt(messages, family_for(template_text))


def _adapt(messages: list[dict[str, Any]], family: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role == "assistant" and m.get("tool_calls"):
            texts = [str(m.get("content") or "").strip()]
            for c in m["tool_calls"]:
                fn = c.get("function", c)
                args = fn.get("arguments") or {}
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError:
                        args = {"raw": args}
                texts.append(call_text(family, str(fn.get("name", "")), args))
            rest = {k: v for k, v in m.items() if k != "tool_calls"}
            out.append({**rest, "content": "\n".join(t for t in texts if t)})
        elif role == "tool":
            body = f"<tool_response>\n{m.get('content', '')}\n</tool_response>"
            if out and out[-1].get("role") == "user" and out[-1].get("_tool"):
                out[-1] = {**out[-1], "content": out[-1]["content"] + "\n" + body}
            else:
                out.append({"role": "user", "content": body, "_tool": True})
        else:
            out.append(m)
    return [{k: v for k, v in m.items() if k != "_tool"} for m in out]
