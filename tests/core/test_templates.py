"""Rendering, limits and sandboxing of chat templates (chatapp.core.templates)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chatapp.core import templates
from chatapp.core.errors import TemplateError
from chatapp.core.templates import ChatTemplate, TemplateRefused, check_syntax, render
from chatapp.core.templates import worker as template_worker

CHAT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def test_render_basic_conventions() -> None:
    text = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}\n{% endfor %}"
    assert render(text, CHAT, bos_token="<s>") == "<s>user:Hi\nassistant:Hello!\nuser:Bye\n"


def test_trim_and_lstrip_blocks_like_transformers() -> None:
    text = "  {% if true %}\nA\n  {% endif %}\nB"
    assert render(text, []) == "A\nB"


def test_tojson_has_transformers_semantics() -> None:
    tools = [{"name": "é", "b": 1, "a": [1, 2]}]
    assert (
        render("{{ tools[0] | tojson }}", [], tools=tools) == '{"name": "é", "b": 1, "a": [1, 2]}'
    )
    assert render("{{ tools[0] | tojson(sort_keys=true) }}", [], tools=tools).startswith('{"a"')
    assert render("{{ tools[0] | tojson(indent=2) }}", [], tools=tools).count("\n") == 7
    assert render("{{ '<&>' | tojson }}", []) == '"<&>"'  # no HTML escaping


def test_extra_variables_and_strftime_now() -> None:
    out = render("{{ date_string }}|{{ strftime_now('%Y') }}", [], date_string="26 Jul 2024")
    assert out == f"26 Jul 2024|{time.strftime('%Y')}"


def test_generation_block_namespace_dict_and_loopcontrols() -> None:
    text = (
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% if loop.index > 2 %}{% break %}"
        "{% endif %}{% set ns.n = ns.n + 1 %}{% generation %}[{{ m.content }}]{% endgeneration %}"
        "{% endfor %}{{ ns.n }}{{ dict(a=1)['a'] }}"
    )
    assert render(text, CHAT) == "[Hi][Hello!]21"


def test_reasoning_fields_are_aliased_like_transformers() -> None:
    msgs = [{"role": "assistant", "content": "A", "thinking": "T"}]
    assert render("{{ messages[0].reasoning_content }}", msgs) == "T"


def test_raise_exception_keeps_the_templates_message() -> None:
    with pytest.raises(TemplateRefused, match="System role not supported"):
        render("{{ raise_exception('System role not supported') }}", CHAT)


def test_syntax_error_names_the_line() -> None:
    bad = "{% for m in messages %}\n{{ m.content }\n{% endfor %}"
    with pytest.raises(TemplateError, match="line 2"):
        check_syntax(bad)
    with pytest.raises(TemplateError, match="line 2"):
        render(bad, CHAT)


def test_runtime_type_error_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="failed"):
        render("{{ messages[0]['content'] + 1 }}", CHAT)


@pytest.mark.parametrize(
    "text",
    [
        "{% for i in range(10**12) %}x{% endfor %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "{% for i in range(99999) %}{% for j in range(99999) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% set s = 'x' * 3000000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "{% for a in messages * 1000000 %}{% for b in messages * 1000000 %}{% endfor %}{% endfor %}",
    ],
)
def test_runaway_templates_are_stopped_and_their_worker_ends(text: str) -> None:
    with pytest.raises(TemplateError):
        render(text, CHAT, time_limit=1.0)
    # a worker that overran was killed and reaped: the ones left are idle, none rendering
    running = set()
    tasks = Path("/proc/self/task")
    for task in tasks.iterdir() if tasks.is_dir() else ():  # Linux only
        for pid in (task / "children").read_text().split():
            if b"--template-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                running.add(int(pid))
    if tasks.is_dir():
        assert running == set(template_worker.idle_worker_pids())


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' * 10**10 }}",
        "{{ 'x' * 3000000 }}{{ 'y' * 3000000 }}",
        "{% for i in range(100) %}{{ 'x' * 100000 }}{% endfor %}",
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}"
        ),
        "{{ 'x' | center(10**10) }}",
        "{{ 'x'.ljust(10**10) }}",
        "{{ '%999999999s' % 'x' }}",
        "{{ '%999999999s' | format('x') }}",
        "{{ '{:>999999999}'.format('x') }}",
        "{{ '{0:>999999999}'.format_map({}) }}",
        "{% set a = 'x' * 3000000 %}{% set b = a ~ a %}",
        "{{ ('x' * 3000000) | replace('x', 'yy') }}",
        "{{ ('x' * 3000000).replace('x', 'yy') }}",
        "{{ ['x' * 3000000, 'y' * 3000000] | join }}",
        "{{ ''.join(['x' * 3000000, 'y' * 3000000]) }}",
        "{{ 2 ** 100000000 }}",
        "{{ (2 ** 4000000) ** 4000000 }}",
    ],
)
def test_huge_outputs_are_refused(text: str) -> None:
    with pytest.raises(TemplateError):
        render(text, CHAT)


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('touch {marker}') }}",
        "{{ joiner.__init__.__globals__['os'].system('touch {marker}') }}",
        "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
        "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.system('touch {marker}') }}",
        "{{ namespace.__init__.__globals__['os'].system('touch {marker}') }}",
        "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
        "{{ raise_exception.__globals__['os'].system('touch {marker}') }}",
        "{{ messages.__class__.__base__.__subclasses__() }}",
        "{{ messages.append('x') }}",
        "{{ open('/etc/passwd').read() }}",
        "{{ os.system('touch {marker}') }}",
        "{{ range.__globals__ }}",
        "{{ dict.__call__.__globals__ }}",
        "{{ strftime_now.__globals__['os'] }}",
    ],
)
def test_sandbox_escapes_fail_and_run_nothing(text: str, tmp_path: Path) -> None:
    marker = tmp_path / "escaped"
    with pytest.raises(TemplateError):
        render(text.replace("{marker}", str(marker)), CHAT)
    assert not marker.exists()


def test_chat_template_fields() -> None:
    t = ChatTemplate("x", "user", "{{ 1 }}", ("<|im_end|>",), "careful")
    assert (t.name, t.source, t.text, t.stop_markers, t.warning) == (
        "x",
        "user",
        "{{ 1 }}",
        ("<|im_end|>",),
        "careful",
    )
    assert render(t, []) == "1"


def test_stop_markers_for_known_tokens() -> None:
    assert templates.stop_markers_for("<|im_start|>x<|im_end|>", "<|endoftext|>") == (
        "<|im_end|>",
        "<|endoftext|>",
    )
    assert templates.stop_markers_for("{{ x }}") == ()


def test_large_numbers_in_data_are_fine_where_they_size_nothing() -> None:
    tools = [{"name": "f", "parameters": {"maximum": 10**12}}]
    text = (
        "{{ tools[0].parameters.maximum }}|{{ '%d' | format(tools[0].parameters.maximum) }}"
        "|{{ tools[0] | tojson }}|{{ (tools[0].parameters.maximum // 10**6) | string }}"
    )
    assert render(text, [], tools=tools) == (
        '1000000000000|1000000000000|{"name": "f", "parameters": {"maximum": 1000000000000}}'
        "|1000000"
    )


@pytest.mark.parametrize(
    "text",
    [
        "{{ [1] | batch(10**8, 'x') | list }}",
        "{{ [1] | slice(10**8) | list }}",
        "{{ 'x'.zfill(10**9) }}",
    ],
)
def test_numbers_that_size_results_are_limited(text: str) -> None:
    with pytest.raises(TemplateError, match="too large"):
        render(text, [])
