"""The files `chatapp export` writes: like any file the user writes (their umask decides
the mode: 0644 under 022), and a folder that cannot be written is one line and exit 1,
not a traceback. A real database under CHATAPP_HOME; the read-only folder is a read-only
tmpfs when running as root (root writes through mode bits), else a 0555 folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core import atomic
from chatapp.core.conversation import Conversation, Message, Role
from chatapp.core.export import export_many
from chatapp.core.store import Store
from chatapp.paths import app_paths

RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"


@pytest.fixture
def two_chats() -> list[str]:
    with Store(app_paths().ensure().database) as s:
        ids = []
        for title in ("First chat", "Second chat"):
            c = s.create_conversation(title)
            s.add_message(c.id, Role.USER, f"Hello from {title}")
            ids.append(c.id)
        return ids


def _cli(*args: str, umask: int = 0o022) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(umask),
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_exports_follow_the_umask(
    two_chats: list[str], tmp_path: Path, umask: int, mode: int
) -> None:
    one = tmp_path / "one.md"
    assert _cli("export", two_chats[0], "-o", str(one), umask=umask).returncode == 0
    assert _mode(one) == mode
    many = tmp_path / "all.zip"
    assert _cli("export", "--all", "-o", str(many), umask=umask).returncode == 0
    assert _mode(many) == mode and len(zipfile.ZipFile(many).namelist()) == 4
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _cli("export", "--all", "-f", "txt", "-o", str(folder), umask=umask).returncode == 0
    files = sorted(folder.iterdir())
    assert len(files) == 4 and all(_mode(f) == mode for f in files)


def test_a_new_export_folder_follows_the_umask(two_chats: list[str], tmp_path: Path) -> None:
    with Store(app_paths().database) as store:

        def load(cid: str) -> tuple[Conversation, list[Message]]:
            conv = store.get_conversation(cid)
            assert conv is not None
            return conv, store.messages(cid)

        old = os.umask(0o027)
        try:
            dest = export_many(two_chats, load, "md", tmp_path / "new-folder")
        finally:
            os.umask(old)
    assert _mode(dest) == 0o750  # 0777 less the umask, like any folder the user makes
    assert sorted(_mode(f) for f in dest.iterdir()) == [0o640] * 4


def test_the_app_s_own_files_stay_private(tmp_path: Path) -> None:
    atomic.write_text(tmp_path / "settings.json", "{}")
    assert _mode(tmp_path / "settings.json") == 0o600


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if r.returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatapp: error: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_a_read_only_folder_is_one_line_and_exit_1(
    two_chats: list[str], read_only_folder: Path
) -> None:
    line = _one_error_line(_cli("export", two_chats[0], "-o", str(read_only_folder / "x.md")))
    assert f"Could not write {read_only_folder / 'x.md'}" in line
    line = _one_error_line(_cli("export", "--all", "-o", str(read_only_folder / "all.zip")))
    assert "Could not write" in line
    line = _one_error_line(_cli("export", "--all", "-o", str(read_only_folder)))
    assert f"Could not write into {read_only_folder}" in line
    line = _one_error_line(_cli("export", "--all", "-o", str(read_only_folder / "new" / "f")))
    assert "Could not write" in line
    assert list(read_only_folder.iterdir()) == []  # nothing half-written left behind
