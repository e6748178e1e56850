"""What a web page, a careless client or a hostile one can make the server do: each is
sent from outside, over HTTP to a real server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from chatapp.core.conversation import FinishReason
from chatapp.server import ServerConfig, ServerThread, create_app
from chatapp.service import ChatService, TurnHandle
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnPrompt
from chatapp.service.turn import CLIENT_LEFT
from tests.server.conftest import MODEL_ID, WAIT, client

pytestmark = pytest.mark.model

ROOT = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "Hi"}]
JSON = {"content-type": "application/json"}


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    return err


def _watch(service: ChatService, monkeypatch: pytest.MonkeyPatch, method: str = "complete"):
    """Every turn the server starts: its handle and the events it got, in order."""
    turns: list[tuple[TurnHandle, list[Any]]] = []
    real = getattr(service, method)

    def spy(*args: Any, **kw: Any) -> TurnHandle:
        events: list[Any] = []
        listener = args[3] if len(args) > 3 else kw.pop("listener")

        def hear(event: Any) -> None:
            events.append(event)
            listener(event)

        handle = real(*args[:3], hear, *args[4:], **kw)
        turns.append((handle, events))
        return handle

    monkeypatch.setattr(service, method, spy)
    return turns


def _wait(condition: Callable[[], bool], what: str) -> None:
    import time

    deadline = time.monotonic() + WAIT  # only so that a broken server fails, not hangs
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


# -- what a web page can send ---------------------------------------------------------------


def test_a_rebinding_host_is_refused_and_loopback_names_are_served(api: str) -> None:
    port = httpx.URL(api).port
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.evil.example"):
        err = _error(httpx.get(f"{api}/models", headers={"Host": host}), 403)
        assert err["code"] == "host_not_allowed"
        body = {"model": MODEL_ID, "messages": HI, "max_tokens": 1}
        r = httpx.post(f"{api}/chat/completions", json=body, headers={"Host": host})
        _error(r, 403)
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost", f"[::1]:{port}"):
        r = httpx.get(f"{api}/models", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)
        assert [m["id"] for m in r.json()["data"]] == [MODEL_ID]


def test_the_configured_host_name_is_served(serve) -> None:
    url = serve(hosts=("chat.lan",))
    assert httpx.get(f"{url}/models", headers={"Host": "chat.lan:8080"}).status_code == 200
    _error(httpx.get(f"{url}/models", headers={"Host": "other.lan"}), 403)


def test_a_post_that_is_not_json_is_refused(api: str, smol, monkeypatch) -> None:
    turns = _watch(smol, monkeypatch)
    body = json.dumps({"model": MODEL_ID, "messages": HI, "max_tokens": 1})
    for kind in (
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        None,
    ):
        headers = {"content-type": kind} if kind else {}
        r = httpx.post(f"{api}/chat/completions", content=body, headers=headers)
        assert _error(r, 415)["code"] == "unsupported_media_type"
    assert turns == []  # none reached the model
    ok = httpx.post(f"{api}/chat/completions", content=body, headers=JSON, timeout=WAIT)
    assert ok.status_code == 200, ok.text


def test_a_cross_origin_request_needs_an_allowed_origin(serve, smol, monkeypatch) -> None:
    turns = _watch(smol, monkeypatch)
    body = {"model": MODEL_ID, "messages": HI, "max_tokens": 1}
    off = serve()
    for origin in ("http://evil.example", "null", "http://localhost:3000"):
        r = httpx.post(f"{off}/chat/completions", json=body, headers={"Origin": origin})
        assert _error(r, 403)["code"] == "origin_not_allowed"
        _error(httpx.get(f"{off}/models", headers={"Origin": origin}), 403)
    assert turns == []

    on = serve(cors_origins=("http://tool.example",))
    _error(
        httpx.post(f"{on}/chat/completions", json=body, headers={"Origin": "http://evil.example"}),
        403,
    )
    r = httpx.post(
        f"{on}/chat/completions", json=body, headers={"Origin": "http://tool.example"}, timeout=WAIT
    )
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "http://tool.example"
    assert len(turns) == 1


# -- bad input: 400s in OpenAI's shape, never a 500 -------------------------------------------


def test_json_nested_5000_deep_is_a_400(api: str) -> None:
    deep = b'{"model": "m", "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    err = _error(httpx.post(f"{api}/chat/completions", content=deep, headers=JSON), 400)
    assert err["type"] == "invalid_request_error"
    assert "nested" in err["message"]


def test_a_lone_surrogate_is_a_400(api: str) -> None:
    for path, field in (("chat/completions", "messages"), ("completions", "prompt")):
        text = '"Hello \\ud800 there"'
        value = f'[{{"role": "user", "content": {text}}}]' if field == "messages" else text
        raw = f'{{"model": "{MODEL_ID}", "{field}": {value}, "max_tokens": 2}}'.encode()
        err = _error(httpx.post(f"{api}/{path}", content=raw, headers=JSON), 400)
        assert "surrogate" in err["message"], err


def test_an_empty_completions_prompt_is_a_400(api: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client(api).completions.create(model=MODEL_ID, prompt="", max_tokens=2)
    assert e.value.status_code == 400
    assert e.value.body["param"] == "prompt"
    assert "empty" in e.value.message


# -- what one request may cost the others -----------------------------------------------------


def test_100000_messages_are_refused_while_another_answer_streams(
    api: str, smol, monkeypatch
) -> None:
    turns = _watch(smol, monkeypatch)
    stream = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        stream=True,
        max_tokens=48,
        temperature=0.0,
    )
    events = iter(stream)
    first = next(events)
    assert first.choices[0].delta.role == "assistant"

    flood = {"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}] * 100_000}
    err = _error(httpx.post(f"{api}/chat/completions", json=flood, timeout=WAIT), 400)
    assert err["code"] == "array_above_max_length"
    assert "length 100000" in err["message"]
    huge = {"model": MODEL_ID, "messages": [{"role": "user", "content": "word " * 700_000}]}
    err = _error(httpx.post(f"{api}/chat/completions", json=huge, timeout=WAIT), 400)
    assert err["code"] == "context_length_exceeded"
    prompt = {"model": MODEL_ID, "prompt": "x" * 3_000_000}
    _error(httpx.post(f"{api}/completions", json=prompt, timeout=WAIT), 400)

    rest = list(events)
    text = "".join(e.choices[0].delta.content or "" for e in rest if e.choices)
    assert text.strip()
    assert [e.choices[0].finish_reason for e in rest if e.choices][-1] in ("stop", "length")
    assert len(turns) == 1  # only the streaming answer ever reached the model's thread


def test_a_request_is_bounded_by_the_models_context_before_it_is_queued() -> None:
    from chatapp.server.errors import ApiError
    from chatapp.server.requests import MAX_CHARS_PER_TOKEN, chat_call, check_size

    def call(n: int, text: str = "hi") -> Any:
        return chat_call({"model": "m", "messages": [{"role": "user", "content": text}] * n})

    check_size(call(512), 512)
    with pytest.raises(ApiError) as e:
        check_size(call(513), 512)  # each message costs at least a token
    assert e.value.code == "context_length_exceeded" and e.value.status == 400
    check_size(call(1, "x" * 512 * MAX_CHARS_PER_TOKEN), 512)
    with pytest.raises(ApiError) as e:
        check_size(call(1, "x" * (512 * MAX_CHARS_PER_TOKEN + 1)), 512)
    assert e.value.code == "context_length_exceeded"


@pytest.mark.parametrize("record", [False, True])
def test_a_client_that_leaves_while_queued_is_never_run(
    serve, smol, monkeypatch, record: bool
) -> None:
    api = serve(record=record)
    turns = _watch(smol, monkeypatch, "record" if record else "complete")
    first = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        stream=True,
        max_tokens=400,
        temperature=0.0,
    )
    events = iter(first)
    next(events)
    next(events)  # the first answer is generating: the next request queues behind it
    queued = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Count to ten."}],
        "stream": True,
    }
    with httpx.stream("POST", f"{api}/chat/completions", json=queued, timeout=WAIT) as r:
        assert r.status_code == 200
        _wait(lambda: len(turns) == 2, "the second request queued")
    # its connection is closed: the server notices and cancels the queued turn
    handle, heard = turns[1]
    _wait(handle.cancel_event.is_set, "the queued turn was cancelled")
    first.close()  # the first answer stops too, so the queue moves on
    result = handle.result(WAIT)
    assert isinstance(result, TurnFailed)
    assert result.error == CLIENT_LEFT
    # never evaluated: no prompt, no token
    assert not [e for e in heard if isinstance(e, (TurnPrompt, TurnChunk))]
    if record:  # the request is kept; no answer was begun for it
        thread = smol.read(lambda s: s.active_thread(result.conversation_id)).result()
        assert [(m.role.value, m.content) for m in thread] == [("user", "Count to ten.")]
    # and the server answers the next client as usual
    r2 = client(api).chat.completions.create(model=MODEL_ID, messages=HI, max_tokens=3)
    assert r2.choices[0].message.content


def test_a_client_that_never_reads_is_cancelled_and_the_model_freed(
    fake_service, monkeypatch
) -> None:
    """The scripted engine stands in for the model here: it writes a long answer with
    20 alternatives per token fast enough to fill the socket buffers in seconds, which
    SmolLM2 on a small machine does not."""
    reply = "stream " * 40_000
    service = fake_service(reply=reply, delay=0.0005, n_ctx=1_000_000)
    turns = _watch(service, monkeypatch)
    server = ServerThread(
        create_app(service, ServerConfig(send_timeout=1.0, stream_interval_ms=0))
    ).start()
    sock = socket.socket()
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        url = httpx.URL(server.url)
        sock.connect((url.host, url.port))
        body = json.dumps(
            {
                "model": "fake",
                "messages": HI,
                "stream": True,
                "logprobs": True,
                "top_logprobs": 20,
            }
        ).encode()
        head = (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)  # and never read a byte
        _wait(lambda: len(turns) == 1, "the turn started")
        handle, _heard = turns[0]
        result = handle.result(WAIT)
        assert isinstance(result, TurnFinished), result
        assert result.stats.finish_reason is FinishReason.CANCELLED
        assert result.stats.completion_tokens < len(reply)
        # the model is free for the next client
        answer = client(server.url + "/v1").chat.completions.create(
            model="fake", messages=HI, max_tokens=6
        )
        assert answer.choices[0].message.content == "stream"
    finally:
        sock.close()
        server.stop()


# -- the model's id and the README's example ---------------------------------------------------


def test_the_model_id_is_the_file_the_user_named(serve, smol, tmp_path: Path) -> None:
    link = tmp_path / "my-assistant.gguf"
    link.symlink_to(Path(str(smol.loaded.ref)))
    url = serve(named_model=str(link))
    api = client(url)
    assert [m.id for m in api.models.list().data] == ["my-assistant"]
    r = api.chat.completions.create(model="my-assistant", messages=HI, max_tokens=2)
    assert r.model == "my-assistant"
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model="model", messages=HI, max_tokens=2)


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## API server", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the API section shows one Python example"
    return blocks[0]


def test_the_readmes_client_example_runs(api: str, tmp_path: Path) -> None:
    code = _readme_example()
    assert "http://127.0.0.1:8080/v1" in code
    script = tmp_path / "example.py"
    script.write_text(code.replace("http://127.0.0.1:8080/v1", api), encoding="utf-8")
    r = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()  # the model's answer, printed
