"""SIGKILL while an answer streams: at most about the last second is lost, and the
database is never corrupted."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.paths import app_paths

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]


def _stream_then_kill(smollm2_path, env) -> tuple[str | None, list[tuple[float, str]], float]:
    """A child window streams answers; SIGKILL once one has streamed for a while.
    Returns the streaming answer's id, its updates and when the kill was sent."""
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/e2e/kill9_child.py"), str(smollm2_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=ROOT,
        text=True,
    )
    updates: list[tuple[float, str]] = []  # of the answer streaming now
    streaming_id = None
    try:
        assert child.stdout is not None
        for line in child.stdout:  # the child exits by itself after two minutes
            u = json.loads(line)
            if u["id"] != streaming_id:  # an answer ended; the child asked again
                streaming_id, updates = u["id"], []
            updates.append((u["t"], u["text"]))
            # kill once it has streamed for a while (slow machines: wait for some text too)
            if u["t"] - updates[0][0] >= 2.5 and len(u["text"]) >= 120:
                break
        killed_at = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    return streaming_id, updates, killed_at


def test_kill_minus_9_while_streaming(smollm2_path, chatapp_home):
    paths = app_paths().ensure()
    Settings(max_tokens=4000, seed=11).save(paths.settings)
    env = dict(os.environ, CHATAPP_HOME=str(chatapp_home), QT_QPA_PLATFORM="offscreen")
    for _ in range(3):  # an answer that ends by itself in the instant of the kill: again
        streaming_id, updates, killed_at = _stream_then_kill(smollm2_path, env)
        with Store(paths.database) as store:
            done = store.get_message(streaming_id) if streaming_id else None
        if done is None or done.finish_reason is not FinishReason.STOP:
            break
    assert updates, "the child never streamed"
    streamed = updates[-1][1]
    assert len(streamed) >= 120

    db = sqlite3.connect(paths.database)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()

    store = Store(paths.database)
    answer = store.get_message(streaming_id)
    assert answer is not None and answer.role is Role.ASSISTANT
    assert answer.finish_reason is FinishReason.STREAMING  # it died mid-answer
    assert streamed.startswith(answer.content)
    # what had streamed a second before the kill is all saved
    a_second_before = [text for t, text in updates if t <= killed_at - 1.0]
    assert a_second_before, "streamed for less than a second"
    assert len(answer.content) >= len(a_second_before[-1])
    assert store.recover_interrupted() == 1
    assert store.get_message(answer.id).finish_reason is FinishReason.CANCELLED
    store.close()
