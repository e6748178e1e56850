"""`chatapp models ...`: in a new process against the fake hub, and in-process for the library."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatapp.core.catalog.gguf import check_model_file
from chatapp.paths import app_paths
from tests.hub.fake_hf import Blob, FakeHub

RUN_CLI = Path(__file__).with_name("run_cli.py")


def _cli(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args], capture_output=True, text=True, timeout=120, **kw
    )  # type: ignore[call-overload]


@pytest.fixture
def run_here(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """chatapp.cli.run in this process, seeing only this worktree (see run_cli.py)."""
    monkeypatch.setattr(
        sys,
        "meta_path",
        [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")],
    )
    from chatapp import cli

    return lambda *args: cli.run(list(args))


def test_download_killed_midway_resumes_in_a_new_process(hub: FakeHub, tmp_path: Path) -> None:
    data = b"GGUF" + random.Random(3).randbytes(3_000_000)
    hub.add("org/big-GGUF", {"big-Q4_0.gguf": Blob(data=data)})
    hub.faults.delay["big-Q4_0.gguf"] = 0.02  # ~3 s for the whole file: time to kill it
    proc = subprocess.Popen(
        [sys.executable, str(RUN_CLI), "models", "download", "org/big-GGUF", "Q4_0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while hub.bytes_served("big-Q4_0.gguf") < 1_000_000 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    dest = app_paths().models / "org/big-GGUF/big-Q4_0.gguf"
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size
    assert 0 < have < len(data) and not dest.exists()

    hub.faults.delay.clear()
    before = len(hub.transfers)
    done = _cli("models", "download", "org/big-GGUF", "Q4_0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(dest)
    assert dest.read_bytes() == data and not part.exists()
    resumed = hub.transfers[before:]
    assert [(t.range, t.sent) for t in resumed] == [(f"bytes={have}-", len(data) - have)]


def test_cli_errors_are_one_line_messages(hub: FakeHub) -> None:
    hub.add("org/gated-GGUF", {"m-Q4_0.gguf": Blob(data=b"GGUF" * 10)}, gated=True)
    r = _cli("models", "download", "org/gated-GGUF", "Q4_0")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith(
        "chatapp: error: org/gated-GGUF is gated: accept its license"
    )
    assert "Traceback" not in r.stderr
    r = _cli("models", "download", "org/none", "Q4_0")
    assert r.returncode == 1 and "login" in r.stderr and "Traceback" not in r.stderr


def test_search_and_info_from_the_cli(
    hub: FakeHub, run_here, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    hub.add(
        "org/m-GGUF",
        {"m-Q4_K_M.gguf": Blob(data=b"GGUF" * 1000), "mmproj.gguf": Blob(data=b"G")},
        downloads=42,
    )
    assert run_here("models", "search", "m-GGUF") == 0
    assert "org/m-GGUF" in capsys.readouterr().out
    assert run_here("models", "info", "org/m-GGUF") == 0
    out = capsys.readouterr().out
    assert "Q4_K_M" in out and "fits" in out and "mmproj" not in out


def test_offline_search_says_offline(run_here, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert run_here("models", "search", "llama") == 1
    assert "Offline" in capsys.readouterr().err


@pytest.mark.model
def test_import_list_info_remove(
    run_here,
    smollm2_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no LM Studio folder
    assert run_here("models", "import", str(smollm2_path)) == 0
    copied = app_paths().models / "imported" / smollm2_path.name
    check_model_file(copied)
    assert run_here("models", "import", str(smollm2_path), "--in-place") == 0
    capsys.readouterr()
    assert run_here("models", "list") == 0
    out = capsys.readouterr().out
    assert "imported/" + smollm2_path.name in out and "registered" in out
    assert run_here("models", "info", "imported/" + smollm2_path.name) == 0
    out = capsys.readouterr().out
    assert ("llama" in out and "135M" in out) or "134M" in out
    assert run_here("models", "remove", "imported/" + smollm2_path.name, "--yes") == 0
    assert not copied.exists() and smollm2_path.exists()
    assert run_here("models", "remove", str(smollm2_path), "--yes") == 0
    assert smollm2_path.exists()  # in place: forgotten, never deleted
    capsys.readouterr()
    assert run_here("models", "list") == 0
    assert "No models yet" in capsys.readouterr().out
