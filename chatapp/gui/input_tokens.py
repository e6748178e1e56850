"""The input box's tokens: a live count as you type ("23 tokens"), and a Tokens switch that
shows the text cut into the loaded model's tokens above the input, updated as you type.

Tokenized by the loaded model's own vocabulary (message_tokens.LoadedTokenizer), on the
GUI thread: a few thousand characters take well under a millisecond, and it never waits
behind a streaming answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QTextBrowser,
    QToolButton,
    QWidget,
)

from chatapp.core import tokenview as tv
from chatapp.gui.tokenizer_playground import palette_colors

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

DEBOUNCE_MS = 120


class InputTokens(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.input = window.input
        self.tokenizer = window.tokens().tokenizer
        self.count = 0  # tokens in the input now (-1: unknown)

        self.preview = QTextBrowser()
        self.preview.setAccessibleName(self.tr("The message's tokens"))
        self.preview.setAccessibleDescription(
            self.tr("The text in the input box, cut into the loaded model's tokens")
        )
        self.preview.setMaximumHeight(84)
        self.preview.setOpenLinks(False)
        self.preview.hide()
        self.bar = QWidget()
        bl = QHBoxLayout(self.bar)
        bl.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel()
        self.label.setAccessibleName(self.tr("Token count of the message"))
        self.toggle = QToolButton()
        self.toggle.setText(self.tr("Tokens"))
        self.toggle.setCheckable(True)
        self.toggle.setToolTip(self.tr("Show the message as the model's tokens while you type"))
        self.toggle.setAccessibleName(self.tr("Show the message's tokens"))
        self.toggle.toggled.connect(self._toggled)
        self.explain = QToolButton()
        self.explain.setText("?")
        self.explain.setToolTip(self.tr("What are tokens?"))
        self.explain.setAccessibleName(self.tr("What are tokens?"))
        self.explain.clicked.connect(lambda: window.message_view.explain("tokens"))
        bl.addWidget(self.label, 1)
        bl.addWidget(self.toggle)
        bl.addWidget(self.explain)
        lay = window.chat_layout
        lay.insertWidget(lay.count() - 1, self.preview)  # above the input row
        lay.addWidget(self.bar)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        self.input.textChanged.connect(self._timer.start)
        self.tokenizer.ready.connect(self.refresh)
        self.refresh()

    def _toggled(self, on: bool) -> None:
        self.preview.setVisible(on)
        self.refresh()

    def refresh(self) -> None:
        self._timer.stop()
        text = self.input.toPlainText()
        spans = self.tokenizer.spans(text) if text else []
        if spans is None:
            self.count = -1
            self.label.setText(self.tokenizer.unavailable if text else "")
            self.preview.setHtml(f"<i>{self.tokenizer.unavailable}</i>")
            return
        self.count = len(spans)
        if not text:
            self.label.setText("")
        elif self.count == 1:
            self.label.setText(self.tr("1 token"))
        else:
            self.label.setText(self.tr("{n} tokens").format(n=self.count))
        if self.toggle.isChecked():
            self.preview.setHtml(tv.token_view_html(spans, palette_colors(self.preview)))


def install(window: MainWindow) -> InputTokens:
    controller = InputTokens(window)
    window.input_tokens = controller
    return controller
