"""Servers that break the protocol, on 127.0.0.1, driven through `chatapp chat` (a real
process, the real chat service) and through RemoteBackend: each ends the turn with one
clear line and a non-zero exit, and the answer's text so far is kept, marked for what
happened. A server that ignores stream=true and sends a whole completion is taken at its
word."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from chatapp.core.backend import ChatRequest, ModelRef
from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.errors import NetworkError
from chatapp.core.store import Store
from chatapp.engine.remote import RemoteBackend, ServerFault
from chatapp.paths import app_paths
from chatapp.server.run import ServerThread

RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
HI = [{"role": "user", "content": "hi"}]


def _piece(text: str, finish: str | None = None) -> str:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n"


async def _events(request: Request) -> AsyncIterator[str]:
    """What each fault streams (the path's first part names the fault)."""
    fault = request.path_params["fault"]
    if fault == "cut":  # two pieces, then the connection ends: no finish, no [DONE]
        yield _piece("Hello ")
        yield _piece("wor")
    elif fault == "endless":  # ignores max_tokens: pieces until the client goes
        for i in range(1_000_000):
            yield _piece(f"w{i} ")
            await asyncio.sleep(0.002)
    elif fault == "pings":  # one piece, then keep-alive comments forever
        yield _piece("Thinking about it")
        while True:
            yield ": keep-alive\n\n"
            await asyncio.sleep(0.05)
    elif fault == "list":  # a list where an event object belongs
        yield _piece("Partial")
        yield "data: [1, 2, 3]\n\n"
        yield "data: [DONE]\n\n"
    elif fault == "notjson":
        yield _piece("Partial")
        yield "data: {this is not json\n\n"
        yield "data: [DONE]\n\n"
    elif fault == "choices":  # choices of the wrong shape
        yield _piece("Partial")
        yield 'data: {"choices": [["delta"]]}\n\n'
        yield "data: [DONE]\n\n"
    elif fault == "finished-no-done":  # a finish_reason, then the end without [DONE]
        yield _piece("All ")
        yield _piece("done.", "stop")


async def _chat(request: Request) -> Response:
    fault = request.path_params["fault"]
    if fault == "whole":  # ignores stream=true: one JSON completion
        return JSONResponse(
            {
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "The whole answer."},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 4},
            }
        )
    if fault == "whole-junk":  # ignores stream=true with JSON that is no completion
        return JSONResponse({"status": "ok", "result": ["?"]})
    if fault == "redirect":
        return RedirectResponse("http://127.0.0.1:9/elsewhere/v1/chat/completions", 307)
    if fault == "html":  # a proxy's page instead of a stream
        return Response("<html>Please log in</html>", media_type="text/html")
    return StreamingResponse(_events(request), media_type="text/event-stream")


async def _models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/{fault}/v1/models", _models),
            Route("/{fault}/v1/chat/completions", _chat, methods=["POST"]),
        ]
    )
    s = ServerThread(app).start()
    yield s.url
    s.stop()


def chat(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), "chat", "--backend", url, "--backend-model", "m", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _answers() -> list[Message]:
    with Store(app_paths().database) as store:
        conv = store.list_conversations()[0]
        return [m for m in store.messages(conv.id) if m.role is Role.ASSISTANT]


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatapp: error: "), res.stderr
    assert "Traceback" not in res.stderr and "Generation failed" not in res.stderr
    return lines[0]


def test_a_stream_cut_before_done_is_a_failure_that_keeps_the_text(server: str) -> None:
    res = chat(f"{server}/cut/v1", "Say hello.")
    line = _one_error_line(res)
    assert "ended before the answer was complete" in line and "partial answer is kept" in line
    assert res.stdout.strip() == "Hello wor"
    [answer] = _answers()
    assert answer.content == "Hello wor" and answer.finish_reason is FinishReason.ERROR


def test_max_tokens_is_enforced_on_our_side(server: str) -> None:
    res = chat(f"{server}/endless/v1", "--max-tokens", "5", "Go on forever.")
    line = _one_error_line(res)
    assert "kept sending past max_tokens (5)" in line
    [answer] = _answers()
    assert answer.content.split() == ["w0", "w1", "w2", "w3", "w4"]
    assert answer.finish_reason is FinishReason.LENGTH


def test_keep_alive_pings_do_not_outlast_the_total_deadline(server: str) -> None:
    res = chat(f"{server}/pings/v1", "--timeout", "2", "Take your time.")
    line = _one_error_line(res)
    assert "did not finish the answer within 2 s" in line
    [answer] = _answers()
    assert answer.content == "Thinking about it" and answer.finish_reason is FinishReason.ERROR


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("list", "not a completion chunk: '[1, 2, 3]'"),
        ("notjson", "not JSON: '{this is not json'"),
        ("choices", "not a completion chunk"),
    ],
)
def test_malformed_events_are_one_line_and_keep_the_text(
    server: str, fault: str, said: str
) -> None:
    res = chat(f"{server}/{fault}/v1", "Hello?")
    line = _one_error_line(res)
    assert said in line
    [answer] = _answers()
    assert answer.content == "Partial" and answer.finish_reason is FinishReason.ERROR


def test_a_redirect_is_named_and_nothing_empty_is_saved(server: str) -> None:
    res = chat(f"{server}/redirect/v1", "Hello?")
    line = _one_error_line(res)
    assert "answered 307: a redirect to 'http://127.0.0.1:9/elsewhere" in line
    assert _answers() == []  # an answer that never began is not kept as finished


def test_a_page_instead_of_a_stream(server: str) -> None:
    line = _one_error_line(chat(f"{server}/html/v1", "Hello?"))
    assert "answered without a stream of events (it sent text/html)" in line
    assert _answers() == []


def test_a_whole_json_completion_is_taken_as_the_answer(server: str) -> None:
    ref = str(ModelRef(name="m", endpoint=f"{server}/whole/v1"))
    res = subprocess.run(
        [sys.executable, str(RUN_CLI), "chat", "-m", ref, "Hello?"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "The whole answer."
    [answer] = _answers()
    assert answer.content == "The whole answer." and answer.finish_reason is FinishReason.STOP
    assert (answer.prompt_tokens, answer.completion_tokens) == (7, 4)


def test_a_whole_json_that_is_no_completion_fails(server: str) -> None:
    line = _one_error_line(chat(f"{server}/whole-junk/v1", "Hello?"))
    assert "ignored stream=true and its answer is not a chat completion" in line
    assert _answers() == []


def _stream(url: str, **kw: object) -> tuple[str, BaseException | None]:
    backend = RemoteBackend(url, "m", **kw)  # type: ignore[arg-type]
    stream = backend.execute(ChatRequest(HI), threading.Event())
    error: BaseException | None = None
    try:
        for _ in stream:
            pass
    except NetworkError as e:
        error = e
    finally:
        backend.close()
    return stream.answer, error


def test_a_finish_reason_without_done_is_a_complete_answer(server: str) -> None:
    answer, error = _stream(f"{server}/finished-no-done/v1")
    assert error is None and answer == "All done."


def test_faults_say_how_the_partial_answer_is_marked(server: str) -> None:
    answer, error = _stream(f"{server}/endless/v1", total_timeout=1.0)
    assert isinstance(error, ServerFault) and error.finish_reason is FinishReason.ERROR
    assert "within 1 s" in str(error) and answer.startswith("w0 w1")
    answer, error = _stream(f"{server}/cut/v1")
    assert isinstance(error, ServerFault) and answer == "Hello wor"


def test_keep_alive_comments_are_silence_to_the_read_timeout(server: str) -> None:
    answer, error = _stream(f"{server}/pings/v1", read_timeout=1.0)
    assert isinstance(error, ServerFault) and "did not answer within 1 s" in str(error)
    assert answer == "Thinking about it"
