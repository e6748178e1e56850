"""Time from launch to a visible window with N stored conversations.

    python bench/startup.py [--conversations 1000] [--rounds 5] [--frozen [dist/chatapp/chatapp]]

Compares against a bare PySide6 window started the same way (the floor any Qt app pays).
With --frozen it also times whole programs, from exec to a shown window: the PyInstaller
build (packaging/build.sh) and `python -m chatapp` from source, both reporting through
CHATAPP_STARTUP_PROBE (chatapp/app.py), since no code can be injected into a frozen build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD_APP = """
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from chatapp.app import build_window
w = build_window()
w.show()
def shown():
    print(time.time() - t0, w.conversations.rowCount(), flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
w.close()
"""

CHILD_BARE = """
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([])
w = QMainWindow()
w.resize(1100, 760)
w.show()
def shown():
    print(time.time() - t0, 0, flush=True)
    app.quit()
QTimer.singleShot(0, shown)
app.exec()
"""


def fill(home: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ["CHATAPP_HOME"] = str(home)
    from chatapp.core.conversation import Role
    from chatapp.core.store import Store
    from chatapp.paths import app_paths

    store = Store(app_paths().ensure().database)
    with store.transaction():
        for i in range(n):
            c = store.create_conversation(f"Conversation {i}", created_at=1_700_000_000 + i)
            u = store.add_message(c.id, Role.USER, f"Question {i} " * 20)
            store.add_message(c.id, Role.ASSISTANT, f"Answer {i} " * 200, parent_id=u.id)
    store.close()


def run(code: str, env: dict[str, str]) -> tuple[float, int]:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-c", code, str(t0)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def run_program(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t0 = time.time()
    out = subprocess.run(
        cmd,
        env=dict(env, CHATAPP_STARTUP_PROBE=repr(t0)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--frozen",
        nargs="?",
        const=str(ROOT / "dist" / "chatapp" / "chatapp"),
        metavar="EXE",
        help="also time this frozen build and `python -m chatapp` (default: dist/chatapp/chatapp)",
    )
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="chatapp-startup-"))
    fill(home, args.conversations)
    env = dict(os.environ, CHATAPP_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    app_times, bare_times, frozen_times, source_times, rows = [], [], [], [], 0
    for _ in range(args.rounds):
        t, rows = run(CHILD_APP, env)
        app_times.append(t)
        bare_times.append(run(CHILD_BARE, env)[0])
        if args.frozen:
            frozen_times.append(run_program([args.frozen], env)[0])
            source_times.append(run_program([sys.executable, "-m", "chatapp"], env)[0])
    a, b = statistics.median(app_times), statistics.median(bare_times)
    print(f"{args.conversations} conversations stored, {rows} rows loaded at start")
    print(f"chatapp window visible after: {a:.3f} s median (target <= 1.5 s)")
    print(f"bare PySide6 window:        {b:.3f} s median")
    print(f"ratio chatapp / bare Qt:    {a / b:.2f}")
    if args.frozen:
        f, s = statistics.median(frozen_times), statistics.median(source_times)
        print(f"whole program, frozen build: {f:.3f} s median ({args.frozen})")
        print(f"whole program, python -m chatapp: {s:.3f} s median")
        print(f"ratio frozen / bare Qt:     {f / b:.2f}")


if __name__ == "__main__":
    main()
