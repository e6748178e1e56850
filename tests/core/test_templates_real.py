"""Real chat templates of popular GGUF releases, rendered by us and by transformers'
apply_chat_template renderer (the oracle): the text must match character for character,
and a template that refuses a conversation must refuse it in both.

The templates in tests/data/templates come from llama.cpp's models/templates (as vendored
in the llama-cpp-python 0.3.36 sdist), the SmolLM2 test model's GGUF metadata, and
Gemma 3 IT's tokenizer_config.json (not in llama.cpp's collection).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers.utils import chat_template_utils

from chatapp.core.errors import TemplateError
from chatapp.core.templates import TemplateRefused, render
from chatapp.core.templates.presets import load_presets

DATA = Path(__file__).resolve().parents[1] / "data" / "templates"
REAL = sorted(p.name for p in DATA.glob("*.jinja"))
REQUIRED = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",
    "google-gemma-2-2b-it.jinja",
    "google-gemma-3-it.jinja",
    "microsoft-Phi-3.5-mini-instruct.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "HuggingFaceTB-SmolLM2-135M-Instruct.jinja",
}

SYSTEM = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
TURNS = [
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": '  Name a prime — with ünïcode 😀 and "quotes"\n'},
    {"role": "assistant", "content": "<think>\n2 is prime.\n</think>\n\n2"},
    {"role": "user", "content": "Another?"},
]
CONVERSATIONS = {
    "one-turn": TURNS[:1],
    "multi-turn": TURNS,
    "system+one-turn": [SYSTEM, *TURNS[:1]],
    "system+multi-turn": [SYSTEM, *TURNS],
    "ends-with-assistant": TURNS[:2],
}
KWARGS: dict[str, Any] = {"bos_token": "<s>", "eos_token": "</s>", "date_string": "26 Jul 2024"}


def _oracle(text: str, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
    rendered, _ = chat_template_utils.render_jinja_template(
        conversations=[messages],
        chat_template=text,
        add_generation_prompt=add_generation_prompt,
        **KWARGS,
    )
    return str(rendered[0])


def _both(text: str, messages: list[dict[str, Any]], agp: bool) -> tuple[Any, Any]:
    try:
        expected: Any = _oracle(text, messages, agp)
    except Exception as e:  # noqa: BLE001 - the oracle's way of refusing
        expected = ("refused", str(e))
    try:
        got: Any = render(text, messages, add_generation_prompt=agp, **KWARGS)
    except TemplateRefused as e:
        got = ("refused", e.message.split(": ", 1)[1])
    return expected, got


def test_the_required_real_templates_are_here() -> None:
    assert set(REAL) >= REQUIRED


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("name", REAL)
def test_real_template_matches_transformers(
    name: str, conversation: str, add_generation_prompt: bool
) -> None:
    text = (DATA / name).read_text(encoding="utf-8")
    messages = CONVERSATIONS[conversation]
    expected, got = _both(text, messages, add_generation_prompt)
    assert got == expected


def test_gemma2_refuses_a_system_prompt_in_both() -> None:
    text = (DATA / "google-gemma-2-2b-it.jinja").read_text(encoding="utf-8")
    expected, got = _both(text, CONVERSATIONS["system+one-turn"], True)
    assert got == expected == ("refused", "System role not supported")


def test_messages_are_not_changed_by_rendering() -> None:
    text = (DATA / "Qwen-Qwen3-0.6B.jinja").read_text(encoding="utf-8")
    messages = [dict(m) for m in CONVERSATIONS["system+multi-turn"]]
    before = repr(messages)
    render(text, messages)
    assert repr(messages) == before


@pytest.mark.parametrize("conversation", sorted(CONVERSATIONS))
@pytest.mark.parametrize("preset", [p.name for p in load_presets()])
def test_presets_render_like_transformers(preset: str, conversation: str) -> None:
    text = next(p.template for p in load_presets() if p.name == preset)
    expected, got = _both(text, CONVERSATIONS[conversation], True)
    assert got == expected


def test_tools_render_like_transformers() -> None:
    text = (DATA / "Qwen-Qwen2.5-7B-Instruct.jinja").read_text(encoding="utf-8")
    tools = [
        {"type": "function", "function": {"name": "now", "description": "Time", "parameters": {}}}
    ]
    expected = chat_template_utils.render_jinja_template(
        conversations=[TURNS[:1]], chat_template=text, tools=tools, add_generation_prompt=True
    )[0][0]
    assert render(text, TURNS[:1], tools=tools) == expected
    assert '"name": "now"' in expected


def test_a_broken_real_template_edit_is_a_template_error() -> None:
    text = (DATA / "meta-llama-Llama-3.1-8B-Instruct.jinja").read_text(encoding="utf-8")
    with pytest.raises(TemplateError, match="line"):
        render(text.replace("{%- endfor %}", "", 1), TURNS)


KITCHEN_SINK = r"""{{ messages|map(attribute='content')|join(', ') }}|{{ messages|selectattr('role','equalto','user')|list|length }}
{{ 'a b'|title }}|{{ undefined_thing|default('d') }}|{{ [3,1]|sort|first }}|{{ 'x\ny'|indent(2) }}|{{ '  a '|trim }}|{{ 1.55|round(1) }}
{{ (messages|last).role }}|{{ {'b':1,'a':2}|items|list }}|{{ {'b':1,'a':2}|dictsort }}|{{ 'abc'|replace('b','c') }}|{{ 'aXb'.split('X') }}|{{ range(3)|list }}|{{ range(5)[1:3]|list }}
{{ 'hi' ~ 3 }}|{{ 7 // 2 }}|{{ 2 ** 8 }}|{{ '%s-%d'|format('a', 3) }}|{{ '%05.1f' % 3.14159 }}|{{ 'x' * 3 }}|{{ [1] + [2] }}|{{ messages|length is even }}
{% for m in messages|reverse %}{{ loop.index }}{{ loop.revindex0 }}{{ loop.cycle('a','b') }}{% if loop.last %}.{% endif %}{% endfor %}
{%- set ns = namespace(x=[]) %}{% for i in range(3) %}{% set ns.x = ns.x + [i] %}{% endfor %}{{ ns.x|tojson }}|{{ ns.x|sum }}|{{ ns.x|max }}|{{ ns.x|unique|list }}
{{ "{}-{}".format(1, 2) }}|{{ 'abc'.startswith('a') }}|{{ 'ABC'.lower() }}|{{ ' a '.strip() }}|{{ 'a,b'.split(',')|batch(1)|list }}|{{ messages[0].content[:2] }}|{{ messages[0]['content'] is string }}
{{ tools|tojson(indent=2, separators=(',', ': '), sort_keys=true) }}|{{ dict(a=1).items()|list }}|{{ 'é😀'|tojson }}|{{ {'a': none}|tojson }}|{{ 3|string + '1' }}|{{ '5'|int + 1 }}|{{ 1.0|float }}|{{ [1,2]|map('string')|join }}
{% macro f(x, y=2) %}{{ x * y }}{% endmacro %}{{ f(2) }}{{ f(2, y=5) }}{% filter upper %}up{% endfilter %}{% set t %}block{% endset %}{{ t }}{{ messages|groupby('role')|map(attribute='grouper')|join }}"""


def test_filters_methods_and_tags_render_like_transformers() -> None:
    """Jinja features real templates lean on, each wrapped by our limits: same output."""
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi"}]
    tools = [{"b": 1, "a": {"z": [1, 2]}}]
    expected = chat_template_utils.render_jinja_template(
        conversations=[msgs], chat_template=KITCHEN_SINK, tools=tools
    )[0][0]
    assert render(KITCHEN_SINK, msgs, tools=tools, add_generation_prompt=False) == expected
