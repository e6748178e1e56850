"""Child process for test_kill9: the real window streams a long answer and reports
each update on stdout, until the parent kills it with SIGKILL."""

import json
import sys
import time

from PySide6.QtWidgets import QApplication

from chatapp.app import build_window

app = QApplication([])
w = build_window(model=sys.argv[1])


def on_delta(_mid: str, text: str) -> None:
    print(json.dumps({"t": time.monotonic(), "text": text}), flush=True)


def on_loaded(_loaded: object) -> None:
    w.session.send("Count from 1 to 2000, one number per line, nothing else.")


w.session.reply_delta.connect(on_delta)
w.session.model_loaded.connect(on_loaded)
app.exec()
