"""RemoteBackend against scripted servers on 127.0.0.1 (real HTTP, scripted answers):
rate limits, refused keys, unknown models, a server that never answers, a refused
connection, thinking blocks split across pieces."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chatapp.core.backend import ChatRequest
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import NetworkError
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.remote import RemoteBackend, api_base
from chatapp.server.run import ServerThread

HI = [{"role": "user", "content": "hi"}]


def _models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})


def _sse(events: list[dict]) -> StreamingResponse:
    def body() -> Iterator[str]:
        for e in events:
            yield f"data: {json.dumps(e)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(body(), media_type="text/event-stream")


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[Request], Response]], str]]:
    servers: list[ServerThread] = []

    def start(chat: Callable[[Request], Response]) -> str:
        async def handler(request: Request) -> Response:
            return chat(request)

        app = Starlette(
            routes=[
                Route("/v1/models", _models),
                Route("/v1/chat/completions", handler, methods=["POST"]),
            ]
        )
        server = ServerThread(app).start()
        servers.append(server)
        return server.url

    yield start
    for s in servers:
        s.stop()


def _run(url: str, **kw: object) -> list:
    backend = RemoteBackend(url, "m", **kw)  # type: ignore[arg-type]
    try:
        return list(backend.execute(ChatRequest(HI), threading.Event()))
    finally:
        backend.close()


def test_api_base() -> None:
    assert api_base("http://h:8080") == "http://h:8080/v1"
    assert api_base("h:8080/") == "http://h:8080/v1"
    assert api_base("http://h/api/v1/") == "http://h/api/v1"


def test_rate_limit_says_when_to_retry(scripted) -> None:
    url = scripted(
        lambda r: JSONResponse(
            {"error": {"message": "slow down"}}, status_code=429, headers={"Retry-After": "7"}
        )
    )
    with pytest.raises(NetworkError, match=r"rate-limiting requests \(429\): try again in 7 s"):
        _run(url)


def test_forbidden_and_unknown_model(scripted) -> None:
    url = scripted(lambda r: JSONResponse({"error": {"message": "no"}}, status_code=403))
    with pytest.raises(NetworkError, match=r"refused the API key \(403\)"):
        _run(url)
    url = scripted(lambda r: JSONResponse({"error": {"message": "no such"}}, status_code=404))
    with pytest.raises(NetworkError, match="has no model 'm'"):
        _run(url)
    url = scripted(lambda r: JSONResponse({"error": {"message": "boom"}}, status_code=500))
    with pytest.raises(NetworkError, match="answered 500: boom"):
        _run(url)


def test_thinking_is_split_with_the_same_code(scripted) -> None:
    pieces = ["<th", "ink>Let me ", "see.</thi", "nk>\n\nThe ans", "wer."]
    events = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    url = scripted(lambda r: _sse(events))
    chunks = _run(url)
    thinking = "".join(c.text for c in chunks if c.channel == "thinking")
    answer = "".join(c.text for c in chunks if c.channel == "answer")
    assert thinking.strip() == "Let me see."
    assert answer.strip() == "The answer."


def test_reasoning_content_deltas_are_thinking(scripted) -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"reasoning_content": "Hmm."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Yes."}}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
    ]
    url = scripted(lambda r: _sse(events))
    backend = RemoteBackend(url, "m")
    stream = backend.execute(ChatRequest(HI), threading.Event())
    list(stream)
    backend.close()
    assert stream.thinking == "Hmm." and stream.answer == "Yes."
    assert (stream.stats.prompt_tokens, stream.stats.completion_tokens) == (9, 3)


def test_the_request_carries_the_sampling(scripted) -> None:
    seen: list[dict] = []

    def chat(request: Request) -> Response:
        return _sse([{"choices": [{"index": 0, "delta": {"content": "ok"}}]}])

    async def capture(request: Request) -> Response:
        seen.append(json.loads(await request.body()))
        return chat(request)

    app = Starlette(
        routes=[
            Route("/v1/models", _models),
            Route("/v1/chat/completions", capture, methods=["POST"]),
        ]
    )
    server = ServerThread(app).start()
    try:
        backend = RemoteBackend(server.url, "m", api_key="k")
        params = SamplingParams(temperature=0.3, top_p=0.8, max_tokens=5, seed=4)
        list(
            backend.execute(
                ChatRequest(HI, system_prompt="Be brief.", sampling=params), threading.Event()
            )
        )
        backend.close()
    finally:
        server.stop()
    body = seen[0]
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, *HI]
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        0.3,
        0.8,
        5,
        4,
    )
    assert body["stream"] is True and "logprobs" not in body


@pytest.fixture
def silent() -> Iterator[str]:
    """A socket that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    stop.set()
    t.join()
    for c in accepted:
        c.close()
    sock.close()


def test_a_server_that_never_answers_times_out(silent: str) -> None:
    with pytest.raises(NetworkError, match=r"did not answer within 0.5 s"):
        RemoteBackend(silent, "m", read_timeout=0.5)
    backend = RemoteBackend(silent, "m", read_timeout=0.5, check=False)
    with pytest.raises(NetworkError, match=r"did not answer within 0.5 s"):
        list(backend.execute(ChatRequest(HI), threading.Event()))
    backend.close()


def test_cancel_while_the_server_is_silent_ends_the_turn(silent: str) -> None:
    backend = RemoteBackend(silent, "m", read_timeout=60, check=False)
    cancel = threading.Event()
    stream = backend.execute(ChatRequest(HI), cancel)
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    assert list(stream) == []
    assert stream.stats.finish_reason is FinishReason.CANCELLED
    assert time.monotonic() - t0 < 30  # not the 60 s read timeout
    backend.close()


def test_connection_refused_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        NetworkError, match=r"Cannot reach http://127.0.0.1:\d+/v1: is the server running"
    ):
        RemoteBackend(f"http://127.0.0.1:{port}", "m")
