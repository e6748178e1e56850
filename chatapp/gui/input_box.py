"""The message input: Enter sends, Shift+Enter starts a new line."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget


class InputBox(QPlainTextEdit):
    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(
            self.tr("Message the model (Enter to send, Shift+Enter for a new line)")
        )
        self.setTabChangesFocus(True)
        self.setFixedHeight(84)

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
                return
            if not e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
                self.submitted.emit(self.toPlainText())
                return
        super().keyPressEvent(e)
