"""`chatapp --self-test`: passes on a working install with a real model, and names each
broken part in one line (exit 1) when something is wrong."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.selftest import default_model

RUN_CLI = Path(__file__).parent / "hub" / "run_cli.py"
ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("folders", "database", "resources", "libraries", "model", "qt", "pdf")


def _self_test(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CHATAPP_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return subprocess.run(
        [sys.executable, str(RUN_CLI), "--self-test", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


def _results(stdout: str) -> dict[str, str]:
    """check name -> "ok" or "FAIL", from the one line each check prints."""
    out = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition("  ")
        name = rest.strip().split(":", 1)[0]
        if status.strip() in ("ok", "FAIL") and name in CHECKS:
            out[name] = status.strip()
    return out


@pytest.mark.model
@pytest.mark.slow
def test_passes_with_a_real_model(smollm2_path: Path, chatapp_home: Path) -> None:
    r = _self_test("--model", str(smollm2_path), home=chatapp_home)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _results(r.stdout) == dict.fromkeys(CHECKS, "ok")
    model_line = next(line for line in r.stdout.splitlines() if "model:" in line)
    assert smollm2_path.name in model_line and " tokens in " in model_line
    assert "self-test passed (7 checks)" in r.stdout
    # it really opened the app's database, with every migration applied
    with Store(app_paths().database) as store:
        assert store.applied_migrations()


@pytest.mark.slow
def test_a_bad_model_and_a_newer_database_each_fail_in_one_line(
    tmp_path: Path, chatapp_home: Path
) -> None:
    paths = app_paths().ensure()
    Store(paths.database).close()
    db = sqlite3.connect(paths.database)
    db.execute("INSERT INTO _migrations VALUES ('999_from_the_future', 0)")
    db.commit()
    db.close()
    not_a_model = tmp_path / "notes.gguf"
    not_a_model.write_text("these are notes, not a model", encoding="utf-8")

    r = _self_test("--model", str(not_a_model), home=chatapp_home)
    assert r.returncode == 1
    results = _results(r.stdout)
    assert results == {**dict.fromkeys(CHECKS, "ok"), "database": "FAIL", "model": "FAIL"}
    fails = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2
    assert "newer chatapp" in fails[0] and "999_from_the_future" in fails[0]
    assert "notes.gguf" in fails[1]
    assert "self-test FAILED: 2 of 7 checks" in r.stdout


def test_unusable_folders_fail_without_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    r = _self_test("--model", str(tmp_path / "missing.gguf"), home=blocker)
    assert r.returncode == 1, r.stdout + r.stderr
    results = _results(r.stdout)
    assert results["folders"] == "FAIL" and results["database"] == "FAIL"
    assert results["model"] == "FAIL"
    assert "Traceback" not in r.stdout + r.stderr


def test_default_model_is_the_smallest_in_the_library(
    smollm2_path: Path, gemma_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no LM Studio folder
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty Hugging Face cache
    paths = app_paths().ensure()
    paths.models.mkdir(parents=True)
    (paths.models / gemma_path.name).symlink_to(gemma_path)
    (paths.models / smollm2_path.name).symlink_to(smollm2_path)
    assert gemma_path.stat().st_size > smollm2_path.stat().st_size
    assert default_model(paths).name == smollm2_path.name
    (paths.models / smollm2_path.name).unlink()
    assert default_model(paths).name == gemma_path.name
    (paths.models / gemma_path.name).unlink()
    with pytest.raises(RuntimeError, match="no model in the library"):
        default_model(paths)
