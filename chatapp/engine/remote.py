"""A remote OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, our own
`chatapp serve`) behind the Backend protocol.

The server renders the prompt with its own template, so there are no local tokens:
capabilities say tokens=False, and log-probabilities only once the server has returned
some. The reply streams over server-sent events (httpx); thinking is split out of the
text with the same core.thinking code as for local models, and a server's own
`reasoning_content` deltas go to the thinking channel as they are. A reader thread
feeds the lines to the generating thread, so a cancel ends the turn at once even while
the server is silent. Every failure becomes one line a person can act on (NetworkError);
the service keeps whatever was already streamed. Tools, tool_choice and response_format
go to the server and its tool_calls come back as calls (engine/remote_tools.py).

A server is not trusted to keep to the protocol: a redirect, a stream cut before
[DONE], an event that is not a completion chunk, more pieces than max_tokens, silence
dressed up as keep-alive comments, or an answer that never ends each stop the answer
with a ServerFault (a NetworkError that says how the partial answer is marked). Only
data events count as progress, and every answer has a total deadline.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from chatapp.core.backend import (
    Capabilities,
    ChatRequest,
    Chunk,
    ModelRef,
    PreparedPrompt,
    ReplyStats,
    TokenAlternative,
    TokensUnavailable,
)
from chatapp.core.conversation import FinishReason, Message
from chatapp.core.errors import FailureKind, NetworkError, UserError
from chatapp.core.prompting import conversation_messages
from chatapp.core.templates import ChatTemplate
from chatapp.core.thinking import DEFAULT_TAGS, THINKING, AnswerStream
from chatapp.core.token_engine import ModelInfo
from chatapp.core.toolcalls import ToolCall
from chatapp.core.vision_prompt import MissingImage, has_images, openai_parts
from chatapp.engine.remote_tools import (
    CallDeltas,
    fallback_format,
    format_problem,
    rejects_format,
    tool_body,
    wire_messages,
)

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0  # a big prompt on a busy server can take a while to start
TOTAL_TIMEOUT = 1800.0  # the longest one answer may take in all, however it streams
MAX_JSON_ANSWER = 16 * 1024 * 1024  # a whole (non-streamed) answer larger than this is refused


class ServerFault(NetworkError):
    """The server broke the protocol during an answer. finish_reason: how the partial
    answer is marked (the service reads it; ERROR unless something more specific fits)."""

    kind = FailureKind.BACKEND_FAILED

    def __init__(self, message: str, finish_reason: FinishReason = FinishReason.ERROR) -> None:
        super().__init__(message)
        self.finish_reason = finish_reason


class Unsupported(NetworkError):
    """The server cannot do what the request asked (a JSON schema, tool calls)."""

    kind = FailureKind.BACKEND_FAILED


TOOL_CALL = "tool_call"  # the Chunk channel of a call (service.tool_loop's)


class _End:
    """The reader's last item: the response ended (content_type: what it said it was)."""

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type


class _Whole:
    """A server that ignored stream=true: its one JSON body."""

    def __init__(self, body: bytes) -> None:
        self.body = body


def _clip(text: str, limit: int = 80) -> str:
    """A piece of what a server sent, safe to print on one line."""
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def api_base(url: str) -> str:
    """The API root: "http://host:8080" and "http://host:8080/" mean ".../v1"; a URL
    with a path of its own is taken as given."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url + "/v1" if urlsplit(url).path in ("", "/") else url


def _server_template() -> ChatTemplate:
    return ChatTemplate(
        name="the server's own",
        source="server",
        text="",
        think_tags=DEFAULT_TAGS,
    )


class RemoteClient:
    """HTTP to one server, with its failures as one-line NetworkErrors."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
    ) -> None:
        self.base = api_base(base_url)
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=self.base,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
        )

    def models(self) -> list[str]:
        """The ids the server offers."""
        try:
            r = self.http.get("/models")
        except httpx.HTTPError as e:
            raise self.transport_error(e) from e
        self.check(r, "")
        try:
            return [str(m["id"]) for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise NetworkError(
                f"{self.base} did not answer like an OpenAI-compatible server."
            ) from e

    def transport_error(self, e: Exception) -> NetworkError:
        if isinstance(e, httpx.ConnectTimeout):
            return NetworkError(f"Cannot reach {self.base}: the connection timed out.")
        if isinstance(e, httpx.TimeoutException):
            return self.silence_error()
        if isinstance(e, httpx.ConnectError):
            return NetworkError(f"Cannot reach {self.base}: is the server running? ({e})")
        if isinstance(e, (httpx.RemoteProtocolError, httpx.ReadError)):
            return NetworkError(f"The connection to {self.base} broke off mid-answer.")
        return NetworkError(f"Talking to {self.base} failed: {e}")

    def silence_error(self) -> NetworkError:
        return ServerFault(
            f"{self.base} did not answer within {self.read_timeout:g} s; "
            "the server may be overloaded or stuck."
        )

    def check(self, r: httpx.Response, model: str) -> None:
        if 300 <= r.status_code < 400:
            where = r.headers.get("location", "")
            to = f" to {_clip(where, 120)}" if where else ""
            raise NetworkError(
                f"{self.base} answered {r.status_code}: a redirect{to}. "
                "Give the address it names as the backend URL."
            )
        if r.status_code < 400:
            return
        try:
            r.read()
            detail = r.json().get("error", {})
            message = str(detail.get("message", "") if isinstance(detail, dict) else detail)
        except (ValueError, AttributeError, httpx.HTTPError):
            message = r.text[:200] if not r.is_stream_consumed else ""
        message = " ".join(message.split())[:200]
        status = r.status_code
        if status in (401, 403):
            raise NetworkError(
                f"{self.base} refused the API key ({status}): "
                + ("set the right key." if status == 401 else "it may not allow this model.")
            )
        if status == 404:
            if model:
                raise NetworkError(f"{self.base} has no model '{model}'.")
            raise NetworkError(f"{self.base} has no OpenAI-compatible API there (404).")
        if status == 429:
            wait = r.headers.get("retry-after", "")
            when = f"try again in {wait} s" if wait.isdigit() else "try again later"
            raise NetworkError(f"{self.base} is rate-limiting requests (429): {when}.")
        raise NetworkError(f"{self.base} answered {status}: {message or r.reason_phrase}")

    def close(self) -> None:
        self.http.close()


class RemoteStream:
    """The ChunkStream of one reply from the server."""

    def __init__(
        self,
        client: RemoteClient,
        body: dict[str, Any],
        prompt: PreparedPrompt,
        cancel: threading.Event,
        on_logprobs: Any,
    ) -> None:
        self.client = client
        self.body = body
        self.prompt = prompt
        self.cancel = cancel
        self.stats = ReplyStats(seed=body.get("seed"))
        self._out = AnswerStream((), prompt.template.think_tags)
        self._thinking: list[str] = []
        self._on_logprobs = on_logprobs
        self._deltas = CallDeltas()
        self._tool_events = 0  # events that carried a piece of a tool call
        self.calls: list[ToolCall] = []  # the server's tool calls, once the answer ended
        self.response_format = body.get("response_format")  # as the server took it

    @property
    def answer(self) -> str:
        return self._out.answer

    @property
    def thinking(self) -> str:
        return (self._out.thinking + "".join(self._thinking)).strip()

    def _lines(self, lines: queue.Queue[Any], stop: threading.Event) -> None:
        """On a reader thread: the response's lines, then an _End (or a _Whole for a
        JSON body), or the error."""
        model = str(self.body.get("model", ""))
        body = self.body
        try:
            while True:
                with self.client.http.stream("POST", "/chat/completions", json=body) as r:
                    if r.status_code >= 400:
                        retry = self._refused(r, body)
                        if retry is not None:
                            body = retry
                            continue
                    self.client.check(r, model)
                    kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
                    if kind == "application/json" or kind.endswith("+json"):
                        lines.put(_Whole(self._read_whole(r, stop)))
                        return
                    for line in r.iter_lines():
                        if stop.is_set():
                            return
                        lines.put(line)
                lines.put(_End(kind))
                return
        except NetworkError as e:
            lines.put(e)
        except httpx.HTTPError as e:
            lines.put(self.client.transport_error(e))
        except Exception as e:  # a bug: reported by the generating thread
            log.exception("reading the stream of %s failed", self.client.base)
            lines.put(e)

    def _refused(self, r: httpx.Response, body: dict[str, Any]) -> dict[str, Any] | None:
        """A request refused for what it asked beyond a chat: the body to send instead
        (a json_schema in the form llama.cpp's servers take), or an Unsupported raised
        that says what the server cannot do; None for any other refusal."""
        message = _error_message(r)
        base = self.client.base
        if "response_format" in body and rejects_format(message):
            alt = fallback_format(body["response_format"])
            if alt is not None and alt != body["response_format"]:
                log.info("%s refused a json_schema response_format; sending it as %s", base, alt)
                self.response_format = alt
                return {**body, "response_format": alt}
            raise Unsupported(
                f"{base} cannot constrain the answer to a JSON schema: it refused "
                f"response_format ({_clip(message, 160)})."
            )
        if "tools" in body and _about_tools(message):
            raise Unsupported(
                f"{base} does not take tool calls for this model ({_clip(message, 160)})."
            )
        return None

    def _read_whole(self, r: httpx.Response, stop: threading.Event) -> bytes:
        body = bytearray()
        for piece in r.iter_bytes():
            if stop.is_set():
                break
            body += piece
            if len(body) > MAX_JSON_ANSWER:
                raise ServerFault(
                    f"{self.client.base} ignored stream=true and sent a JSON answer of more "
                    f"than {MAX_JSON_ANSWER // (1024 * 1024)} MB; it was not read."
                )
        return bytes(body)

    def __iter__(self) -> Iterator[Chunk]:
        lines: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(target=self._lines, args=(lines, stop), daemon=True)
        base = self.client.base
        limit = self.body.get("max_tokens")
        t0 = time.perf_counter()
        deadline = t0 + self.client.total_timeout
        last_data = t0  # keep-alive comments are not progress: only data events count
        t_first: float | None = None
        finish = FinishReason.STOP
        n = 0
        pieces = 0  # events that carried text: never more than the tokens they hold
        events = 0  # data events of any kind
        fault: NetworkError | None = None
        done = ended = False  # [DONE] seen; a choice said why it ended
        reader.start()
        try:
            while True:
                if self.cancel.is_set():
                    finish = FinishReason.CANCELLED
                    break
                now = time.perf_counter()
                if now > deadline:
                    raise ServerFault(
                        f"{base} did not finish the answer within "
                        f"{self.client.total_timeout:g} s; it was stopped there."
                    )
                if now - last_data > self.client.read_timeout:
                    raise self.client.silence_error()
                try:
                    item = lines.get(timeout=0.05)
                except queue.Empty:
                    continue
                if isinstance(item, Exception):
                    raise item
                if isinstance(item, _Whole):
                    chunks, reason = self._whole(item.body)
                    t_first = time.perf_counter()
                    n += 1 if chunks else 0
                    yield from chunks
                    if reason == "length":
                        finish = FinishReason.LENGTH
                    elif reason == "tool_calls":
                        finish = FinishReason.TOOL_CALLS
                    break
                if isinstance(item, _End):
                    if done or ended:
                        break  # a finish_reason without [DONE]: complete all the same
                    if events:
                        raise ServerFault(
                            f"The connection to {base} ended before the answer was "
                            "complete (the stream stopped without [DONE])."
                        )
                    said = f" (it sent {item.content_type})" if item.content_type else ""
                    raise ServerFault(f"{base} answered without a stream of events{said}.")
                if not item.startswith("data:"):
                    continue  # comments (keep-alive pings), event names, blank lines
                last_data = now
                data = item[5:].strip()
                if not data:
                    continue
                events += 1
                if data == "[DONE]":
                    done = True
                    break
                tool_events = self._tool_events
                chunks, reason = self._event(data)
                if any(c.text for c in chunks) or self._tool_events > tool_events:
                    pieces += 1
                    if limit is not None and pieces > limit:
                        raise ServerFault(
                            f"{base} kept sending past max_tokens ({limit}); "
                            "the answer was stopped there.",
                            FinishReason.LENGTH,
                        )
                if chunks and t_first is None:
                    t_first = time.perf_counter()
                n += sum(1 for c in chunks if c.logprob is not None) or (1 if chunks else 0)
                yield from chunks
                if reason:
                    ended = True
                if reason == "length":
                    finish = FinishReason.LENGTH
                elif reason == "tool_calls":
                    finish = FinishReason.TOOL_CALLS
        except NetworkError as e:
            fault = e
        finally:
            stop.set()
        # text held back (a tag that might have continued) belongs to the answer, even
        # to a partial one
        for channel, text in self._out.finish():
            yield Chunk(text, channel)
        # the server's calls, once complete, as the local path gives them
        self.calls = self._deltas.calls()
        for call in self.calls:
            yield Chunk(call.raw, TOOL_CALL)
        if fault is not None:
            raise fault
        if self.calls and finish is FinishReason.STOP:
            finish = FinishReason.TOOL_CALLS
        if finish is FinishReason.STOP and not self.calls:
            problem = format_problem(self.response_format, self.answer)
            if problem:
                raise ServerFault(
                    f"{base}'s answer does not follow the requested JSON format: {problem}. "
                    "The server may not support response_format."
                )
        t_end = time.perf_counter()
        self.stats.finish_reason = finish
        if not self.stats.completion_tokens:
            self.stats.completion_tokens = n
        self.stats.prompt_seconds = (t_first or t_end) - t0
        self.stats.generation_seconds = t_end - (t_first or t_end)

    def _event(self, data: str) -> tuple[list[Chunk], str | None]:
        """One data event's chunks and the finish_reason it gave, if any. Anything but a
        chat.completion.chunk is a ServerFault that quotes it."""
        base = self.client.base
        try:
            event = json.loads(data)
        except ValueError:
            raise ServerFault(f"{base} sent an event that is not JSON: {_clip(data)}") from None
        if isinstance(event, dict) and "error" in event:
            err = event["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise ServerFault(f"{base} reported an error: {_clip(str(msg), 200)}")
        chunks: list[Chunk] = []
        reason: str | None = None
        try:
            if not isinstance(event, dict):
                raise TypeError(type(event).__name__)
            self._usage(event.get("usage"))
            choices = event.get("choices") or []
            if not isinstance(choices, list):
                raise TypeError("choices")
            for choice in choices:
                chunks += self._chunks(choice)
                reason = choice.get("finish_reason") or reason
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
            raise ServerFault(
                f"{base} sent an event that is not a completion chunk: {_clip(data)}"
            ) from e
        return chunks, (str(reason) if reason else None)

    def _usage(self, usage: Any) -> None:
        if usage:
            self.stats.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.stats.completion_tokens = int(usage.get("completion_tokens") or 0)

    def _whole(self, body: bytes) -> tuple[list[Chunk], str | None]:
        """A server that ignored stream=true and sent the whole completion as one JSON:
        its answer is taken as it is; anything else is a ServerFault."""
        base = self.client.base
        text = body.decode("utf-8", "replace")
        try:
            answer = json.loads(text)
        except ValueError:
            raise ServerFault(f"{base} sent a JSON answer that does not parse.") from None
        if isinstance(answer, dict) and "error" in answer:
            return self._event(text)  # raises with the server's own message
        try:
            choice = answer["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict) or not isinstance(message.get("content") or "", str):
                raise TypeError("message")
            self._usage(answer.get("usage"))
            chunks = list(self._chunks({**choice, "delta": message}))
            reason = choice.get("finish_reason")
        except (TypeError, AttributeError, ValueError, KeyError, IndexError) as e:
            raise ServerFault(
                f"{base} ignored stream=true and its answer is not a chat completion: {_clip(text)}"
            ) from e
        log.info("%s ignored stream=true; its whole answer was taken", base)
        return chunks, (str(reason) if reason else None)

    def _chunks(self, choice: dict[str, Any]) -> Iterator[Chunk]:
        delta = choice.get("delta") or {}
        if delta.get("tool_calls"):
            self._deltas.add(delta["tool_calls"])
            self._tool_events += 1
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        text = delta.get("content") or ""
        if not isinstance(text, str) or not isinstance(reasoning or "", str):
            raise TypeError("content")
        if reasoning:
            self._thinking.append(reasoning)
            yield Chunk(reasoning, THINKING)
        entries = ((choice.get("logprobs") or {}).get("content")) or []
        first = entries[0] if entries else None
        logprob: float | None = None
        top: tuple[TokenAlternative, ...] = ()
        if first is not None:
            if not isinstance(first, dict):
                raise TypeError("logprobs")
            self._on_logprobs()
            logprob = float(first.get("logprob", 0.0))
            top = tuple(
                TokenAlternative(-1, str(t.get("token", "")), float(t.get("logprob", 0.0)))
                for t in first.get("top_logprobs") or []
            )
        pieces = self._out.feed(text) if text else []
        if not pieces and first is not None:
            yield Chunk("", logprob=logprob, top=top)
            return
        for i, (channel, piece) in enumerate(pieces):
            if i == 0:
                yield Chunk(piece, channel, logprob=logprob, top=top)
            else:
                yield Chunk(piece, channel)


class RemoteBackend:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        total_timeout: float = TOTAL_TIMEOUT,
        check: bool = True,
    ) -> None:
        """check: ask the server for its models now, so a wrong URL, key or model
        name fails at load time with its own message. read_timeout: the longest silence
        (keep-alive comments are silence); total_timeout: the longest one answer takes."""
        self.client = RemoteClient(
            base_url,
            api_key,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            total_timeout=total_timeout,
        )
        self.ref = ModelRef(name=model, endpoint=base_url)
        if check:
            try:
                offered = self.client.models()
            except NetworkError:
                self.client.close()
                raise
            if offered and model not in offered:
                self.client.close()
                raise NetworkError(
                    f"{self.client.base} has no model '{model}'; it offers: "
                    + ", ".join(offered[:8])
                )
        self.info = ModelInfo(
            path=str(self.ref),
            name=model,
            architecture="remote",
            n_ctx=0,
            n_ctx_train=0,
            n_vocab=0,
            bos_token="",
            eos_token="",
            eog_token_ids=frozenset(),
            add_bos=False,
        )
        # images are passed through: the server says itself if its model cannot see
        self.capabilities = Capabilities(tokens=False, logprobs=False, vision=True)
        self.version = f"OpenAI-compatible server at {self.client.base}"
        self._template = _server_template()

    def template(self, user_template: str | None = None) -> ChatTemplate:
        return self._template

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        items = list(request.history)
        if items and isinstance(items[0], Message):
            messages = conversation_messages(items, self._template)  # type: ignore[arg-type]
        else:
            messages = [dict(m) for m in items if isinstance(m, dict)]
        if request.system_prompt.strip():
            messages = [m for m in messages if m.get("role") != "system"]
            messages.insert(0, {"role": "system", "content": request.system_prompt})
        shown: Any = messages
        if has_images(items):  # passed through as image_url parts (data: URLs)
            try:
                messages, shown = openai_parts(items, messages, dict(request.images))
            except MissingImage as e:
                raise UserError(
                    f"An image of this conversation (sha256 {e}) is not in the database."
                ) from None
        messages, shown = wire_messages(messages), wire_messages(shown)
        if request.tools:
            shown = {"messages": shown, "tools": request.tools}
        text = json.dumps(shown, ensure_ascii=False, indent=2)
        return PreparedPrompt(text, [], self._template, messages, tokens_known=False)

    def _body(self, request: ChatRequest, messages: list[dict[str, Any]]) -> dict[str, Any]:
        s = request.sampling
        body: dict[str, Any] = {
            "model": self.ref.name,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": s.temperature,
            "top_p": s.top_p,
        }
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        if s.seed is not None:
            body["seed"] = s.seed
        if request.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = min(request.logprobs, 20)
        if request.grammar is not None and request.response_format is None:
            raise UserError(
                f"{self.ref.label} runs on a server: its answer cannot be constrained by a "
                "grammar, only by a JSON schema (response_format).",
                kind=FailureKind.BAD_REQUEST,
            )
        body.update(
            tool_body(
                request.tools,
                request.tool_choice,
                request.parallel_tool_calls,
                request.response_format,
            )
        )
        return body

    def _saw_logprobs(self) -> None:
        if not self.capabilities.logprobs:
            self.capabilities = Capabilities(tokens=False, logprobs=True, vision=True)

    def execute(
        self,
        request: ChatRequest,
        cancel: threading.Event,
        prompt: PreparedPrompt | None = None,
    ) -> RemoteStream:
        prompt = prompt or self.prepare(request)
        body = self._body(request, prompt.messages)
        return RemoteStream(self.client, body, prompt, cancel, self._saw_logprobs)

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        raise TokensUnavailable(f"The server of {self.ref.label} does not provide its tokenizer.")

    def token_bytes(self, token_id: int) -> bytes:
        raise TokensUnavailable(f"The server of {self.ref.label} does not provide its tokens.")

    def close(self) -> None:
        self.client.close()


def _about_tools(message: str) -> bool:
    """Whether an error says the server does not take tools (not any error that names
    a tool message)."""
    text = message.lower()
    refusals = ("not support", "unsupported", "does not support", "not allowed", "unrecognized")
    return "tool" in text and any(r in text for r in refusals)


def _error_message(r: httpx.Response) -> str:
    """The message of an error response (the OpenAI error object's, or its text)."""
    try:
        r.read()
        detail = r.json().get("error", {})
        message = str(detail.get("message", "") if isinstance(detail, dict) else detail)
    except (ValueError, AttributeError, httpx.HTTPError):
        message = r.text[:300] if r.is_stream_consumed else ""
    return " ".join(message.split())


def list_models(base_url: str, api_key: str = "", *, timeout: float = CONNECT_TIMEOUT) -> list[str]:
    """The model ids an OpenAI-compatible server offers (NetworkError if it cannot say)."""
    client = RemoteClient(base_url, api_key, connect_timeout=timeout, read_timeout=timeout)
    try:
        return client.models()
    finally:
        client.close()
