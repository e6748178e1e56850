"""The registry's contract with the turn pipeline: specs in the OpenAI function shape,
run() never raises for a tool's failure, results capped with the cut said in the text."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from chatapp.tools.registry import ToolRegistry


@pytest.fixture
def registry(tmp_path: Path):
    with ToolRegistry(tmp_path / "config", max_chars=200) as reg:
        yield reg


def run(reg: ToolRegistry, name: str, args: object):
    return reg.run(name, args, cancel=threading.Event())  # type: ignore[arg-type]


def test_specs_are_openai_functions(registry: ToolRegistry) -> None:
    specs = registry.specs()
    assert [s.name for s in specs] == [
        "calculator",
        "python",
        "read_file",
        "list_files",
        "search_files",
        "current_time",
    ]
    for s in specs:
        f = s.openai()
        assert f["type"] == "function"
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", f["function"]["name"])
        assert f["function"]["parameters"]["type"] == "object"
        assert f["function"]["description"]
        assert s.source == "builtin"
    assert [s.name for s in registry.specs(["current_time", "nope", "calculator"])] == [
        "current_time",
        "calculator",
    ]


def test_failures_are_results_not_exceptions(registry: ToolRegistry) -> None:
    cases = [
        ("nope", {}, "no tool named 'nope'"),
        ("srv__tool", {}, "no tool named 'srv__tool'"),
        ("calculator", [], "calculator: the arguments must be a JSON object"),
        ("calculator", {}, "calculator: missing argument 'expression'"),
        (
            "calculator",
            {"expression": 5},
            "calculator: bad arguments: 'expression' must be a string",
        ),
        ("calculator", {"expression": "9**9**9"}, "calculator: power too large"),
        (
            "current_time",
            {"timezone": "Mars/Olympus"},
            "current_time: bad arguments: unknown time zone",
        ),
    ]
    for name, args, start in cases:
        r = run(registry, name, args)
        assert r.is_error, name
        assert r.content.startswith(start), r.content
        assert "\n" not in r.content


def test_a_cancelled_call_does_not_run(registry: ToolRegistry) -> None:
    cancel = threading.Event()
    cancel.set()
    r = registry.run("calculator", {"expression": "1+1"}, cancel=cancel)
    assert r.is_error and r.content == "calculator: cancelled"


def test_results_are_capped_and_the_cut_is_said(registry: ToolRegistry) -> None:
    r = run(registry, "calculator", {"expression": "7**1000"})
    assert r.truncated and not r.is_error
    digits, note = r.content.split("\n")
    assert digits == str(7**1000)[:200]
    assert note == f"[cut: {len(str(7**1000)) - 200} more characters not shown]"
    assert r.seconds >= 0


def test_current_time(registry: ToolRegistry) -> None:
    r = run(registry, "current_time", {"timezone": "Asia/Tokyo"})
    lines = r.content.splitlines()
    assert lines[0].startswith("Local: ") and lines[1].startswith("UTC: ")
    utc = datetime.strptime(lines[1][5:], "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - utc).total_seconds()) < 3600
    assert lines[2].startswith("Asia/Tokyo: ") and "(UTC+0900)" in lines[2]
