"""--gpu-layers on the command line: auto, all and numbers are taken, anything else is
refused in one line before a model loads (real processes, the real SmolLM2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_cli_chat import cli

pytestmark = pytest.mark.model
FAST = ["--max-tokens", "4", "--seed", "1", "--threads", "2"]


def test_gpu_layers_auto_answers_and_a_bad_value_is_refused(smollm2_path: Path) -> None:
    ok = cli("chat", "--model", str(smollm2_path), "--gpu-layers", "auto", *FAST, "Hi")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip()
    bad = cli("chat", "--model", str(smollm2_path), "--gpu-layers", "lots", *FAST, "Hi")
    assert bad.returncode == 2
    assert "GPU layers must be auto, all, -1 (all) or a number of layers" in bad.stderr
    assert "Traceback" not in bad.stderr
