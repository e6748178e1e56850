"""`chatapp chat` end to end in real processes with the real SmolLM2: new and continued
conversations, --regenerate and --edit as branches, Ctrl-C keeps the partial answer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.receipt import Receipt
from chatapp.core.store import Store
from chatapp.paths import app_paths

pytestmark = pytest.mark.model
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
FAST = ["--max-tokens", "8", "--seed", "1", "--threads", "2"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
    )


def _cid(stderr: str) -> str:
    m = re.search(r"\[conversation (\w+)", stderr)
    assert m, stderr
    return m.group(1)


def test_new_continue_regenerate_and_edit(smollm2_path: Path) -> None:
    first = cli("chat", "--model", str(smollm2_path), *FAST, "--stats", "Name a fruit.")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip()
    assert "evaluated" in first.stderr and "seed 1" in first.stderr
    cid = _cid(first.stderr)
    second = cli("chat", "-c", cid, *FAST, "And a vegetable?")
    assert second.returncode == 0, second.stderr
    with Store(app_paths().database) as store:
        conv = store.find_conversation(cid)
        thread = store.active_thread(conv.id)
        assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT] * 2
        first_answer, first_question = thread[1], thread[0]
        receipt = Receipt.from_dict(thread[-1].meta["receipt"])
        assert receipt.prompt_tokens == len(store.prompt_tokens(thread[-1].id))
    # a new answer to the first question: a sibling branch, the old one kept
    regen = cli("chat", "-c", cid, "--regenerate", first_answer.id[:10], *FAST)
    assert regen.returncode == 0, regen.stderr
    # a new version of the first question
    edit = cli("chat", "--edit", first_question.id, *FAST, "Name a red fruit.")
    assert edit.returncode == 0, edit.stderr
    with Store(app_paths().database) as store:
        msgs = store.messages(conv.id)
        thread = store.active_thread(conv.id)
    answers_to_q1 = [m for m in msgs if m.parent_id == first_question.id]
    assert len(answers_to_q1) == 2  # the original answer and the regenerated one
    questions = [m for m in msgs if m.role is Role.USER and m.parent_id is None]
    assert sorted(q.content for q in questions) == ["Name a fruit.", "Name a red fruit."]
    assert next(m.content for m in thread) == "Name a red fruit." and len(thread) == 2
    assert len(msgs) == 7  # 2 turns, a regenerated answer, an edit and its answer: nothing erased


def test_regenerate_needs_a_conversation_and_bad_ids_are_one_line_errors(
    smollm2_path: Path,
) -> None:
    res = cli("chat", "--model", str(smollm2_path), "--regenerate")
    assert res.returncode == 1 and "needs --conversation" in res.stderr
    res = cli("chat", "--edit", "nope", "text")
    assert res.returncode == 1 and "No message with id nope" in res.stderr
    assert "Traceback" not in res.stderr


def test_ctrl_c_keeps_the_partial_answer_as_cancelled(smollm2_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(RUN_CLI),
            "chat",
            "--model",
            str(smollm2_path),
            "--threads",
            "2",
            "--max-tokens",
            "2000",
            "Write a very long story about the sea.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None
    got = ""
    deadline = time.monotonic() + 300
    while len(got) < 40 and time.monotonic() < deadline:
        got += proc.stdout.read(1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    with Store(app_paths().database) as store:
        conv = store.find_conversation(_cid(err))
        answer = store.active_thread(conv.id)[-1]
    assert answer.finish_reason is FinishReason.CANCELLED
    assert answer.content.startswith(got.strip()[:20])
    assert len(answer.content) >= len(got.strip())
