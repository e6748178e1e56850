"""Delete, restart, undo, in real processes with the real SmolLM2: the answers come back
with their token probabilities, prompt token ids and receipts, and `chatapp prompt
--conversation ID --message MID` verifies the receipt again (issue 23: the undo used to
lose the token rows)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core.conversation import Role
from chatapp.core.store import Store
from chatapp.paths import app_paths
from tests.e2e.test_cli_chat import FAST, _cid, cli

pytestmark = pytest.mark.model


def _state(cid: str) -> tuple:
    with Store(app_paths().database) as store:
        msgs = store.messages(cid, with_tokens=True)
        return msgs, {m.id: store.prompt_tokens(m.id) for m in msgs}


def test_delete_restart_undo_keeps_what_each_answer_recorded(smollm2_path: Path) -> None:
    first = cli("chat", "--model", str(smollm2_path), *FAST, "Name a fruit.")
    assert first.returncode == 0, first.stderr
    cid = _cid(first.stderr)
    second = cli("chat", "-c", cid, *FAST, "And a vegetable?")
    assert second.returncode == 0, second.stderr
    with Store(app_paths().database) as store:
        cid = store.find_conversation(cid).id
    before, prompts = _state(cid)
    answers = [m for m in before if m.role is Role.ASSISTANT]
    assert len(answers) == 2
    for a in answers:
        assert a.tokens is not None and a.tokens.steps, "no token trace recorded"
        assert prompts[a.id] and a.meta["receipt"]["prompt_tokens"] == len(prompts[a.id])
    q2 = next(m for m in before if m.content == "And a vegetable?")

    # each step its own process: the undo outlives the one that deleted
    res = cli("conversations", cid, "--delete-message", q2.id[:10])
    assert res.returncode == 0, res.stderr
    res = cli("conversations", cid, "--delete")
    assert res.returncode == 0, res.stderr
    with Store(app_paths().database) as store:
        assert store.get_conversation(cid) is None
        assert store.prompt_tokens(answers[1].id) is None
        assert store.token_trace(answers[0].id) is None
    res = cli("prompt", "--conversation", cid, "--message", answers[1].id)
    assert res.returncode == 1
    assert f"No conversation with id {cid}" in res.stderr

    res = cli("conversations", "--restore", cid)
    assert res.returncode == 0, res.stderr
    res = cli("conversations", "--restore", q2.id)
    assert res.returncode == 0, res.stderr
    assert _state(cid) == (before, prompts)
    for a in answers:
        check = cli("prompt", "--conversation", cid, "--message", a.id)
        assert check.returncode == 0, check.stderr
        assert "matches the receipt" in check.stderr


def test_the_trash_commands_in_a_real_process_are_one_line_errors(tmp_path: Path) -> None:
    run = [sys.executable, str(Path(__file__).resolve().parents[1] / "hub" / "run_cli.py")]
    res = subprocess.run(
        [*run, "conversations", "--restore", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 1
    assert res.stderr == (
        "chatapp: error: Nothing deleted has the id nope (see chatapp conversations --deleted).\n"
    )
