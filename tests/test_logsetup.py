"""The log file rotates: it never grows past MAX_BYTES, and only BACKUP_COUNT old files stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chatapp import logsetup
from chatapp.paths import app_paths

ROOT = Path(__file__).resolve().parents[1]

# The real setup_logging, in a fresh process (it configures the root logger once).
CHILD = """
import logging, sys
sys.path.insert(0, sys.argv[1])
from chatapp.logsetup import setup_logging
setup_logging()
log = logging.getLogger("chatapp.test")
line = "x" * 1000
for i in range(int(sys.argv[2])):
    log.info("%06d %s", i, line)
"""


def test_the_log_rotates_and_keeps_a_bounded_number_of_files(chatapp_home: Path) -> None:
    n = 4 * logsetup.MAX_BYTES // 1000 + 500  # about 4 files' worth
    subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(n)],
        check=True,
        env={"CHATAPP_HOME": str(chatapp_home), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    log_file = app_paths().log_file
    files = sorted(log_file.parent.glob("chatapp.log*"))
    names = [p.name for p in files]
    assert names == ["chatapp.log"] + [
        f"chatapp.log.{i}" for i in range(1, logsetup.BACKUP_COUNT + 1)
    ]
    for p in files:
        assert p.stat().st_size <= logsetup.MAX_BYTES
    # the newest line is in the current file, older ones moved to .1, the oldest are gone
    assert f"{n - 1:06d}" in log_file.read_text(encoding="utf-8")
    assert f"{n - 1:06d}" not in (log_file.parent / "chatapp.log.1").read_text(encoding="utf-8")
    everything = "".join(p.read_text(encoding="utf-8") for p in files)
    assert " 000000 " not in everything
