"""Hostile chat templates: each ends in a one-line TemplateError, with this process's
memory and CPU bounded by hard resource limits (the template worker is killed and
replaced, never the caller), including templates embedded in a real GGUF file."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from chatapp.core import templates
from chatapp.core.errors import TemplateError
from chatapp.core.templates import render, resolve_template
from chatapp.core.templates import worker as template_worker
from tests.core import hostile_gguf
from tests.core.hostile_run import GiB, json_lines, run_limited

# RLIMIT_AS is enforced on Linux only (macOS ignores it), and these tests read /proc.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux resource limits")

STOPPED = r"^The chat template was stopped: "
CASES: list[tuple[str, str, str]] = [
    # (name, template, expected message: a regular expression)
    ("tojson-indent", "{{ messages | tojson(indent=999999999) }}", STOPPED),
    ("list-repeat-printed", "{% set s = 'x' * 1000 %}{{ [s] * 3999999 }}", STOPPED),
    ("list-repeat-joined", "{% set s = 'x' * 1000 %}{{ ([s] * 3999999) | join }}", STOPPED),
    ("str-join", "{% set s = 'x' * 1000 %}{{ ''.join([s] * 3999999) }}", STOPPED),
    ("sum-start-list", "{{ ([[1]] * 3999999) | sum(start=[]) }}", STOPPED),
    ("expandtabs", "{{ ('\t' * 1000).expandtabs(3999999) }}", STOPPED),
    ("percent-star", "{{ '%*s' % (999999999, 'x') }}", STOPPED),
    ("format-width", "{{ '{:>999999999}'.format('x') }}", STOPPED),
    (
        "nested-loops",
        "{% for i in range(10**6) %}{% for j in range(10**6) %}{% endfor %}{% endfor %}",
        STOPPED,
    ),
    (
        "overflow",
        "{{ (10**400) | float }}",
        r"^The chat template failed on line 1: OverflowError: ",
    ),
    ("int-digits", "{{ 7 ** 6000 }}", r"^The chat template failed on line 1: ValueError: "),
    ("deep-parens", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", r"nested too deeply"),
    ("deep-blocks", "{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000, r"nested too deeply"),
    ("recursion", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", r"recursed too deeply"),
    (
        "lone-surrogate",
        "{{ '\\ud800' }}",
        r"^The rendered prompt holds a lone surrogate \(U\+D800\)",
    ),
    ("lone-surrogate-raw", "{{ bos_token }}\ud800", r"lone surrogate"),
    ("huge-template", "x" * 10_000_000, r"^The chat template is 10,000,000 characters long"),
    ("escape", "{{ ''.__class__.__mro__[1].__subclasses__() }}", r"tried something unsafe"),
    ("syntax", "{% for %}", r"^Template syntax error on line 1: "),
    (
        "refusal",
        "{{ raise_exception('No system role.') }}",
        r"refused this conversation: No system",
    ),
]

RUNNER = """
import json, resource, os
from chatapp.core import templates
from chatapp.core.templates import worker as template_worker
from chatapp.core.errors import TemplateError
cases = json.loads(open(os.environ["CASES"], encoding="utf-8", errors="surrogatepass").read())
chat = [{"role": "user", "content": "Hi"}]
for name, text in cases:
    try:
        out = templates.render(text, chat)
        row = {"name": name, "ok": True, "len": len(out)}
    except TemplateError as e:
        row = {"name": name, "ok": False, "type": type(e).__name__, "message": e.message}
    print(json.dumps(row), flush=True)
normal = templates.render("{% for m in messages %}[{{ m.content }}]{% endfor %}", chat)
children = set()
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/children") as f:
        children.update(int(p) for p in f.read().split())
print(json.dumps({
    "name": "summary",
    "normal": normal,
    "started": template_worker.workers_started(),
    "children": sorted(children),
    "idle": sorted(template_worker.idle_worker_pids()),
    "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def test_hostile_templates_end_in_one_line_errors_within_hard_limits(tmp_path: Path) -> None:
    cases = tmp_path / "cases.json"
    cases.write_bytes(
        json.dumps([[n, t] for n, t, _ in CASES], ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    )
    # 1.5 GiB of address space and 60 s of CPU for the caller: the cases took
    # 1-8 GB and minutes in-process; the worker inherits a hard limit no higher.
    proc = run_limited(RUNNER, memory=3 * GiB // 2, cpu_s=60, env={"CASES": str(cases)})
    rows = {r["name"]: r for r in json_lines(proc)}
    assert "Traceback" not in proc.stderr
    for name, _, expected in CASES:
        row = rows[name]
        assert not row["ok"], f"{name} rendered"
        assert "\n" not in row["message"], f"{name}: {row['message']!r}"
        assert re.search(expected, row["message"]), f"{name}: {row['message']!r}"
    assert rows["refusal"]["type"] == "TemplateRefused"
    summary = rows["summary"]
    assert summary["normal"] == "[Hi]"  # a fresh worker renders after all that
    assert summary["started"] >= 2  # overrunning workers were killed and replaced
    # nothing keeps running: every child left is an idle worker, asleep on its pipe
    assert summary["children"] == summary["idle"]
    assert summary["maxrss_mb"] < 400  # the caller never held the template's data


def test_a_killed_worker_is_replaced_and_the_next_render_is_right() -> None:
    with pytest.raises(TemplateError, match="took longer than 0.5 s"):
        render("{{ ([[1]] * 3999999) | sum(start=[]) }}", [], time_limit=0.5)
    assert render("{{ 1 + 1 }}", []) == "2"
    # the runaway was killed and reaped: every worker left is an idle one
    assert _template_workers() == set(template_worker.idle_worker_pids())


def _template_workers() -> set[int]:
    found = set()
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"--template-worker" in cmdline:
                found.add(int(pid))
    return found


def test_a_worker_that_died_between_renders_is_replaced() -> None:
    assert render("{{ 'a' }}", []) == "a"
    for pid in template_worker.idle_worker_pids():
        os.kill(pid, signal.SIGKILL)
    assert render("{{ 'b' }}", []) == "b"


def test_check_syntax_runs_in_the_worker_too() -> None:
    with pytest.raises(TemplateError, match="nested too deeply"):
        templates.check_syntax("{{ " + "[" * 20000 + "]" * 20000 + " }}")
    with pytest.raises(TemplateError, match="characters long"):
        templates.check_syntax("{{ x }}" * 200_000)
    templates.check_syntax("{{ x }}")


def test_data_that_cannot_cross_to_the_worker_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="cannot be passed"):
        render("{{ x }}", [], x={(1, 2): "tuple key"})


def test_hostile_gguf_template_is_passed_over_for_the_preset() -> None:
    meta = {
        "general.architecture": "llama",
        "general.name": "SmolLM2 135M Instruct",
        "tokenizer.chat_template": "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",
    }
    t = resolve_template(meta, eos_token="<|im_end|>")
    assert t.source == "preset" and t.name == "chatml"
    assert t.warning.startswith("The model file's chat template is refused (")
    assert "\n" not in t.warning


# --- a real model file whose template is hostile -------------------------------------

CHAT_RUNNER = """
import contextlib, io, json, os, sys
from chatapp.__main__ import main
err = io.StringIO()
with contextlib.redirect_stderr(err):
    code = main(json.loads(os.environ["ARGV"]))
print(json.dumps({"code": code, "stderr": err.getvalue()}))
"""


def _chat(model: Path, home: Path, *extra: str) -> dict[str, object]:
    argv = ["chat", "--model", str(model), "--max-tokens", "2", "--seed", "1", *extra, "Hi"]
    # 30 s of CPU: llama-cpp-python compiling the 10 MB template took over 120 s
    proc = run_limited(
        CHAT_RUNNER,
        memory=4 * GiB,
        cpu_s=30,
        env={"ARGV": json.dumps(argv), "CHATAPP_HOME": str(home)},
    )
    rows = json_lines(proc)
    assert rows, proc.stderr[-2000:]
    return rows[-1]


@pytest.mark.model
def test_gguf_with_a_huge_template_loads_fast_and_chats_with_the_preset(
    smollm2_path: Path, tmp_path: Path
) -> None:
    big = "{{ 'x' }}" * 1_200_000  # 10.8 MB: Jinja needs minutes to compile it
    model = hostile_gguf.with_metadata(
        smollm2_path,
        tmp_path / "huge-template.gguf",
        {"tokenizer.chat_template": hostile_gguf.kv("tokenizer.chat_template", 8, big)},
    )
    out = _chat(model, tmp_path / "home")
    assert out["code"] == 0, out
    notes = [line for line in str(out["stderr"]).splitlines() if line.startswith("chatapp: note:")]
    assert len(set(notes)) == 1  # (the CLI prints the template's note twice: not ours)
    assert "The model file's chat template is refused (The chat template is 10,800,000" in notes[0]
    assert "ChatML" in notes[0]


@pytest.mark.model
def test_gguf_template_that_explodes_when_rendered_refuses_the_chat(
    smollm2_path: Path, tmp_path: Path
) -> None:
    model = hostile_gguf.with_metadata(
        smollm2_path,
        tmp_path / "tojson-bomb.gguf",
        {
            "tokenizer.chat_template": hostile_gguf.kv(
                "tokenizer.chat_template", 8, "{{ messages | tojson(indent=999999999) }}"
            )
        },
    )
    home = tmp_path / "home"
    out = _chat(model, home)
    assert out["code"] == 1, out
    lines = str(out["stderr"]).strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(
        "chatapp: error: The chat template was stopped: "
    ), lines
    with sqlite3.connect(next(home.rglob("chatapp.sqlite3"))) as db:
        answers = db.execute("SELECT count(*) FROM messages WHERE role = 'assistant'").fetchone()
    assert answers == (0,)  # no answer row was started


@pytest.mark.model
def test_llama_cpp_python_compiles_no_gguf_template(smollm2_path: Path, tmp_path: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from chatapp.engine import llama_guard

    nested = "{{ " + "(" * 50000 + "1" + ")" * 50000 + " }}"  # Jinja's parser recurses
    model = hostile_gguf.with_metadata(
        smollm2_path,
        tmp_path / "nested.gguf",
        {"tokenizer.chat_template": hostile_gguf.kv("tokenizer.chat_template", 8, nested)},
    )
    llama_guard.install()
    llm = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    try:
        handler = llm._chat_handlers["chat_template.default"]
        assert isinstance(handler, llama_guard.UncompiledChatFormatter)
        assert handler.template == nested
        with pytest.raises(RuntimeError, match="renders chat templates itself"):
            handler(messages=[])
    finally:
        llm.close()


def test_a_frozen_build_starts_its_worker_with_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PyInstaller build has no `python -m`: the worker is its own executable run with
    --template-worker, handled first thing in chatapp.__main__. Stand in for that
    executable with a script that runs chatapp.__main__ on its arguments."""
    root = Path(__file__).resolve().parents[2]
    exe = tmp_path / "chatapp-frozen"
    exe.write_text(
        "#!/bin/sh\n"
        f'exec {sys.executable} -c "import sys; sys.path.insert(0, {str(root)!r}); '
        'from chatapp.__main__ import main; sys.exit(main(sys.argv[1:]))" "$@"\n'
    )
    exe.chmod(0o755)
    template_worker.shutdown()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(exe))
    started = template_worker.workers_started()
    try:
        assert render("{{ messages[0].content }}!", [{"role": "user", "content": "Hi"}]) == "Hi!"
        assert template_worker.workers_started() == started + 1
        (pid,) = template_worker.idle_worker_pids()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert b"--template-worker" in cmdline and b"-m" not in cmdline
    finally:
        template_worker.shutdown()


CTRL_C_RUNNER = """
import json, os, signal
from chatapp.core import templates
from chatapp.core.templates import worker as template_worker
from chatapp.core.errors import TemplateError

def interrupt(signum, frame):
    raise KeyboardInterrupt
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 1.0)  # Ctrl-C a second into a 60 s spin in C
try:
    templates.render("{{ ([[1]] * 3999999) | sum(start=[]) }}", [], time_limit=60)
    outcome = "rendered"
except KeyboardInterrupt:
    outcome = "interrupted"
except TemplateError as e:
    outcome = "error: " + e.message  # the deadline, not Ctrl-C, ended it
children = set()
for tid in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{tid}/children") as f:
        children.update(int(p) for p in f.read().split())
print(json.dumps({"outcome": outcome, "children": sorted(children),
                  "again": templates.render("{{ 6 * 7 }}", [])}))
"""


def test_ctrl_c_during_a_runaway_render_stops_it_and_its_worker() -> None:
    (row,) = json_lines(run_limited(CTRL_C_RUNNER, memory=2 * GiB, cpu_s=60))
    assert row["outcome"] == "interrupted"
    assert row["again"] == "42"
    assert (
        row["children"] == []
    )  # listed before "again" started a fresh worker: the spinner is gone


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (["/nonexistent/chatapp"], r"could not start \(No such file or directory\)"),
        ([sys.executable, "-c", "import sys; print('boom', file=sys.stderr)"], r"\(boom\)"),
    ],
)
def test_a_worker_that_cannot_start_is_one_line(
    command: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    template_worker.shutdown()
    monkeypatch.setattr(template_worker, "_command", lambda: (command, dict(os.environ)))
    with pytest.raises(TemplateError, match=says) as e:
        render("{{ 1 }}", [])
    assert "\n" not in str(e.value)
    assert _template_workers() == set()
