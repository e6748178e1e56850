"""Reading OpenAI request bodies: size-capped JSON, then checked fields.

Each check fails with the message and status OpenAI's API gives for the same mistake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from chatapp.core.json_grammar import BadSchema, schema_grammar
from chatapp.server.errors import ApiError, bad_request, too_large

ROLES = ("system", "developer", "user", "assistant", "tool")


@dataclass(frozen=True)
class Sampling:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    """One checked request: chat (messages) or completions (prompt)."""

    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    prompt: str | None = None
    stream: bool = False
    include_usage: bool = False
    sampling: Sampling = field(default_factory=Sampling)
    logprobs: bool = False
    top_logprobs: int = 0
    user: str = ""
    # tools the model may call (OpenAI-shaped; the client runs them), the choice, and a
    # JSON answer: None free, True any JSON object, a dict a JSON schema
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None
    response_format: Any = None

    @property
    def cache_key(self) -> str:
        """The KV-state key of the caller's conversation: a hash of its start (the
        system prompt and first user message, or the start of a raw prompt) and the
        `user` field. Two conversations with the same start share a key, which costs
        only reuse: the engine checks every reused token against the new prompt."""
        if self.prompt is not None:
            head: Any = self.prompt[:512]
        else:
            head = [(m["role"], m.get("content", "")) for m in self.messages[:2]]
        raw = json.dumps([self.model, self.user, head], ensure_ascii=False)
        return "api:" + hashlib.sha256(raw.encode()).hexdigest()[:24]


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_large(limit)
    try:
        data = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            f"aren't using your HTTP library correctly.) {e}"
        ) from e
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    return data


def _number(data: dict[str, Any], name: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    value = data.get(name)
    if value is None:
        return None
    kind = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise bad_request(f"'{name}' must be {'an integer' if integer else 'a number'}.", name)
    if not lo <= value <= hi:
        raise bad_request(f"'{name}' must be between {lo:g} and {hi:g}; got {value}.", name)
    return value


def _sampling(data: dict[str, Any]) -> Sampling:
    max_tokens = _number(data, "max_completion_tokens", 1, 1 << 30, integer=True)
    if max_tokens is None:
        max_tokens = _number(data, "max_tokens", 1, 1 << 30, integer=True)
    stop = data.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = tuple(stop)
    else:
        raise bad_request("'stop' must be a string or a list of at most 4 strings.", "stop")
    n = data.get("n", 1)
    if n not in (None, 1):
        raise bad_request("Only n=1 is supported.", "n")
    return Sampling(
        max_tokens=max_tokens,
        temperature=_number(data, "temperature", 0, 2),
        top_p=_number(data, "top_p", 0, 1),
        seed=_number(data, "seed", -(1 << 63), (1 << 63) - 1, integer=True),
        stop=tuple(s for s in stops if s),
    )


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    return model


def _stream(data: dict[str, Any]) -> tuple[bool, bool]:
    stream = bool(data.get("stream") or False)
    opts = data.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise bad_request("'stream_options' must be an object.", "stream_options")
    return stream, bool(opts.get("include_usage"))


def _content(value: Any, i: int) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            else:
                raise bad_request(
                    "Only text content parts are supported.", f"messages[{i}].content"
                )
        return "".join(parts)
    raise bad_request("A message's content must be a string or a list of parts.", f"messages[{i}]")


def chat_call(data: dict[str, Any]) -> Call:
    model = _model(data)
    raw = data.get("messages")
    if raw is None:
        raise bad_request(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty array.", "messages")
    messages = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise bad_request(
                f"Invalid message at messages[{i}]: role must be one of {', '.join(ROLES)}.",
                f"messages[{i}].role",
            )
        role = "system" if m["role"] == "developer" else m["role"]
        msg: dict[str, Any] = {"role": role, "content": _content(m.get("content"), i)}
        if role == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = _past_calls(m["tool_calls"], i)
        if role == "tool":
            msg["tool_call_id"] = str(m.get("tool_call_id") or "")
        messages.append(msg)
    logprobs = bool(data.get("logprobs") or False)
    top = _number(data, "top_logprobs", 0, 20, integer=True) or 0
    if top and not logprobs:
        raise bad_request("'top_logprobs' needs 'logprobs' set to true.", "top_logprobs")
    stream, usage = _stream(data)
    return Call(
        model=model,
        messages=messages,
        stream=stream,
        include_usage=usage,
        sampling=_sampling(data),
        logprobs=logprobs,
        top_logprobs=top,
        user=str(data.get("user") or ""),
        tools=_tools(data),
        tool_choice=_tool_choice(data),
        response_format=_response_format(data),
    )


def _past_calls(raw: Any, i: int) -> list[dict[str, Any]]:
    """An assistant message's tool_calls, arguments as objects (as templates read them)."""
    where = f"messages[{i}].tool_calls"
    if not isinstance(raw, list):
        raise bad_request("'tool_calls' must be an array.", where)
    out = []
    for j, c in enumerate(raw):
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request("Each tool call needs a function with a name.", f"{where}[{j}]")
        args = fn.get("arguments") or "{}"
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {"raw": args}
        name = fn["name"]
        out.append(
            {
                "id": str(c.get("id") or ""),
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
        )
    return out


def _tools(data: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    raw = data.get("tools")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise bad_request("'tools' must be an array.", "tools")
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise bad_request(
                "Each tool must be {'type': 'function', 'function': {'name': ...}}.", f"tools[{i}]"
            )
        params = fn.get("parameters")
        if params is not None:
            try:
                schema_grammar(params)
            except BadSchema as e:
                raise bad_request(f"tools[{i}]: {e}", f"tools[{i}].function.parameters") from e
        out.append({"type": "function", "function": dict(fn)})
    return tuple(out)


def _tool_choice(data: dict[str, Any]) -> str | None:
    choice = data.get("tool_choice")
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return str(choice)
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])
    raise bad_request(
        "'tool_choice' must be 'auto', 'none', 'required' or "
        "{'type': 'function', 'function': {'name': ...}}.",
        "tool_choice",
    )


def _response_format(data: dict[str, Any]) -> Any:
    fmt = data.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return True
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise bad_request(
                "'response_format.json_schema.schema' must be an object.", "response_format"
            )
        try:
            schema_grammar(schema)
        except BadSchema as e:
            raise bad_request(str(e), "response_format") from e
        return schema
    raise bad_request(
        "'response_format.type' must be 'text', 'json_object' or 'json_schema'.", "response_format"
    )


def completion_call(data: dict[str, Any]) -> Call:
    model = _model(data)
    prompt = data.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise bad_request(
            "Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter"
        )
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string (one prompt per request).", "prompt")
    if data.get("echo"):
        raise bad_request("'echo' is not supported.", "echo")
    if data.get("suffix"):
        raise bad_request("'suffix' is not supported.", "suffix")
    top = _number(data, "logprobs", 0, 5, integer=True)
    stream, usage = _stream(data)
    return Call(
        model=model,
        prompt=prompt,
        stream=stream,
        include_usage=usage,
        sampling=_sampling(data),
        logprobs=top is not None,
        top_logprobs=top or 0,
        user=str(data.get("user") or ""),
    )


__all__ = ["ApiError", "Call", "Sampling", "chat_call", "completion_call", "read_json"]
