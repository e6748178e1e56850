"""Several clients at once share the one model fairly and never mix tokens; a client
that hangs up stops its generation within one token (seen from the service)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from chatapp.core.conversation import FinishReason
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, TurnHandle, TurnOptions
from chatapp.service.events import TurnChunk, TurnFinished
from tests.server.conftest import MODEL_ID, WAIT, client

pytestmark = pytest.mark.model

GREEDY = {"temperature": 0.0, "seed": 3, "max_tokens": 16}


def _chat(url: str) -> str:
    stream = client(url).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Name three fruits."}],
        stream=True,
        **GREEDY,
    )
    return "".join(ev.choices[0].delta.content or "" for ev in stream if ev.choices)


def _text(url: str) -> str:
    stream = client(url).completions.create(
        model=MODEL_ID, prompt="Once upon a time, in a small village,", stream=True, **GREEDY
    )
    return "".join(ev.choices[0].text for ev in stream if ev.choices)


def _window(service: ChatService) -> str:
    """A turn the way the window's ChatSession runs one: service.send with the store."""
    opts = TurnOptions(sampling=SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=16))
    result = service.send(None, "What is two plus two?", options=opts).result(WAIT)
    assert isinstance(result, TurnFinished), result
    return result.message.content


def test_two_clients_and_a_window_turn_all_complete_unmixed(
    api: str, smol: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    alone = {"chat": _chat(api), "text": _text(api), "window": _window(smol)}
    assert len(set(alone.values())) == 3 and all(alone.values())

    started = threading.Barrier(3)
    submitted: list[str] = []
    real_complete, real_send = smol.complete, smol.send

    def complete(*args: Any, **kw: Any) -> TurnHandle:
        submitted.append("api")
        return real_complete(*args, **kw)

    def send(*args: Any, **kw: Any) -> TurnHandle:
        submitted.append("window")
        return real_send(*args, **kw)

    monkeypatch.setattr(smol, "complete", complete)
    monkeypatch.setattr(smol, "send", send)
    together: dict[str, str] = {}

    def run(name: str, fn: Any, arg: Any) -> None:
        started.wait()
        together[name] = fn(arg)

    threads = [
        threading.Thread(target=run, args=("chat", _chat, api)),
        threading.Thread(target=run, args=("text", _text, api)),
        threading.Thread(target=run, args=("window", _window, smol)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert sorted(submitted) == ["api", "api", "window"]
    assert together == alone  # each got exactly its own tokens


def test_a_client_that_hangs_up_stops_its_generation(
    api: str, smol: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    handles: list[TurnHandle] = []
    after_cancel: list[TurnChunk] = []
    real = smol.complete

    def spy(messages: Any, system: str, options: Any, listener: Any, **kw: Any) -> TurnHandle:
        box: list[TurnHandle] = []

        def watch(event: Any) -> None:
            if (
                isinstance(event, TurnChunk)
                and event.chunk.token_id is not None
                and box
                and box[0].cancel_event.is_set()
            ):
                after_cancel.append(event)
            listener(event)

        handle = real(messages, system, options, watch, **kw)
        box.append(handle)
        handles.append(handle)
        return handle

    monkeypatch.setattr(smol, "complete", spy)
    stream = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Write a very long story about the sea."}],
        stream=True,
        temperature=0.0,
        max_tokens=400,
    )
    got = 0
    for ev in stream:
        if ev.choices and ev.choices[0].delta.content:
            got += 1
        if got >= 4:
            break
    stream.close()  # the client goes away mid-stream
    result = handles[0].result(WAIT)
    assert isinstance(result, TurnFinished)
    assert result.stats.finish_reason is FinishReason.CANCELLED
    assert result.stats.completion_tokens < 400
    assert len(after_cancel) <= 1  # stopped within one token of the cancel
