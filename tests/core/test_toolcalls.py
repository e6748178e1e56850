"""Tool calls read from streamed text, per family: held back while a marker may be
starting, complete calls given once, unreadable calls kept with their text."""

from __future__ import annotations

import pytest

from chatapp.core.toolcalls import (
    GRANITE,
    HERMES,
    LLAMA3,
    MISTRAL,
    ToolCall,
    ToolCallParser,
    family_for,
    for_template,
)


def run(family: str, text: str, step: int = 3) -> list[str | ToolCall]:
    p = ToolCallParser(family)
    out: list[str | ToolCall] = []
    for i in range(0, len(text), step):
        out += p.feed(text[i : i + step])
    return out + p.finish()


def texts(items: list[str | ToolCall]) -> str:
    return "".join(i for i in items if isinstance(i, str))


def calls(items: list[str | ToolCall]) -> list[ToolCall]:
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
