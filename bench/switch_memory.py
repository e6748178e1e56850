"""Memory after switching models back and forth, through the real inference worker.

    python bench/switch_memory.py [--switches 10]

Loads SmolLM2, then alternates Gemma 3 270M / SmolLM2; prints the process RSS after the
first load and after each switch, and the final ratio (target: within 5%).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--switches", type=int, default=10)
    args = ap.parse_args()
    from PySide6.QtCore import QEventLoop
    from PySide6.QtWidgets import QApplication

    from chatapp.core.settings import Settings
    from chatapp.core.store import Store
    from chatapp.gui.chat_session import ChatSession
    from tests.fetch_models import GEMMA3, SMOLLM2, fetch

    models = fetch()
    a, b = str(models / SMOLLM2), str(models / GEMMA3)
    app = QApplication.instance() or QApplication([])
    store = Store(Path(tempfile.mkdtemp()) / "db.sqlite3")
    session = ChatSession(store, Settings())

    def load(path: str) -> None:
        loop = QEventLoop()
        session.model_loaded.connect(loop.quit)
        session.open_model(path)
        loop.exec()
        session.model_loaded.disconnect(loop.quit)
        reply = QEventLoop()  # one short answer, so the KV cache and buffers are really used
        session.reply_finished.connect(reply.quit)
        session.settings.max_tokens = 16
        session.send("Say hello.")
        reply.exec()
        session.reply_finished.disconnect(reply.quit)
        session.new_conversation()

    load(a)
    first = rss_mb()
    print(f"after first load of {Path(a).name}: {first:.1f} MB")
    for i in range(args.switches):
        path = b if i % 2 == 0 else a
        load(path)
        print(f"switch {i + 1:2d} -> {Path(path).name}: {rss_mb():.1f} MB")
    if args.switches % 2:
        load(a)
    last = rss_mb()
    print(
        f"back on {Path(a).name}: {last:.1f} MB, {100 * (last / first - 1):+.1f}% vs the first load"
        " (target within 5%)"
    )
    session.shutdown()
    store.close()
    app.processEvents()


if __name__ == "__main__":
    main()
