"""`chatapp prompt` (chatapp.cli.prompt) on the real test models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from chatapp.cli import prompt as cli_prompt
from chatapp.core.errors import BadModelFile, TemplateError, UserError
from chatapp.core.settings import Settings
from chatapp.paths import app_paths

pytestmark = pytest.mark.model

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="chatapp")
    cli_prompt.register(parser.add_subparsers())
    args = parser.parse_args(["prompt", *argv])
    return int(args.func(args))


@pytest.fixture
def chat_file(tmp_path: Path) -> Path:
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(CHAT), encoding="utf-8")
    return path


def test_prints_exactly_the_rendered_prompt(smollm2_path: Path, chat_file: Path, capsys) -> None:
    assert _run("--model", str(smollm2_path), "--messages", str(chat_file)) == 0
    out, err = capsys.readouterr()
    assert out == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert "gguf" in err


def test_gemma_without_a_template_gets_the_preset(
    gemma_path: Path, chat_file: Path, capsys
) -> None:
    assert _run("--model", str(gemma_path), "--messages", str(chat_file)) == 0
    out, err = capsys.readouterr()
    assert out.startswith("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n")
    assert "gemma (preset)" in err


def test_template_file_and_merged_system_warning(
    smollm2_path: Path, chat_file: Path, capsys
) -> None:
    gemma2 = (
        Path(__file__).resolve().parents[1] / "data" / "templates" / "google-gemma-2-2b-it.jinja"
    )
    assert (
        _run("--model", str(smollm2_path), "--messages", str(chat_file), "--template", str(gemma2))
        == 0
    )
    out, err = capsys.readouterr()
    assert "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>" in out
    assert "does not accept a system prompt" in err


def test_saved_user_template_is_used(smollm2_path: Path, chat_file: Path, capsys) -> None:
    paths = app_paths()
    paths.ensure()
    settings = Settings(user_templates={smollm2_path.name: "{{ messages|length }} turns"})
    settings.save(paths.settings)
    assert _run("--model", str(smollm2_path), "--messages", str(chat_file)) == 0
    assert capsys.readouterr().out == "4 turns"


def test_template_raising_gives_its_own_message(
    smollm2_path: Path, chat_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jinja"
    bad.write_text("{{ raise_exception('Only one user turn, please') }}", encoding="utf-8")
    with pytest.raises(TemplateError, match="Only one user turn, please"):
        _run("--model", str(smollm2_path), "--messages", str(chat_file), "--template", str(bad))


def test_syntax_error_names_the_line(smollm2_path: Path, chat_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jinja"
    bad.write_text("ok\n{% if %}", encoding="utf-8")
    with pytest.raises(TemplateError, match="line 2"):
        _run("--model", str(smollm2_path), "--messages", str(chat_file), "--template", str(bad))


@pytest.mark.parametrize("content", ["not json", '{"messages": 3}', '[{"content": "no role"}]'])
def test_bad_messages_file(smollm2_path: Path, tmp_path: Path, content: str) -> None:
    f = tmp_path / "m.json"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(UserError):
        _run("--model", str(smollm2_path), "--messages", str(f))


def test_not_a_model(chat_file: Path) -> None:
    with pytest.raises(BadModelFile):
        _run("--model", str(chat_file), "--messages", str(chat_file))


def test_tokens_lists_ids_and_pieces(gemma_path: Path, chat_file: Path, capsys) -> None:
    assert _run("--model", str(gemma_path), "--messages", str(chat_file), "--tokens") == 0
    out = capsys.readouterr().out
    prompt, tokens = out.split("--- ", 1)
    lines = tokens.splitlines()
    assert lines[0].endswith(" tokens ---") and int(lines[0].split()[0]) == len(lines) - 1
    pieces = [json.loads(line.split("\t", 1)[1]) for line in lines[1:]]
    assert "".join(pieces) == prompt
    assert pieces[:2] == ["<bos>", "<start_of_turn>"] and pieces.count("<end_of_turn>") == 3
