"""`chatapp chat --tools ... --yes` and `--json-schema` with the real SmolLM2, in process
(the tool registry is a test double until chatapp.tools lands)."""

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
