"""`chatapp chat` killed (-9) before the first token: the empty answer it leaves is
recovered as stopped, and the next prompt has no empty assistant turn in it (empty turns
taught the model to answer with nothing). A server on 127.0.0.1 never answers the first
question and records what the next one is sent; `chatapp prompt` with the real SmolLM2
shows the local prompt."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.server.run import ServerThread

RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"


@pytest.fixture
def server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The first request is never answered; later ones get "Fine." and are recorded."""
    seen: list[dict[str, Any]] = []

    async def never() -> AsyncIterator[str]:
        while True:
            await asyncio.sleep(0.05)
            yield ": still thinking\n\n"

    def answer() -> Iterator[str]:
        choice = {"index": 0, "delta": {"content": "Fine."}, "finish_reason": "stop"}
        yield f"data: {json.dumps({'choices': [choice]})}\n\n"
        yield "data: [DONE]\n\n"

    async def chat(request: Request) -> Response:
        body = json.loads(await request.body())
        seen.append(body)
        stream = never() if len(seen) == 1 else answer()
        return StreamingResponse(stream, media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "m", "object": "model"}]})

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )
    s = ServerThread(app).start()
    yield s.url, seen
    s.stop()


def _cli(*args: str) -> list[str]:
    return [sys.executable, str(RUN_CLI), *args]


def _streaming_rows() -> int:
    path = app_paths().database
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(
            db.execute(
                "SELECT count(*) FROM messages WHERE finish_reason = 'streaming'"
            ).fetchone()[0]
        )
    except sqlite3.OperationalError:  # the schema is still being made
        return 0
    finally:
        db.close()


def test_an_answer_killed_before_its_first_token_is_not_in_the_next_prompt(
    server: tuple[str, list[dict[str, Any]]], smollm2_path: Path
) -> None:
    url, seen = server
    remote = ["--backend", url, "--backend-model", "m"]
    proc = subprocess.Popen(
        _cli("chat", *remote, "Name a colour."),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 120
        while not (seen and _streaming_rows()):  # asked, and its empty answer is saved
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(app_paths().database) as store:
        store.recover_interrupted()
        conv = store.list_conversations()[0]
        thread = store.active_thread(conv.id)
    assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT]
    assert thread[1].content == "" and thread[1].finish_reason is FinishReason.CANCELLED

    # the next question, to the server: the empty answer is not sent as a turn
    res = subprocess.run(
        _cli("chat", "-c", conv.id, *remote, "And a fruit?"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Fine."
    sent = seen[-1]["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Name a colour."),
        ("user", "And a fruit?"),
    ]
    assert not any(m["role"] == "assistant" for m in sent)

    # the local prompt of the same conversation (the real SmolLM2's ChatML template)
    res = subprocess.run(
        _cli("prompt", "--model", str(smollm2_path), "--conversation", conv.id),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "Name a colour." in res.stdout and "And a fruit?" in res.stdout
    assert "<|im_start|>assistant\n<|im_end|>" not in res.stdout
    assert res.stdout.count("<|im_start|>assistant") == 2  # "Fine." and the next answer's
