"""Building the exact prompt (chatapp.core.prompting)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.errors import TemplateError
from chatapp.core.prompting import (
    MERGED_SYSTEM_NOTE,
    build_prompt,
    conversation_messages,
    prompt_for_thread,
)
from chatapp.core.store import Store
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.core.templates.presets import get_preset

DATA = Path(__file__).resolve().parents[1] / "data" / "templates"
GEMMA2 = ChatTemplate("g2", "gguf", (DATA / "google-gemma-2-2b-it.jinja").read_text("utf-8"))
QWEN3 = ChatTemplate("q3", "gguf", (DATA / "Qwen-Qwen3-0.6B.jinja").read_text("utf-8"))
CHATML = resolve_template({"general.architecture": "qwen2"})
TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def test_system_prompt_goes_first() -> None:
    r = build_prompt(CHATML, "Be brief.", TURNS)
    assert r.text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi")
    assert (r.warning, r.merged_system) == ("", False)


def test_blank_system_prompt_is_left_out() -> None:
    assert "system" not in build_prompt(CHATML, "  ", TURNS).text


def test_template_refusing_system_role_gets_it_merged_and_says_so() -> None:
    turns = [dict(t) for t in TURNS]
    r = build_prompt(GEMMA2, "Be brief.", turns, bos_token="<bos>")
    assert r.merged_system and r.warning == MERGED_SYSTEM_NOTE
    assert r.text.startswith("<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n")
    assert r.text.count("Be brief.") == 1
    assert turns == TURNS  # the caller's conversation is untouched


def test_other_refusals_show_the_templates_own_message() -> None:
    bad_order = [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        build_prompt(GEMMA2, "", bad_order)
    with pytest.raises(TemplateError, match="Conversation roles must alternate"):
        build_prompt(GEMMA2, "Be brief.", bad_order)


def test_runaway_template_is_an_error_not_a_merge() -> None:
    t = ChatTemplate("loop", "user", "{% for i in range(10**12) %}{% endfor %}")
    with pytest.raises(TemplateError, match="stopped"):
        build_prompt(t, "sys", TURNS)


def test_completion_warning_is_passed_on() -> None:
    t = resolve_template({"general.architecture": "llama", "general.name": "x"})
    assert build_prompt(t, "", TURNS).warning == t.warning != ""


def test_extra_kwargs_reach_the_template() -> None:
    off = build_prompt(QWEN3, "", TURNS, enable_thinking=False)
    assert off.text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_switching_models_renders_the_whole_history_in_the_new_format(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    conv = store.create_conversation("t", system_prompt="Be brief.")
    u = store.add_message(conv.id, Role.USER, "Hi")
    a = store.add_message(conv.id, Role.ASSISTANT, "Hello!", parent_id=u.id, thinking="greet")
    store.add_message(conv.id, Role.USER, "Bye", parent_id=a.id)
    failed = store.add_message(
        conv.id,
        Role.ASSISTANT,
        "",
        parent_id=None,
        make_current=False,
        finish_reason=FinishReason.ERROR,
    )
    assert failed
    branch = store.active_thread(conv.id)
    gemma = get_preset("gemma")
    assert gemma is not None
    gemma_t = ChatTemplate(gemma.name, "preset", gemma.template, gemma.stop_markers)
    as_chatml = prompt_for_thread(CHATML, conv.system_prompt, branch).text
    as_gemma = prompt_for_thread(gemma_t, conv.system_prompt, branch, bos_token="<bos>").text
    assert as_chatml.count("<|im_start|>") == 5 and "<start_of_turn>" not in as_chatml
    assert as_gemma == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!"
        "<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"
    )
    assert "greet" not in as_chatml  # old thinking is dropped by templates that ignore it
    store.close() if hasattr(store, "close") else None


def test_qwen3_gets_past_thinking_through_reasoning_content(tmp_path: Path) -> None:
    store = Store(tmp_path / "chat.db")
    conv = store.create_conversation("t")
    u = store.add_message(conv.id, Role.USER, "Hi")
    store.add_message(conv.id, Role.ASSISTANT, "Hello!", parent_id=u.id, thinking="greet them")
    text = prompt_for_thread(
        QWEN3, "", store.active_thread(conv.id), add_generation_prompt=False
    ).text
    # Qwen3 keeps the thinking of the assistant turn after the last user message
    assert "<think>\ngreet them\n</think>\n\nHello!" in text


def test_bos_is_added_once_by_one_rule() -> None:
    """with_bos: the BOS token goes in front where the vocabulary wants one, unless the
    tokens already start with it; a BOS typed as text (special=False) is no BOS."""
    from dataclasses import replace

    from chatapp.core.chat import with_bos
    from tests.fakes import ScriptedEngine

    class Bos(ScriptedEngine):
        def tokenize(self, text: str, *, special: bool = True) -> list[int]:
            if special and text.startswith("<s>"):
                return [999, *super().tokenize(text[3:], special=special)]
            return super().tokenize(text, special=special)

    engine = Bos()
    engine.info = replace(engine.info, bos_token="<s>", add_bos=True)
    hi = engine.tokenize("Hi")
    assert with_bos(engine, "Hi", hi) == ("<s>Hi", [999, *hi], 3)
    assert with_bos(engine, "<s>Hi", [999, *hi]) == ("<s>Hi", [999, *hi], 0)
    typed = engine.tokenize("<s>Hi", special=False)
    assert with_bos(engine, "<s>Hi", typed)[1] == [999, *typed]
    engine.info = replace(engine.info, add_bos=False)
    assert with_bos(engine, "Hi", hi) == ("Hi", hi, 0)


@pytest.mark.parametrize(
    "finish",
    [FinishReason.CANCELLED, FinishReason.STREAMING, FinishReason.ERROR, FinishReason.LENGTH],
)
def test_an_interrupted_empty_answer_is_no_turn(finish: FinishReason) -> None:
    def msg(i: int, role: Role, content: str, reason: FinishReason | None = None) -> Message:
        return Message(str(i), "c", None, role, content, 0.0, finish_reason=reason)

    branch = [msg(1, Role.USER, "Hi"), msg(2, Role.ASSISTANT, " \n", finish)]
    branch.append(msg(3, Role.USER, "Hello?"))
    assert conversation_messages(branch) == [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Hello?"},
    ]
    # what was said before the interruption stays, and so does a finished empty answer
    branch[1] = msg(2, Role.ASSISTANT, "Hel", finish)
    assert [m["content"] for m in conversation_messages(branch)] == ["Hi", "Hel", "Hello?"]
    branch[1] = msg(2, Role.ASSISTANT, "", FinishReason.STOP)
    assert [m["content"] for m in conversation_messages(branch)] == ["Hi", "", "Hello?"]
