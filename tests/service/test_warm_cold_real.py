"""Issue 22 item 1: the same receipt gives the same answer warm and cold.

A long-running service (the window, `chatapp serve`) answers over sends, a switch to
another chat and back, a regeneration and an edit; then `chatapp prompt --conversation
--message --replay`, a fresh process with a fresh engine, generates each answer again at
its recorded settings: every answer's tokens match. Real SmolLM2, sampling at
temperature 0.8 with the recorded seed, so a changed logit would show."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.paths import app_paths
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnFinished

pytestmark = pytest.mark.model
WAIT = 300
OPTS = TurnOptions(sampling=SamplingParams(seed=11, max_tokens=40, temperature=0.8))
LONG = "Here is a list of animals: " + ", ".join(f"animal {i}" for i in range(50)) + "."


def _answer(handle) -> str:  # type: ignore[no-untyped-def]
    done = handle.result(WAIT)
    assert isinstance(done, TurnFinished), done
    return done.message.id


def test_answers_replayed_cold_match_token_for_token(smollm2_path: Path) -> None:
    paths = app_paths().ensure()
    settings = Settings.load(paths.settings)
    service = ChatService(paths.database, settings)
    try:
        service.load(
            LoadRequest(ModelRef.local(smollm2_path), n_threads=settings.n_threads)
        ).result(WAIT)
        first = service.send(None, LONG, options=OPTS).result(WAIT)
        assert isinstance(first, TurnFinished)
        conv = first.conversation_id
        answers = [first.message.id]
        second = service.send(conv, "Which one is the largest?", options=OPTS).result(WAIT)
        assert isinstance(second, TurnFinished)
        answers.append(second.message.id)
        _answer(service.send(None, "Name a colour. " + LONG, options=OPTS))  # a switch
        answers.append(_answer(service.send(conv, "And the smallest?", options=OPTS)))
        answers.append(_answer(service.regenerate(conv, options=OPTS)))
        edited = second.message.parent_id
        assert edited is not None
        answers.append(_answer(service.edit(edited, "Which one is the fastest?", options=OPTS)))
    finally:
        service.shutdown()
    for mid in answers:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "chatapp",
                "prompt",
                "--conversation",
                conv,
                "--message",
                mid,
                "--replay",
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=WAIT,
        )
        assert "answer tokens match" in run.stderr, run.stderr[-2000:]
        assert run.returncode == 0, run.stderr[-2000:]
