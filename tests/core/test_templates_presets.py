"""Built-in presets (resources/templates) and template resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.templates import COMPLETION_WARNING, presets, render, resolve_template
from chatapp.core.templates.presets import choose_preset, load_presets
from chatapp.resources import resource_path

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]

GOLDEN = {
    "alpaca": "<s>Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello!</s>\n\n"
    "### Instruction:\nBye\n\n### Response:\n",
    "chatml": "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    "<|im_start|>assistant\n",
    "deepseek-r1": "<s>Be brief.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜>"
    "<｜User｜>Bye<｜Assistant｜><think>\n",
    "gemma": "<s><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
    "Hello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
    "llama2": "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Bye [/INST]",
    "llama3": "<s><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "mistral": "<s>[INST] Hi[/INST] Hello!</s>[INST] Be brief.\n\nBye[/INST]",
    "phi3": "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
    "<|user|>\nBye<|end|>\n<|assistant|>\n",
    "vicuna": "<s>Be brief. USER: Hi ASSISTANT: Hello!</s>USER: Bye ASSISTANT:",
    "zephyr": "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
    "<|user|>\nBye</s>\n<|assistant|>\n",
}


def test_every_preset_has_a_golden_and_the_issue_list_is_covered() -> None:
    assert {p.name for p in load_presets()} == set(GOLDEN)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_preset_golden(name: str) -> None:
    preset = presets.get_preset(name)
    assert preset is not None
    assert render(preset.template, CHAT, bos_token="<s>", eos_token="</s>") == GOLDEN[name]


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_preset_stop_markers_end_its_turns(name: str) -> None:
    preset = presets.get_preset(name)
    assert preset is not None and preset.stop_markers
    rendered = GOLDEN[name]
    # the turn-ending marker is what closes the assistant's "Hello!" in the golden text
    after = rendered.split("Hello!", 1)[1]
    assert any(after.lstrip(" ").startswith(m) for m in preset.stop_markers)


def test_presets_are_data_files() -> None:
    files = sorted(resource_path("templates").glob("*.json"))
    assert len(files) == len(GOLDEN)
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        assert {"name", "match", "template", "stop_markers", "think_tags"} <= set(data)


def test_deepseek_preset_declares_think_tags() -> None:
    preset = presets.get_preset("deepseek-r1")
    assert preset is not None and preset.think_tags == (("<think>", "</think>"),)


@pytest.mark.parametrize(
    ("metadata", "special", "expected"),
    [
        ({"general.architecture": "gemma3", "general.name": "Gemma 3 270m"}, None, "gemma"),
        ({"general.architecture": "gemma3"}, None, "gemma"),
        ({"general.architecture": "llama", "general.basename": "smollm2"}, None, "chatml"),
        ({"general.architecture": "qwen2", "general.name": "Qwen2.5 7B Instruct"}, None, "chatml"),
        (
            {"general.architecture": "qwen2", "general.name": "DeepSeek R1 Distill Qwen 7B"},
            None,
            "deepseek-r1",
        ),
        (
            {"general.architecture": "llama", "general.name": "Meta Llama 3.1 8B Instruct"},
            None,
            "llama3",
        ),
        (
            {"general.architecture": "llama", "general.name": "my-finetune"},
            {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"},
            "llama3",
        ),
        ({"general.architecture": "llama", "general.name": "Llama 2 7B Chat"}, None, "llama2"),
        (
            {"general.architecture": "llama", "general.name": "Mistral 7B Instruct v0.3"},
            None,
            "mistral",
        ),
        ({"general.architecture": "phi3", "general.name": "Phi 3.5 Mini Instruct"}, None, "phi3"),
        ({"general.architecture": "llama", "general.name": "zephyr-7b-beta"}, None, "zephyr"),
        ({"general.architecture": "llama", "general.name": "vicuna-13b-v1.5"}, None, "vicuna"),
        ({"general.architecture": "llama", "general.name": "alpaca-7b"}, None, "alpaca"),
        ({"general.architecture": "llama", "general.name": "something"}, None, None),
        ({}, None, None),
    ],
)
def test_choose_preset(metadata: dict, special: set[str] | None, expected: str | None) -> None:
    chosen = choose_preset(metadata, special)
    assert (chosen.name if chosen else None) == expected


def test_special_tokens_from_vocabulary_arrays() -> None:
    meta = {
        "tokenizer.ggml.tokens": ["<unk>", "<s>", "hello", "<|im_start|>", "<|im_end|>"],
        "tokenizer.ggml.token_type": [2, 3, 1, 3, 4],
        "tokenizer.ggml.bos_token_id": 1,
    }
    assert presets.special_tokens_from_metadata(meta) == {"<s>", "<|im_start|>", "<|im_end|>"}
    assert presets.token_text(meta, "bos") == "<s>"
    assert presets.token_text(meta, "eos") == ""
    assert choose_preset({**meta, "general.architecture": "llama"}).name == "chatml"  # type: ignore[union-attr]


# --- resolution order ----------------------------------------------------------------------

GGUF_META = {"general.architecture": "gemma3", "tokenizer.chat_template": "{{ 'gguf' }}<|im_end|>"}


def test_user_template_wins() -> None:
    t = resolve_template(GGUF_META, user_template="{{ 'mine' }}<end_of_turn>")
    assert (t.source, render(t, [])) == ("user", "mine<end_of_turn>")
    assert "<end_of_turn>" in t.stop_markers


def test_gguf_template_comes_next() -> None:
    t = resolve_template(GGUF_META, user_template="  ")
    assert t.source == "gguf" and render(t, []) == "gguf<|im_end|>"
    assert "<|im_end|>" in t.stop_markers


def test_named_gguf_variants() -> None:
    meta = {**GGUF_META, "tokenizer.chat_template.tool_use": "{{ 'tools' }}"}
    assert resolve_template(meta, variant="tool_use").name == "gguf:tool_use"
    assert resolve_template(meta).name == "gguf"
    only_named = {"tokenizer.chat_template.rag": "{{ 'rag' }}"}
    assert resolve_template(only_named).text == "{{ 'rag' }}"


def test_preset_when_the_gguf_has_none() -> None:
    t = resolve_template({"general.architecture": "gemma3"}, eos_token="<eos>")
    assert (t.source, t.name) == ("preset", "gemma")
    assert t.stop_markers[0] == "<end_of_turn>" and "<eos>" in t.stop_markers
    assert not t.warning


def test_completion_with_a_visible_warning_as_last_resort() -> None:
    t = resolve_template({"general.architecture": "llama", "general.name": "x"})
    assert t.source == "completion" and t.warning == COMPLETION_WARNING
    assert render(t, CHAT[1:2], bos_token="<s>") == "<s>Hi"


def test_gguf_template_in_a_known_format_gets_the_presets_markers_and_think_tags() -> None:
    text = "{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"
    t = resolve_template({"general.architecture": "qwen3", "tokenizer.chat_template": text})
    assert t.stop_markers == ("<|im_end|>", "<|endoftext|>")
    assert t.think_tags == (("<think>", "</think>"),)


@pytest.mark.model
def test_real_gemma3_270m_gets_the_gemma_turn_format(gemma_path: Path) -> None:
    info = read_gguf(gemma_path)
    assert info.chat_template is None  # the reason this test exists
    t = resolve_template(info.metadata)
    assert (t.source, t.name) == ("preset", "gemma")
    out = render(t, CHAT[1:], bos_token="<bos>")
    assert out.startswith("<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
    assert out.endswith("<start_of_turn>model\n")


@pytest.mark.model
def test_real_smollm2_uses_its_gguf_chatml_template(smollm2_path: Path) -> None:
    t = resolve_template(read_gguf(smollm2_path).metadata)
    assert t.source == "gguf" and t.stop_markers[0] == "<|im_end|>"
    assert render(t, CHAT[1:2]).endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_a_gguf_template_that_does_not_parse_falls_back_to_the_preset_with_a_warning() -> None:
    meta = {"general.architecture": "gemma3", "tokenizer.chat_template": "{% for m in messages %}"}
    t = resolve_template(meta)
    assert (t.source, t.name) == ("preset", "gemma")
    assert "does not parse" in t.warning and "line 1" in t.warning and "Gemma" in t.warning


def test_a_user_template_that_does_not_parse_falls_back_to_the_gguf_one() -> None:
    t = resolve_template(GGUF_META, user_template="{{ oops")
    assert t.source == "gguf" and t.warning.startswith("Your template does not parse")


def test_nothing_usable_is_completion_with_both_warnings() -> None:
    t = resolve_template({"tokenizer.chat_template": "{% if %}"}, user_template="{{")
    assert t.source == "completion"
    assert "Your template" in t.warning and "model file's" in t.warning
    assert t.warning.endswith(COMPLETION_WARNING)
