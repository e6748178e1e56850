"""`chatapp chat --tools ... --yes` and `--json-schema` with the real SmolLM2, in process
(a test double of the registry where the test needs to see the arguments; the
last test runs chatapp.tools' real registry)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from chatapp import cli
from chatapp.cli import chat as chat_cli
from tests.service.test_tools_loop import Calculator

pytestmark = pytest.mark.model
FAST = ["--seed", "2", "--threads", "2", "--max-tokens", "60"]


def test_tools_loop_prints_call_and_result(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calc = Calculator()
    monkeypatch.setattr(chat_cli, "_tool_runner", lambda settings: calc)
    code = cli.run(
        [
            "chat",
            "--model",
            str(smollm2_path),
            *FAST,
            "--tools",
            "calculator",
            "--tool-choice",
            "required",
            "--yes",
            "What is 2+2?",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "[tool call] calculator(" in out.err
    assert "<tool_call>" not in out.out
    assert len(calc.ran) >= 1


def test_tool_without_yes_and_without_terminal_is_denied(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calc = Calculator()
    monkeypatch.setattr(chat_cli, "_tool_runner", lambda settings: calc)
    code = cli.run(
        [
            "chat",
            "--model",
            str(smollm2_path),
            *FAST,
            "--tools",
            "calculator",
            "--tool-choice",
            "calculator",
            "What is 2+2?",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert calc.ran == [] and "[tool denied] The user denied this call." in out.err


def test_json_schema_flag(
    smollm2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = {
        "type": "object",
        "properties": {"fruit": {"enum": ["apple", "pear"]}, "count": {"type": "integer"}},
        "required": ["fruit", "count"],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(schema))
    code = cli.run(
        ["chat", "--model", str(smollm2_path), *FAST, "--json-schema", str(path), "Fruit?"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    jsonschema.validate(json.loads(out.out), schema)


def test_refused_schema_keyword_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"type": "string", "format": "email"}))
    code = cli.run(
        ["chat", "--model", str(tmp_path / "none.gguf"), "--json-schema", str(path), "x"]
    )
    err = capsys.readouterr().err
    assert code != 0 and "'format'" in err


def test_the_real_calculator_runs_in_the_loop(
    smollm2_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No double: `chatapp chat --tools calculator` builds chatapp.tools' registry, the
    model's constrained call runs the real calculator, and the call and its result are
    saved as messages of the conversation."""
    from chatapp.core.conversation import Role
    from chatapp.core.store import Store
    from chatapp.paths import app_paths

    code = cli.run(
        [
            "chat",
            "--model",
            str(smollm2_path),
            *FAST,
            "--tools",
            "calculator",
            "--tool-choice",
            "required",
            "--yes",
            "What is 12345 times 6789?",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "[tool call] calculator(" in out.err
    with Store(app_paths().database) as store:
        conv = store.list_conversations(limit=1)[0]
        roles = [m.role for m in store.active_thread(conv.id)]
        tools = [m for m in store.active_thread(conv.id) if m.role is Role.TOOL]
    assert roles[:3] == [Role.USER, Role.ASSISTANT, Role.TOOL]
    assert tools and tools[0].content  # the calculator's answer or its one-line error


def test_receipt_of_a_tool_answer_checks_the_tools(
    smollm2_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`chatapp prompt --message` re-renders a tool step's prompt with the app's tool
    definitions and checks their sha256; --replay generates the constrained call again;
    a schema changed since fails the check, by name."""
    import dataclasses

    from chatapp.core.conversation import Role
    from chatapp.core.store import Store
    from chatapp.paths import app_paths
    from chatapp.tools.registry import ToolRegistry

    args = ["--tools", "calculator", "--tool-choice", "required", "--yes", "What is 7 * 8?"]
    assert cli.run(["chat", "--model", str(smollm2_path), *FAST, *args]) == 0
    capsys.readouterr()
    with Store(app_paths().database) as store:
        conv = store.list_conversations(limit=1)[0]
        answers = [m for m in store.active_thread(conv.id) if m.role is Role.ASSISTANT]
    first = answers[0]
    assert first.meta["receipt"]["tools"] == ["calculator"]
    assert first.meta["receipt"]["tool_choice"] == "required"
    check = ["prompt", "--conversation", conv.id, "--message", first.id]
    code = cli.run([*check, "--replay"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "tools: the 1 tool definitions match" in err and "answer tokens match" in err

    real = ToolRegistry.specs

    def changed(self: ToolRegistry, names: list[str] | None = None) -> list[object]:
        return [
            dataclasses.replace(s, description=s.description + " (changed)")
            for s in real(self, names)
        ]

    monkeypatch.setattr(ToolRegistry, "specs", changed)
    code = cli.run(check)
    err = capsys.readouterr().err
    assert code == 1 and "the definitions of calculator changed since" in err
