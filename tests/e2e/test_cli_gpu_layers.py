"""--gpu-layers on the command line: auto, all and numbers are taken, anything else is
refused in one line before a model loads (real processes, the real SmolLM2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
FAST = ["--max-tokens", "4", "--seed", "1", "--threads", "2"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=600
    )


def test_gpu_layers_auto_answers_and_a_bad_value_is_refused(smollm2_path: Path) -> None:
    ok = cli("chat", "--model", str(smollm2_path), "--gpu-layers", "auto", *FAST, "Hi")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip()
    bad = cli("chat", "--model", str(smollm2_path), "--gpu-layers", "lots", *FAST, "Hi")
    assert bad.returncode == 2
    assert "GPU layers must be auto, all, -1 (all) or a number of layers" in bad.stderr
    assert "Traceback" not in bad.stderr
