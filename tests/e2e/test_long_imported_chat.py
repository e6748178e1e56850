"""A 50,000-message chat, imported with `chatapp import`, continued with `chatapp chat`
and the real SmolLM2: the chat template renders it (its limits grow with the messages it
is given), and what follows is the context policy's, not a template failure.

Slow: tokenizing the whole 4.5M-character prompt takes minutes on a small machine
(llama.cpp splits out special tokens in time that grows with their number)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core.conversation import Conversation, Message, Role
from chatapp.core.export import render
from chatapp.core.templates import render as render_template
from chatapp.core.templates.presets import get_preset

pytestmark = [pytest.mark.model, pytest.mark.slow]
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
N = 50_000


def _long_chat(n: int) -> tuple[Conversation, list[Message]]:
    conv = Conversation(id="c" * 32, title="A very long chat", created_at=1.0, updated_at=2.0)
    messages: list[Message] = []
    parent = None
    for i in range(n):
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        text = f"Message number {i}: some words to make it a little longer."
        m = Message(f"{i:032x}", conv.id, parent, role, text, 10.0 + i)
        messages.append(m)
        parent = m.id
    return conv.with_(current_leaf_id=parent), messages


def test_the_template_renders_fifty_thousand_messages() -> None:
    chatml = get_preset("chatml")
    assert chatml is not None
    _, messages = _long_chat(N)
    text = render_template(
        chatml.template, [{"role": m.role.value, "content": m.content} for m in messages]
    )
    assert len(text) > 4_000_000  # past the old fixed cap
    assert text.count("<|im_start|>") == N + 1


def test_a_fifty_thousand_message_import_meets_the_context_policy(
    tmp_path: Path, smollm2_path: Path
) -> None:
    conv, messages = _long_chat(N)
    path = tmp_path / "long.json"
    path.write_text(render("json", conv, messages), encoding="utf-8")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
        )

    res = cli("import", str(path))
    assert res.returncode == 0, res.stderr
    assert f"({N} messages)" in res.stdout
    res = cli("chat", "-c", conv.id[:12], "-m", str(smollm2_path), "--context", "2048", "One more?")
    # the default policy is "stop": its own message, not the template's, and the exit
    # code of a full context
    assert res.returncode == 3, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "this model's context holds 2048" in lines[0], res.stderr
    assert "chat template" not in res.stderr and "Traceback" not in res.stderr
    assert json.loads(path.read_text(encoding="utf-8"))["conversation"]["id"] == conv.id
    # "leave out the oldest turns": the newest turns that fit, and an answer
    res = cli(
        "chat",
        "-c",
        conv.id[:12],
        "-m",
        str(smollm2_path),
        "--context",
        "2048",
        "--context-policy",
        "drop-oldest",
        "--max-tokens",
        "4",
        "One more?",
    )
    assert res.returncode == 0, res.stderr
