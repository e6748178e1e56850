"""`chatapp` mistakes end with a message and an exit code, never a window or a Qt abort."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.display import display_problem, x_server_answers

RUN_CLI = Path(__file__).parent / "hub" / "run_cli.py"
ROOT = Path(__file__).resolve().parents[1]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    }
    env.update(extra)
    return env


def _chatapp(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=_clean_env(QT_QPA_PLATFORM="offscreen") if env is None else env,
    )


def _commands() -> set[str]:
    from chatapp import cli

    return cli.command_names()


def test_unknown_command_is_an_error_without_a_suggestion() -> None:
    r = _chatapp("frobnicate")
    assert r.returncode == 2, r.stderr
    assert "unknown command 'frobnicate'" in r.stderr
    assert "did you mean" not in r.stderr
    assert "chat" in r.stderr  # the real commands are listed
    assert len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


def test_a_typo_gets_the_real_command_suggested() -> None:
    r = _chatapp("conversatons")
    assert r.returncode == 2
    assert "did you mean 'conversations'?" in r.stderr
    r = _chatapp("exprt", "--all")
    assert r.returncode == 2
    assert "did you mean 'export'?" in r.stderr


def test_serv_suggests_serve_only_if_serve_exists() -> None:
    r = _chatapp("serv")
    assert r.returncode == 2
    assert "unknown command 'serv'" in r.stderr
    assert ("did you mean 'serve'?" in r.stderr) == ("serve" in _commands())


def test_help_as_a_word_prints_the_help() -> None:
    r = _chatapp("help")
    assert r.returncode == 0 and "usage: chatapp" in r.stdout and "--self-test" in r.stdout


def test_unknown_option_is_an_error() -> None:
    r = _chatapp("--frobnicate")
    assert r.returncode == 2
    assert "unknown option '--frobnicate'" in r.stderr


def test_real_commands_still_run() -> None:
    r = _chatapp("conversations")
    assert r.returncode == 0, r.stderr


def test_no_display_says_so_and_names_the_headless_commands() -> None:
    r = _chatapp(env=_clean_env())
    assert r.returncode == 1, (r.returncode, r.stderr)  # not -6 / 134 (SIGABRT)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "no display found" in lines[0]
    for command in ("chat", "conversations", "models", "export"):
        assert command in lines[0]
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]


def test_a_display_nobody_answers_is_reported_not_aborted() -> None:
    r = _chatapp(env=_clean_env(DISPLAY=":87", QT_QPA_PLATFORM="xcb"))
    if "libxcb" in r.stderr:  # pragma: no cover - only where libxcb is missing
        pytest.skip("libxcb is not installed, so Qt's xcb plugin cannot be probed")
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "no X server answers at DISPLAY=:87" in r.stderr


@pytest.mark.parametrize(
    ("env", "platform", "ok"),
    [
        ({}, "linux", False),
        ({"QT_QPA_PLATFORM": "offscreen"}, "linux", True),
        ({"QT_QPA_PLATFORM": "minimal"}, "linux", True),
        ({"QT_QPA_PLATFORM": "vnc:size=800x600"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":0"}, "linux", False),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"QT_QPA_PLATFORM": "wayland;xcb", "WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({}, "darwin", True),
        ({}, "win32", True),
    ],
)
def test_display_problem(env: dict[str, str], platform: str, ok: bool) -> None:
    assert (display_problem(env, platform) is None) == ok


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed")
def test_a_running_x_server_is_found() -> None:
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(  # -displayfd: Xvfb picks a free display and writes its number
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as f:
            number = f.readline().strip()  # written once the server accepts connections
        assert number, f"Xvfb gave no display number (exit code {xvfb.poll()})"
        display = f":{number}"
        assert x_server_answers(display)
        assert display_problem({"DISPLAY": display}, "linux") is None
    finally:
        xvfb.terminate()
        xvfb.wait(30)
    assert not x_server_answers(display)


def test_a_qt_platform_failure_exits_1_with_qts_reason() -> None:
    # WAYLAND_DISPLAY set: the display check lets it through; Qt then finds no such plugin
    r = _chatapp(env=_clean_env(QT_QPA_PLATFORM="no-such-platform", WAYLAND_DISPLAY="wayland-9"))
    assert r.returncode == 1, (r.returncode, r.stderr)  # not SIGABRT
    assert "cannot start the window: Qt: " in r.stderr
    assert "no-such-platform" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_model_file_argument_is_for_the_window_not_a_command(tmp_path: Path) -> None:
    """The .desktop file starts `chatapp %f`: a .gguf path is not an unknown command."""
    r = _chatapp(str(tmp_path / "some-model.gguf"), env=_clean_env())
    assert r.returncode == 1, r.stderr
    assert "no display found" in r.stderr and "unknown command" not in r.stderr
    r = _chatapp(str(tmp_path / "a.gguf"), "extra", env=_clean_env())
    assert r.returncode == 2 and "not also 'extra'" in r.stderr
