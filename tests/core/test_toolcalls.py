"""Tool calls read from streamed text, per family: held back while a marker may be
starting, complete calls given once, unreadable calls kept with their text."""

from __future__ import annotations

import pytest

from chatapp.core.harmony import Thought
from chatapp.core.toolcalls import (
    GRANITE,
    HARMONY,
    HERMES,
    LLAMA3,
    MISTRAL,
    ToolCall,
    ToolCallParser,
    call_grammar,
    call_text,
    family_for,
    for_template,
    kept_markers,
)


def run(family: str, text: str, step: int = 3) -> list[str | ToolCall | Thought]:
    p = ToolCallParser(family)
    out: list[str | ToolCall | Thought] = []
    for i in range(0, len(text), step):
        out += p.feed(text[i : i + step])
    return out + p.finish()


def texts(items: list[str | ToolCall | Thought]) -> str:
    return "".join(i for i in items if isinstance(i, str))


def thoughts(items: list[str | ToolCall | Thought]) -> str:
    return "".join(i.text for i in items if isinstance(i, Thought))


def calls(items: list[str | ToolCall | Thought]) -> list[ToolCall]:
    return [i for i in items if isinstance(i, ToolCall)]


@pytest.mark.parametrize("step", [1, 2, 5, 100])
def test_hermes_call_between_text(step: int) -> None:
    out = run(
        HERMES,
        'Sure. <tool_call>\n{"name": "calc", "arguments": {"x": 1}}\n</tool_call> Done.',
        step,
    )
    assert texts(out) == "Sure.  Done."
    (c,) = calls(out)
    assert c.name == "calc" and c.arguments == {"x": 1} and not c.error and c.id.startswith("call_")


def test_text_resembling_a_marker_is_released() -> None:
    assert texts(run(HERMES, "a <tool is here", 1)) == "a <tool is here"


@pytest.mark.parametrize(
    "family, text",
    [
        (LLAMA3, '<|python_tag|>{"name": "calc", "parameters": {"x": 1}}'),
        (LLAMA3, '  {"name": "calc", "parameters": {"x": 1}}'),
        (MISTRAL, '[TOOL_CALLS][{"name": "calc", "arguments": {"x": 1}}]'),
        (MISTRAL, '[TOOL_CALLS]calc[ARGS]{"x": 1}'),
        (GRANITE, '<|tool_call|>[{"name": "calc", "arguments": {"x": 1}}]'),
        (HERMES, '<tool_call>{"name": "calc", "arguments": "{\\"x\\": 1}"}</tool_call>'),
        # Qwen 2.5 / 3 write Hermes calls; several in one answer each come out
        (HERMES, '<tool_call>\n{"name": "calc", "arguments": {"x": 1}}\n</tool_call>\n'),
        # Llama 3.1 JSON with "arguments" (3.2 writes it so), and 3.x several calls
        (LLAMA3, '{"name": "calc", "arguments": {"x": 1}}'),
        (GRANITE, '<|tool_call|>[{"name": "calc", "arguments": {"x": 1}}]\n'),
        (
            HARMONY,
            '<|channel|>commentary to=functions.calc <|constrain|>json<|message|>{"x": 1}<|call|>',
        ),
        (
            HARMONY,
            '<|start|>assistant to=functions.calc<|channel|>commentary json<|message|>{"x": 1}',
        ),
    ],
)
def test_each_family(family: str, text: str) -> None:
    out = run(family, text)
    (c,) = calls(out)
    assert (c.name, c.arguments, c.error) == ("calc", {"x": 1}, "")
    assert texts(out).strip() == ""


def test_llama3_answer_that_is_just_json_stays_text() -> None:
    out = run(LLAMA3, '{"answer": 42}')
    assert calls(out) == [] and texts(out) == '{"answer": 42}'


def test_unreadable_and_unclosed_calls_are_given_back() -> None:
    (bad,) = calls(run(HERMES, '<tool_call>{"name": calc}</tool_call>'))
    assert bad.error and bad.raw == '{"name": calc}'
    (cut,) = calls(run(HERMES, '<tool_call>{"name": "calc", "argu'))
    assert "not closed" in cut.error and cut.raw.startswith('{"name"')


def test_family_from_template() -> None:
    assert family_for("{{ '<|python_tag|>' }} ipython") == LLAMA3
    assert family_for("[TOOL_CALLS] {{ tools }}") == MISTRAL
    assert family_for("<|tool_call|>") == GRANITE
    assert family_for("{{ messages }}") == HERMES


def test_past_calls_for_a_template_without_tools() -> None:
    msgs = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": {"e": "2+2"}},
                }
            ],
        },
        {"role": "tool", "content": "4", "tool_call_id": "c1"},
    ]
    out = for_template(msgs, "{{ messages }}")
    assert out[1] == {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "calc", "arguments": {"e": "2+2"}}\n</tool_call>',
    }
    assert out[2] == {"role": "user", "content": "<tool_response>\n4\n</tool_response>"}
    assert (
        for_template(msgs, "{% if message.tool_calls %}{% elif message.role == 'tool' %}") == msgs
    )


def test_chatml_preset_renders_tools_calls_and_results() -> None:
    from chatapp.core.templates import render
    from chatapp.core.templates.presets import get_preset

    preset = get_preset("chatml")
    assert preset is not None
    msgs = [
        {"role": "user", "content": "2+2?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "calc", "arguments": {"e": "2+2"}},
                }
            ],
        },
        {"role": "tool", "content": "4", "tool_call_id": "c1"},
    ]
    tools = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]
    text = render(preset.template, msgs, tools=tools)
    assert text.startswith("<|im_start|>system\n# Tools\n")
    assert '<tools>\n{"type": "function", "function": {"name": "calc"' in text
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "calc", "arguments": {"e": "2+2"}}\n</tool_call><|im_end|>'
        in text
    )
    assert (
        "<|im_start|>user\n<tool_response>\n4\n</tool_response><|im_end|>\n<|im_start|>assistant\n"
        in text
    )
    plain = render(preset.template, msgs[:1])
    assert plain == "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize(
    "family, text",
    [
        (
            HERMES,
            '<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {"y": 2}}</tool_call>',
        ),
        (
            LLAMA3,
            '<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"y": 2}}',
        ),
        (
            MISTRAL,
            '[TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"y": 2}}]',
        ),
        (
            GRANITE,
            '<|tool_call|>[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"y": 2}}]',
        ),
    ],
)
def test_several_calls_in_one_answer(family: str, text: str) -> None:
    for step in (1, 4, 1000):
        got = calls(run(family, text, step))
        assert [(c.name, c.arguments) for c in got] == [("a", {}), ("b", {"y": 2})]


GPT_OSS = (
    "<|channel|>analysis<|message|>The user wants 2+3; use the calculator.<|end|>"
    "<|start|>assistant<|channel|>commentary to=functions.calculator <|constrain|>json"
    '<|message|>{"expression": "2+3"}<|call|>'
)


@pytest.mark.parametrize("step", [1, 2, 7, 1000])
def test_gpt_oss_thinking_then_a_call(step: int) -> None:
    out = run(HARMONY, GPT_OSS, step)
    assert thoughts(out) == "The user wants 2+3; use the calculator."
    assert texts(out) == ""  # no marker, header or call text leaks into the answer
    (c,) = calls(out)
    assert (c.name, c.arguments, c.error) == ("calculator", {"expression": "2+3"}, "")
    assert c.raw.endswith('<|message|>{"expression": "2+3"}') and "to=functions.calculator" in c.raw


@pytest.mark.parametrize("step", [1, 3, 1000])
def test_gpt_oss_final_answer_and_preamble_are_text(step: int) -> None:
    text = (
        "<|channel|>analysis<|message|>Easy.<|end|>"
        "<|start|>assistant<|channel|>commentary<|message|>Let me check.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>It is 5.<|return|>"
    )
    out = run(HARMONY, text, step)
    assert thoughts(out) == "Easy." and texts(out) == "Let me check.It is 5." and not calls(out)
    # a model that answers without any header: all of it is the answer
    assert texts(run(HARMONY, "Plain <|text, no markers", step)) == "Plain <|text, no markers"


def test_gpt_oss_unreadable_call_is_shown_with_its_error() -> None:
    bad = '<|channel|>commentary to=functions.calc <|constrain|>json<|message|>{"x": 1'
    (c,) = calls(run(HARMONY, bad))
    assert c.name == "calc" and "not valid JSON" in c.error and c.raw.endswith('{"x": 1')
    (cut,) = calls(run(HARMONY, "<|channel|>commentary to=functions.calc <|const"))
    assert cut.name == "calc" and cut.arguments == {}


def test_gpt_oss_family_markers_text_and_grammar() -> None:
    template = "{{- '<|channel|>commentary to=functions.' + tool_call.name }}"
    assert family_for(template) == HARMONY
    assert "<|message|>" in kept_markers("<|channel|>") and "<|call|>" in kept_markers(
        "<|channel|>"
    )
    assert kept_markers("<|python_tag|>") == ("<|python_tag|>",) and kept_markers("") == ()
    written = call_text(HARMONY, "calc", {"x": 1})
    (c,) = calls(run(HARMONY, written))
    assert (c.name, c.arguments) == ("calc", {"x": 1})
    tools = [
        {
            "type": "function",
            "function": {
                "name": "calc",
                "parameters": {
                    "type": "object",
                    "properties": {"x": {"type": "integer"}},
                    "required": ["x"],
                },
            },
        }
    ]
    grammar = call_grammar(HARMONY, tools)
    assert '"<|channel|>commentary to=functions.calc <|constrain|>json<|message|>"' in grammar
