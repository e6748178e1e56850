"""Each text format against a reviewed golden file (regenerate: CHATAPP_UPDATE_GOLDEN=1)."""

import os
from pathlib import Path

import pytest

from chatapp.core import export
from tests.golden.sample import sample, sample_tools

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.mark.parametrize("fmt", export.TEXT_FORMATS)
def test_matches_golden_file(fmt):
    conv, messages = sample()
    got = export.render(fmt, conv, messages)
    path = GOLDEN / f"conversation.{fmt}"
    if os.environ.get("CHATAPP_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8", newline="\n")
    assert got == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt", export.TEXT_FORMATS)
def test_tool_calls_and_results_match_golden_file(fmt):
    conv, messages = sample_tools()
    got = export.render(fmt, conv, messages)
    path = GOLDEN / f"tools.{fmt}"
    if os.environ.get("CHATAPP_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8", newline="\n")
    assert got == path.read_text(encoding="utf-8")


def test_rendering_does_not_depend_on_message_order():
    conv, messages = sample()
    for fmt in export.TEXT_FORMATS:
        assert export.render(fmt, conv, messages[::-1]) == export.render(fmt, conv, messages)
