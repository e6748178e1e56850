"""PDF export wraps long code lines instead of cutting them at the page margin."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from chatapp.core.conversation import Conversation, FinishReason, Message, Role

pytestmark = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")

# 300 characters without a space (a minified line, a long URL in code) and a long line
# with spaces (a curl command): both must be in the PDF whole
UNBROKEN = "".join(f"{i:03d}abcdefg" for i in range(30))
SPACED = "curl -sSL " + " ".join(f"--header 'X-Field-{i:02d}: value{i:02d}'" for i in range(10))


def _text(tmp_path, messages):
    from chatapp.gui.pdf import write_pdf

    conv = Conversation(
        "c1", "Wide code", 1_735_732_800.0, 1_735_732_800.0, current_leaf_id=messages[-1].id
    )
    out = tmp_path / "wide.pdf"
    write_pdf(conv, messages, out)
    return subprocess.run(
        ["pdftotext", "-layout", str(out), "-"], capture_output=True, text=True, check=True
    ).stdout


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_long_code_lines_wrap_in_the_pdf(tmp_path, qapp):
    assert len(UNBROKEN) == 300 and len(SPACED) > 300
    body = f"Two long lines:\n\n```bash\n{SPACED}\n```\n\n```\n{UNBROKEN}\n```\n\nThe end."
    messages = [
        Message("u", "c1", None, Role.USER, "Show me", created_at=1_735_732_801.0),
        Message(
            "a",
            "c1",
            "u",
            Role.ASSISTANT,
            body,
            created_at=1_735_732_802.0,
            finish_reason=FinishReason.STOP,
        ),
    ]
    text = _text(tmp_path, messages)
    assert "The end." in text
    flat = _squeeze(text)
    assert UNBROKEN in flat, "the unbroken 300-character line was cut"
    assert _squeeze(SPACED) in flat, "the long command was cut"
    # and it really wrapped: no printed line is longer than the page allows
    assert max(len(line) for line in text.splitlines()) < 200
