"""Reading OpenAI request bodies: size-capped JSON, then checked fields.

Each check fails with the message and status OpenAI's API gives for the same mistake.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from chatapp.core.images import ImageFile
from chatapp.core.json_grammar import BadSchema, schema_grammar
from chatapp.core.store.images import ref
from chatapp.server.errors import ApiError, bad_request, too_large
from chatapp.server.images import Fetch, message_content

ROLES = ("system", "developer", "user", "assistant", "tool")

# No token of a usual vocabulary is longer (SmolLM2's longest are 32 characters,
# Gemma 3's 31), so text past this many characters per context token cannot fit.
MAX_CHARS_PER_TOKEN = 32
# OpenAI's own limit; rendering the template for this many takes about a second on a
# small machine, and the model's thread cannot be interrupted while it does
MAX_MESSAGES = 2048


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
    parallel_tool_calls: bool | None = None  # passed on to a remote backend as given
    response_format: Any = None
    images: tuple[Any, ...] = ()  # core.images.ImageFile of every image_url part

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


def split_system(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The window's rule for system messages: one system prompt (every system message,
    joined by blank lines) before a thread of user and assistant messages. A tool
    message counts as the user's."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    thread = [
        {
            "role": "assistant" if m["role"] == "assistant" else "user",
            "content": m["content"],
            **({"images": m["images"]} if m.get("images") else {}),
        }
        for m in messages
        if m["role"] != "system"
    ]
    return system, thread


def check_size(call: Call, n_ctx: int) -> None:
    """Refuse, before any tokenizing, more than MAX_MESSAGES messages and a request that
    cannot fit the model's context of n_ctx tokens: more messages than tokens (each
    costs at least one), or more characters than MAX_CHARS_PER_TOKEN times the tokens.
    Templating and tokenizing on the model's thread cannot be interrupted, so this
    bounds how long one request holds everyone else's."""
    if len(call.messages) > MAX_MESSAGES:
        raise bad_request(
            "Invalid 'messages': array too long. Expected an array with maximum length "
            f"{MAX_MESSAGES}, but got an array with length {len(call.messages)} instead.",
            "messages",
            "array_above_max_length",
        )
    if n_ctx <= 0:
        return
    if len(call.messages) > n_ctx:
        raise bad_request(
            f"{len(call.messages)} messages cannot fit this model's context of {n_ctx} tokens.",
            "messages",
            "context_length_exceeded",
        )
    chars = len(call.prompt or "") + sum(len(m["content"]) for m in call.messages)
    if chars > n_ctx * MAX_CHARS_PER_TOKEN:
        raise bad_request(
            f"The request's {chars} characters of text cannot fit this model's context of "
            f"{n_ctx} tokens.",
            "prompt" if call.prompt is not None else "messages",
            "context_length_exceeded",
        )


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit)
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise too_large(limit)
    return parse_json(bytes(body))


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says why not: bad JSON, nesting deeper
    than Python's parser goes, or text that is not Unicode (a lone surrogate escape
    such as "\\ud800", which no tokenizer can encode)."""
    try:
        data = json.loads(body)
    except RecursionError as e:
        raise bad_request("The JSON body of your request is nested too deeply.") from e
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            f"aren't using your HTTP library correctly.) {e}"
        ) from e
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        raise bad_request(
            "The request holds text that is not valid Unicode (a lone surrogate, "
            f"{e.object[e.start : e.end]!a}); send UTF-8 text."
        ) from e
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


def chat_call(data: dict[str, Any], fetch: Fetch | None = None) -> Call:
    """fetch: how an http(s) image URL is read (None: such URLs are refused)."""
    model = _model(data)
    raw = data.get("messages")
    if raw is None:
        raise bad_request(
            "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
        )
    if not isinstance(raw, list) or not raw:
        raise bad_request("'messages' must be a non-empty array.", "messages")
    messages = []
    images: list[ImageFile] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise bad_request(
                f"Invalid message at messages[{i}]: role must be one of {', '.join(ROLES)}.",
                f"messages[{i}].role",
            )
        role = "system" if m["role"] == "developer" else m["role"]
        text, found = message_content(m.get("content"), i, fetch)
        msg: dict[str, Any] = {"role": role, "content": text}
        if found:
            if role != "user":
                raise bad_request("Images go in user messages.", f"messages[{i}].content")
            msg["images"] = [ref(image) for image in found]
            images += found
        if role == "assistant" and m.get("tool_calls"):
            msg["tool_calls"] = _past_calls(m["tool_calls"], i)
        if role == "tool":
            msg["tool_call_id"] = str(m.get("tool_call_id") or "")
        messages.append(msg)
    if all(m["role"] == "system" for m in messages):
        raise bad_request("'messages' must hold a user or assistant message.", "messages")
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
        parallel_tool_calls=_parallel(data),
        response_format=_response_format(data),
        images=tuple(images),
    )


def _parallel(data: dict[str, Any]) -> bool | None:
    value = data.get("parallel_tool_calls")
    if value is None or isinstance(value, bool):
        return value
    raise bad_request("'parallel_tool_calls' must be true or false.", "parallel_tool_calls")


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
    if not prompt:
        raise bad_request("'prompt' is empty: give the text to continue.", "prompt")
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


__all__ = [
    "ApiError",
    "Call",
    "Sampling",
    "chat_call",
    "check_size",
    "completion_call",
    "parse_json",
    "read_json",
    "split_system",
]
