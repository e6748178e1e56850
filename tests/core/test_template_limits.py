"""The chat template's size limits stop a runaway template, not a long conversation:
they grow with the messages the template is given (a real template's output is about
the size of its input; a runaway one's is many times it)."""

from __future__ import annotations

import pytest

from chatapp.core.errors import TemplateError
from chatapp.core.templates import render
from chatapp.core.templates.presets import get_preset

# 2,000 messages of 2,500 characters: 5M characters, past the old fixed 4M cap
MESSAGES = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i:05d} " + "x" * 2494}
    for i in range(2000)
]


def test_a_conversation_longer_than_four_million_characters_renders() -> None:
    chatml = get_preset("chatml")
    assert chatml is not None
    text = render(chatml.template, MESSAGES)
    assert len(text) > 5_000_000 and text.count("<|im_start|>") == 2001


def test_a_template_that_multiplies_its_input_is_still_stopped() -> None:
    runaway = (
        "{% for m in messages %}{% for _ in range(10) %}{{ m.content }}{% endfor %}{% endfor %}"
    )
    with pytest.raises(TemplateError, match=r"the prompt grew past 24,\d{3},\d{3} characters"):
        render(runaway, MESSAGES)


def test_a_runaway_template_on_a_short_chat_stops_at_the_fixed_cap() -> None:
    runaway = "{% for _ in range(1000) %}{{ messages[0].content }}{% endfor %}"
    with pytest.raises(TemplateError, match=r"the prompt grew past 4,0[0-4]\d,\d{3} characters"):
        render(runaway, [{"role": "user", "content": "hello " * 2000}])
