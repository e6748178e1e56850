"""Issue 20 item 1: a conversation's KV state survives a restart, and changes nothing.

A service answers two turns of a long chat and quits: the state goes to the cache folder.
A new process (a subprocess) opens the chat and sends the next question at temperature 0:
its receipt says the prompt's tokens came from disk, and the answer's token ids are
those of a cold process (the same database, no state used). Real SmolLM2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.paths import app_paths
from chatapp.service import ChatService, TurnOptions
from chatapp.service.events import TurnFinished
from chatapp.service.saved_states import STATE_FOLDER

pytestmark = pytest.mark.model
WAIT = 300
OPTS = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=40, seed=3))
LONG = "Here is a list of animals: " + ", ".join(f"animal {i}" for i in range(60)) + "."
CHILD = Path(__file__).with_name("state_disk_child.py")


def _child(home: Path, model: Path, conv: str, question: str, mode: str) -> dict[str, Any]:
    run = subprocess.run(
        [sys.executable, str(CHILD), str(model), conv, question, mode],
        capture_output=True,
        text=True,
        env={**os.environ, "CHATAPP_HOME": str(home)},
        timeout=WAIT,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def test_a_new_process_restores_the_state_and_answers_as_a_cold_one(
    smollm2_path: Path, chatapp_home: Path
) -> None:
    paths = app_paths().ensure()
    service = ChatService(paths.database, Settings.load(paths.settings))
    try:
        service.load(service.load_request(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
        first = service.send(None, LONG, options=OPTS).result(WAIT)
        assert isinstance(first, TurnFinished)
        conv = first.conversation_id
        assert isinstance(
            service.send(conv, "Which one is the largest?", options=OPTS).result(WAIT), TurnFinished
        )
    finally:
        service.shutdown()  # the state in the context goes to disk
    states = list((paths.cache / STATE_FOLDER).glob("*.kvstate"))
    assert len(states) == 1

    cold_home = chatapp_home.parent / "cold-home"
    shutil.copytree(chatapp_home / "data", cold_home / "data")
    question = "And which one is the smallest?"
    warm = _child(chatapp_home, smollm2_path, conv, question, "warm")
    cold = _child(cold_home, smollm2_path, conv, question, "cold")

    assert warm["prompt"] == cold["prompt"]
    assert warm["receipt"]["prompt_sha256"] == cold["receipt"]["prompt_sha256"]
    assert warm["receipt"]["disk_tokens"] > 100  # the two earlier turns came from disk
    assert warm["receipt"]["reused_tokens"] >= warm["receipt"]["disk_tokens"]
    assert cold["receipt"]["disk_tokens"] == 0
    assert cold["receipt"]["reused_tokens"] == 0
    assert warm["tokens"] and warm["tokens"] == cold["tokens"]
    assert warm["text"] == cold["text"]
