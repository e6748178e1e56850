"""The OpenAI-compatible API: a Starlette app over the chat service.

/v1/models, /v1/chat/completions and /v1/completions, streamed as server-sent events or
not, in OpenAI's request, response, usage and error shapes. Every request is one more
client of the service: its turn queues on the inference thread with the window's own
turns, in arrival order. With an API key every route wants `Authorization: Bearer KEY`;
CORS is off unless origins are given, and requests a web page could send on its own
are refused (chatapp.server.guard).

What one request may cost the others is bounded: the body's size, and its messages
and characters against the model's context (checked before the model's thread
tokenizes anything); a request whose client left while it was queued is never run,
and a stream whose client stops reading is cancelled after `send_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sse_starlette.sse import EventSourceResponse, SendTimeoutError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from chatapp.core.backend import ModelRef
from chatapp.core.errors import FailureKind
from chatapp.server.embeddings import Embeddings
from chatapp.server.errors import ApiError, bad_api_key, unknown_model
from chatapp.server.guard import GuardMiddleware, allow_host
from chatapp.server.images import http_fetcher
from chatapp.server.requests import (
    Call,
    chat_call,
    check_size,
    completion_call,
    read_json,
    split_system,
)
from chatapp.server.turns import (
    ApiTurn,
    Delta,
    TurnError,
    chat_logprobs,
    completion_logprobs,
    tool_call_delta,
    usage,
)
from chatapp.service import ChatService, ClientTurn, TurnOptions

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024


STREAM_INTERVAL_MS = 20
SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerConfig:
    api_key: str = ""  # "": no key asked (loopback only; the CLI enforces it)
    cors_origins: tuple[str, ...] = ()
    record: bool = False  # save each request and its answer as a conversation
    max_body_bytes: int = MAX_BODY_BYTES
    # the shortest time between two streamed events: faster tokens go out together
    # (0: one event per token); see chatapp.server.turns
    stream_interval_ms: int = STREAM_INTERVAL_MS
    # a streamed event the client has not taken for this long: its turn is cancelled
    send_timeout: float = SEND_TIMEOUT
    # names the server answers to besides loopback and the address it is reached on
    # (the configured --host); other Host headers are refused (DNS rebinding)
    hosts: tuple[str, ...] = ()
    # the model file as the user named it (a symlink keeps its own name): its name is
    # the model's id while that file is the one loaded
    named_model: str = ""
    embedding_model: str = ""  # a GGUF for /v1/embeddings ("": that route says there is none)
    # image_url parts with http(s) URLs: fetched by the server (False: refused; data:
    # URLs are always taken)
    fetch_image_urls: bool = False


class ApiKeyMiddleware:
    """Every HTTP route wants the key (CORS preflights are answered before this)."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = Headers(scope=scope).get("authorization", "").encode()
            if not hmac.compare_digest(given, self.expected):
                await bad_api_key().response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _named(service: ChatService, named: str) -> Path | None:
    """The path the user named, while the file it leads to is the one loaded."""
    loaded = service.loaded
    if not named or loaded is None or not loaded.ref.is_local:
        return None
    return Path(named) if ModelRef.local(named) == loaded.ref else None


def model_id(service: ChatService, named: str = "") -> str | None:
    """The id clients use: the model file's name without .gguf, as the user named it
    (not a symlink's target), or a remote model's id."""
    loaded = service.loaded
    if loaded is None:
        return None
    given = _named(service, named)
    if given is not None:
        return given.stem
    ref = loaded.ref
    return Path(ref.name).stem if ref.is_local else ref.name


def _check_model(service: ChatService, name: str, named: str = "") -> str:
    served = model_id(service, named)
    loaded = service.loaded
    if served is None or loaded is None:
        raise unknown_model(name)
    given = _named(service, named)
    known = {served, Path(loaded.ref.name).stem, Path(loaded.ref.name).name, str(loaded.ref)}
    if given is not None:
        known |= {given.name, named}
    if name not in known:
        raise unknown_model(name)
    return served


class _Stream(EventSourceResponse):
    """Server-sent events; a client that takes no event for send_timeout seconds has
    its stream closed (its turn is cancelled as the events generator closes)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning(
                "a client took no event for %s s: its answer was cancelled", self.send_timeout
            )


class Api:
    def __init__(self, service: ChatService, config: ServerConfig) -> None:
        self.service = service
        self.config = config
        self._vocab: dict[str, dict[int, bytes]] = {}

    # -- routes -----------------------------------------------------------------------

    async def models(self, request: Request) -> Response:
        served = model_id(self.service, self.config.named_model)
        data = [] if served is None else [self._model_card(served)]
        return JSONResponse({"object": "list", "data": data})

    async def model(self, request: Request) -> Response:
        name = request.path_params["model"]
        return JSONResponse(
            self._model_card(_check_model(self.service, name, self.config.named_model))
        )

    def _model_card(self, served: str) -> dict[str, Any]:
        return {"id": served, "object": "model", "created": 0, "owned_by": "chatapp"}

    async def chat(self, request: Request) -> Response:
        data = await read_json(request, self.config.max_body_bytes)
        if self.config.fetch_image_urls:  # a fetch blocks: off the event loop
            call = await asyncio.to_thread(chat_call, data, http_fetcher())
        else:
            call = chat_call(data)
        return await self._run(request, call, chat=True)

    async def completions(self, request: Request) -> Response:
        call = completion_call(await read_json(request, self.config.max_body_bytes))
        return await self._run(request, call, chat=False)

    # -- one turn -----------------------------------------------------------------------

    async def _vocabulary(self) -> dict[int, bytes]:
        """Every token's bytes, read once per model (log-probabilities name tokens)."""
        loaded = self.service.loaded
        if loaded is None:
            return {}
        key = str(loaded.ref)
        if key not in self._vocab:
            pairs = await asyncio.wrap_future(
                self.service.describe_tokens(range(loaded.info.n_vocab))
            )
            self._vocab = {key: dict(pairs)}
        return self._vocab[key]

    def _options(self, call: Call) -> TurnOptions:
        """The request's fields; the rest is resolved like any turn's (the app's settings,
        then the model's defaults)."""
        s = call.sampling
        given = {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
            "repeat_penalty": 1.0,  # OpenAI's API has none (nor top_k, min_p: resolved)
        }
        logprobs = max(call.top_logprobs, 1) if call.logprobs else 0
        return TurnOptions(
            overrides=given,
            logprobs=logprobs,
            tool_specs=call.tools,
            tool_choice=call.tool_choice if call.tools else None,
            parallel=call.parallel_tool_calls if call.tools else None,
            json_schema=call.response_format,
            images=call.images,
        )

    async def _run(self, request: Request, call: Call, *, chat: bool) -> Response:
        served = _check_model(self.service, call.model, self.config.named_model)
        loaded = self.service.loaded
        check_size(call, loaded.info.n_ctx if loaded is not None else 0)
        vocab = await self._vocabulary() if call.logprobs else None
        turn = ApiTurn(
            self.service,
            stops=call.sampling.stop,
            vocab=vocab,
            min_interval=self.config.stream_interval_ms / 1000 if call.stream else 0.0,
        )
        if call.prompt is not None:
            system, thread = "", [{"role": "user", "content": call.prompt}]
        else:
            system, thread = split_system(call.messages)
        if self.config.record:
            # saved at once and while it streams, as the window's turns are
            client = ClientTurn(
                cache_key=call.cache_key,
                prompt_text=call.prompt,
                meta={"source": "api", "endpoint": "chat" if chat else "completions"},
            )
            turn.handle = self.service.record(
                thread, system, self._options(call), turn.listener, client=client
            )
        else:
            turn.handle = self.service.complete(
                thread,
                system,
                self._options(call),
                turn.listener,
                cache_key=call.cache_key,
                prompt_text=call.prompt,
            )
        ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        if call.stream:
            return _Stream(
                self._events(turn, call, ident, served, chat),
                ping=15,
                sep="\n",
                send_timeout=self.config.send_timeout,
            )
        return await self._whole(request, turn, call, ident, served, chat)

    async def _whole(
        self, request: Request, turn: ApiTurn, call: Call, ident: str, served: str, chat: bool
    ) -> Response:
        answer: list[str] = []
        thinking: list[str] = []
        tokens: list[Any] = []
        watcher = asyncio.create_task(_watch_disconnect(request, turn))
        try:
            async for d in turn.deltas():
                (thinking if d.channel == "thinking" else answer).append(d.text)
                if d.channel != "thinking":
                    tokens.extend(d.tokens)
        except TurnError as e:
            raise _turn_error(e) from e
        finally:
            watcher.cancel()
        text = "".join(answer)
        head = {"id": ident, "created": int(time.time()), "model": served}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text.strip()}
            if turn.calls:
                message["tool_calls"] = [c.openai() for c in turn.calls]
                message["content"] = text.strip() or None
            if thinking:
                message["reasoning_content"] = "".join(thinking).strip()
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": {"content": chat_logprobs(tokens)} if call.logprobs else None,
                "finish_reason": turn.finish_reason,
            }
            body = {**head, "object": "chat.completion", "choices": [choice]}
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": completion_logprobs(tokens, 0) if call.logprobs else None,
                "finish_reason": turn.finish_reason,
            }
            body = {**head, "object": "text_completion", "choices": [choice]}
        body["usage"] = usage(turn.stats)
        return JSONResponse(body)

    async def _events(
        self, turn: ApiTurn, call: Call, ident: str, served: str, chat: bool
    ) -> AsyncIterator[dict[str, str]]:
        created = int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"
        offset = 0

        def event(choices: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
            body = {"id": ident, "object": kind, "created": created, "model": served}
            body.update(choices=choices, **extra)
            return {"data": json.dumps(body, ensure_ascii=False, separators=(",", ":"))}

        def piece(d: Delta | None, finish: str | None = None) -> dict[str, Any]:
            nonlocal offset
            text = d.text if d else ""
            toks = d.tokens if d else []
            if chat:
                delta: dict[str, Any] = {}
                if d is not None and d.call is not None:
                    delta["tool_calls"] = [tool_call_delta(d.call, d.index)]
                elif d is not None:
                    delta["reasoning_content" if d.channel == "thinking" else "content"] = text
                lp = {"content": chat_logprobs(toks)} if call.logprobs and toks else None
                return {"index": 0, "delta": delta, "logprobs": lp, "finish_reason": finish}
            lp2 = completion_logprobs(toks, offset) if call.logprobs and toks else None
            offset += len(text)
            return {"index": 0, "text": text, "logprobs": lp2, "finish_reason": finish}

        if chat:
            yield event(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ]
            )
        try:
            async for d in turn.deltas():
                yield event([piece(d)])
        except TurnError as e:
            err = _turn_error(e)
            yield {"data": json.dumps(err.body())}
            yield {"data": "[DONE]"}
            return
        finally:
            # closed early (the client left or stopped reading): stop the turn now,
            # not when the suspended deltas() generator is collected
            if turn.handle is not None and not turn.handle.done:
                turn.handle.cancel()
        yield event([piece(None, turn.finish_reason)])
        if call.include_usage:
            yield event([], usage=usage(turn.stats))
        yield {"data": "[DONE]"}


async def _watch_disconnect(request: Request, turn: ApiTurn) -> None:
    """A non-streaming client that hangs up stops its turn too."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            if turn.handle is not None:
                turn.handle.cancel()
            return


# a failed turn's kind -> (HTTP status, OpenAI error type, code); other kinds are 500s
_TURN_ERRORS: dict[FailureKind, tuple[int, str, str | None]] = {
    FailureKind.CONTEXT_FULL: (400, "invalid_request_error", "context_length_exceeded"),
    FailureKind.BAD_REQUEST: (400, "invalid_request_error", None),
    FailureKind.TEMPLATE: (400, "invalid_request_error", "template_error"),
    FailureKind.NOT_FOUND: (404, "invalid_request_error", "not_found"),
    FailureKind.NO_MODEL: (503, "server_error", "model_not_loaded"),
    FailureKind.BACKEND_UNREACHABLE: (502, "server_error", "backend_unreachable"),
    FailureKind.BACKEND_FAILED: (502, "server_error", "backend_error"),
    FailureKind.DISK_FULL: (507, "server_error", "disk_full"),
    FailureKind.STORAGE: (503, "server_error", "storage_error"),
}


def _turn_error(e: TurnError) -> ApiError:
    status, type_, code = _TURN_ERRORS.get(e.kind, (500, "server_error", None))
    return ApiError(status, str(e), type_, code=code)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = "not_found" if exc.status_code == 404 else None
    return ApiError(exc.status_code, str(exc.detail), code=code).response()


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("API request failed", exc_info=exc)
    return ApiError(500, f"The server had an error: {exc}", "server_error").response()


def create_app(service: ChatService, config: ServerConfig | None = None) -> Starlette:
    config = config or ServerConfig()
    api = Api(service, config)
    embeddings = Embeddings(config.embedding_model, config.max_body_bytes)
    routes = [
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.model, methods=["GET"]),
        Route("/v1/chat/completions", api.chat, methods=["POST"]),
        Route("/v1/completions", api.completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings.create, methods=["POST"]),
    ]
    hosts: set[str] = set()
    for host in config.hosts:
        allow_host(hosts, host)
    middleware = [Middleware(GuardMiddleware, hosts=hosts, origins=config.cors_origins)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    if config.api_key:
        middleware.append(Middleware(ApiKeyMiddleware, key=config.api_key))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _server_error,
        },
    )
    app.state.api = api
    app.state.hosts = hosts  # the names the guard accepts besides loopback
    app.state.embeddings = embeddings  # close() it after serving: it frees the model
    return app
