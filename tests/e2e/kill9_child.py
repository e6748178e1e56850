"""Child process for test_kill9: the real window streams answers (asking again whenever
one ends) and reports each update on stdout, until the parent kills it with SIGKILL."""

import json
import sys
import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from chatapp.app import build_window

PROMPT = "Write a long essay about the history of the Roman Empire, with many details."

app = QApplication([])
w = build_window(model=sys.argv[1])
QTimer.singleShot(120_000, app.quit)  # never outlive a parent that stopped reading


def on_delta(message_id: str, text: str, _thinking: str) -> None:
    print(json.dumps({"t": time.monotonic(), "id": message_id, "text": text}), flush=True)


def ask(*_args: object) -> None:
    QTimer.singleShot(0, lambda: w.session.send(PROMPT))


w.session.reply_delta.connect(on_delta)
w.session.model_loaded.connect(ask)
w.session.reply_finished.connect(ask)
app.exec()
