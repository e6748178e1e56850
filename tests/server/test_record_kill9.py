"""`chatapp serve --record` killed with SIGKILL while answers stream: every request that
arrived is kept, and the answer that was streaming keeps what it had sent (saved while
streaming, as the window's answers are)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import openai
import pytest

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import Store
from chatapp.paths import app_paths
from tests.server.conftest import WAIT

pytestmark = pytest.mark.model
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
PROMPTS = [
    "Tell me a long story about a lighthouse keeper.",
    "Describe the ocean in many words.",
    "Explain how bread is made, step by step.",
    "List as many animals as you can.",
    "Write a long poem about autumn.",
]


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT  # only so that a broken server fails, not hangs
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _saved(db: Path) -> tuple[int, str]:
    """How many recorded requests, and the longest text saved of an answer still
    streaming (read-only, as another program reading the database would)."""
    if not db.exists():
        return 0, ""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        convs = con.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
        rows = con.execute(
            "SELECT content FROM messages WHERE role = 'assistant' AND finish_reason = ?",
            (FinishReason.STREAMING.value,),
        ).fetchall()
    except sqlite3.OperationalError:  # the schema is still being made
        return 0, ""
    finally:
        con.close()
    return convs, max((r[0] for r in rows), key=len, default="")


def test_kill_9_keeps_every_request_and_the_streamed_text(
    smollm2_path: Path, chatapp_home: Path, tmp_path: Path
) -> None:
    link = tmp_path / "my-smol.gguf"  # the id is the name given, not the link's target
    link.symlink_to(smollm2_path)
    db = app_paths().database
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        child = subprocess.Popen(
            [
                sys.executable,
                str(RUN_CLI),
                "serve",
                "--model",
                str(link),
                "--port",
                "0",
                "--record",
                "--threads",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=dict(os.environ, CHATAPP_HOME=str(chatapp_home)),
        )
    received: dict[str, str] = dict.fromkeys(PROMPTS, "")
    clients: list[openai.OpenAI] = []
    try:
        _until(lambda: "Serving" in log.read_text() or child.poll() is not None, "serving")
        m = re.search(r"as '([^']+)' on (http://\S+/v1)", log.read_text())
        assert m, log.read_text()
        model, url = m.groups()
        assert model == "my-smol"

        def ask(prompt: str) -> None:
            api = openai.OpenAI(base_url=url, api_key="-", max_retries=0, timeout=WAIT)
            clients.append(api)
            assert [x.id for x in api.models.list().data] == ["my-smol"]
            try:
                for ev in api.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": "Be thorough."},
                        {"role": "user", "content": prompt},
                    ],
                    stream=True,
                    max_tokens=1000,
                    temperature=0.0,
                ):
                    if ev.choices:
                        received[prompt] += ev.choices[0].delta.content or ""
            except (openai.APIError, ConnectionError):
                pass  # the server died under it

        threads = [threading.Thread(target=ask, args=(p,), daemon=True) for p in PROMPTS]
        for t in threads:
            t.start()
        # every request recorded, and one answer streaming with text already saved
        _until(
            lambda: _saved(db)[0] == len(PROMPTS) and len(_saved(db)[1]) >= 80,
            "all requests recorded and an answer saved while streaming",
        )
        os.kill(child.pid, signal.SIGKILL)
        child.wait(WAIT)
        for t in threads:
            t.join(WAIT)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for c in clients:
            c.close()
    assert child.returncode == -signal.SIGKILL

    store = Store(db)
    try:
        convs = store.list_conversations()
        assert len(convs) == len(PROMPTS)
        answers = {}
        for conv in convs:
            assert conv.system_prompt == "Be thorough."  # the window's system-message rule
            thread = store.active_thread(conv.id)
            assert thread[0].role is Role.USER
            answers[thread[0].content] = thread[1] if len(thread) > 1 else None
        assert set(answers) == set(PROMPTS)  # the queued ones too
        streamed = [
            (p, a)
            for p, a in answers.items()
            if a is not None and a.content and a.finish_reason is FinishReason.STREAMING
        ]
        assert len(streamed) == 1, "one answer was streaming when the server died"
        prompt, answer = streamed[0]
        assert answer.finish_reason is FinishReason.STREAMING  # it died mid-answer
        assert len(answer.content) >= 80
        sent = received[prompt]
        # what was saved and what had reached the client are the same text, one a
        # little ahead of the other
        assert sent.startswith(answer.content) or answer.content.startswith(sent)
    finally:
        store.close()
