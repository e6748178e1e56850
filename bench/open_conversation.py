"""Opening a long conversation in the window: time to a painted view and memory, for a
2,000-message conversation against a 2-message one, measured in one run.

    python bench/open_conversation.py [--messages 2000] [--rounds 3]

Each measurement runs in its own process (a fresh window, the same kind of messages:
prose, lists and code blocks), rounds alternate the two sizes so machine noise hits
both alike. Reported: the time from selecting the conversation in the list to the end of
the first paint of the message view (opened again after another chat, and separately the
first open after start, which also pays one-time costs such as Pygments compiling its
lexer), the process's resident memory after the first open, and the slowest step while
paging from the newest message to the oldest (scrolling smoothness).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def make_conversation(store, n_messages: int) -> str:  # type: ignore[no-untyped-def]
    from chatapp.core.conversation import FinishReason, Message, Role, new_id

    conv = store.create_conversation(f"{n_messages} messages", created_at=1_700_000_000)
    rows, parent, t = [], None, 1_700_000_000.0
    for i in range(n_messages // 2):
        q = Message(
            new_id(),
            conv.id,
            parent,
            Role.USER,
            f"Question {i}: how does step {i} work, and why? " * (1 + i % 3),
            created_at=t,
        )
        answer = (
            f"Step {i} works like this.\n\n- first, the input is read\n- then it is **parsed**\n\n"
            + "It keeps going for a while, as answers do. " * (2 + i % 9)
            + (
                f"\n\n```python\ndef step_{i}(x):\n    return x + {i}  # {'long ' * 20}\n```\n"
                if i % 4 == 0
                else ""
            )
        )
        a = Message(
            new_id(),
            conv.id,
            q.id,
            Role.ASSISTANT,
            answer,
            created_at=t + 1,
            model="model.gguf",
            finish_reason=FinishReason.STOP,
            completion_tokens=120,
            tokens_per_second=30.0,
        )
        rows += [q, a]
        parent, t = a.id, t + 2
    store.insert_messages(rows)
    store.set_current_leaf(conv.id, parent)
    return conv.id


def one(n_messages: int) -> dict[str, float]:
    from PySide6.QtWidgets import QAbstractSlider, QApplication

    from chatapp.core.settings import Settings
    from chatapp.core.store import Store
    from chatapp.gui.chat_session import ChatSession
    from chatapp.gui.mainwindow import MainWindow
    from chatapp.paths import app_paths

    app = QApplication.instance() or QApplication([])
    os.environ["CHATAPP_HOME"] = tempfile.mkdtemp(prefix="chatapp-bench-")
    paths = app_paths().ensure()
    store = Store(paths.database)
    other = make_conversation(store, 2)
    cid = make_conversation(store, n_messages)
    settings = Settings()
    session = ChatSession(store, settings)
    w = MainWindow(store, settings, paths, session, extensions=("chatapp.gui.branch_actions",))
    w.resize(1100, 760)
    w.show()
    for _ in range(20):
        app.processEvents()
    view = w.message_view
    before = rss_mb()

    def open_painted(conversation_id: str) -> float:
        t0 = time.perf_counter()
        row = w.conversations.row_of(conversation_id)
        w.conversation_view.setCurrentIndex(w.conversations.index(row))
        painted = view.paint_count
        while view.paint_count == painted:
            app.processEvents()
        return time.perf_counter() - t0

    cold_s = open_painted(cid)  # includes first-use costs (Pygments compiles its lexer)
    assert len(view.widgets()) == n_messages
    after = rss_mb()
    open_painted(other)
    open_s = open_painted(cid)
    assert len(view.widgets()) == n_messages

    sb = view.verticalScrollBar()
    worst = 0.0
    steps = 0
    while sb.value() > 0 and steps < 2000:
        t = time.perf_counter()
        sb.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub)
        view.viewport().repaint()
        app.processEvents()
        worst = max(worst, time.perf_counter() - t)
        steps += 1
    result = {
        "open_ms": open_s * 1000,
        "cold_open_ms": cold_s * 1000,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_scrolled_mb": rss_mb(),
        "scroll_worst_ms": worst * 1000,
        "scroll_steps": float(steps),
    }
    w.close()
    store.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return

    def child(n: int) -> dict[str, float]:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n)], capture_output=True, text=True, check=True
        ).stdout
        return json.loads(out.strip().splitlines()[-1])

    small, large = [], []
    for r in range(args.rounds):
        s, big = child(2), child(args.messages)
        small.append(s)
        large.append(big)
        print(
            f"round {r + 1}: 2 messages {s['open_ms']:.0f} ms (first open "
            f"{s['cold_open_ms']:.0f}), {s['rss_after_mb']:.0f} MB | {args.messages} messages "
            f"{big['open_ms']:.0f} ms (first open {big['cold_open_ms']:.0f}), "
            f"{big['rss_after_mb']:.0f} MB "
            f"({big['rss_scrolled_mb']:.0f} MB after paging to the top in "
            f"{big['scroll_steps']:.0f} steps, slowest step {big['scroll_worst_ms']:.0f} ms)",
            flush=True,
        )

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(x[key] for x in rows)

    s_ms, b_ms = med(small, "open_ms"), med(large, "open_ms")
    print(f"\nopen to a painted view, median of {args.rounds}:")
    print(f"  2 messages:              {s_ms:.0f} ms")
    print(f"  {args.messages} messages:           {b_ms:.0f} ms  (target < 300 ms)")
    print(f"  ratio:                   {b_ms / s_ms:.2f}")
    s_cold, b_cold = med(small, "cold_open_ms"), med(large, "cold_open_ms")
    print(
        f"  first open after start:  {s_cold:.0f} ms against {b_cold:.0f} ms "
        f"(ratio {b_cold / s_cold:.2f})"
    )
    mem = med(large, "rss_after_mb") - med(small, "rss_after_mb")
    mem_scrolled = med(large, "rss_scrolled_mb") - med(small, "rss_after_mb")
    print(
        f"memory, {args.messages} against 2 messages: +{mem:.0f} MB after opening, "
        f"+{mem_scrolled:.0f} MB after paging through all of it  (target < 100 MB)"
    )
    print(
        f"slowest page step while scrolling through: {max(x['scroll_worst_ms'] for x in large):.0f} ms"
    )


if __name__ == "__main__":
    main()
