"""Small widgets over and beside the message list: the undo bar and the select-text dialog."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class UndoBar(QFrame):
    """ "Deleted 3 messages [Undo] [x]" over the bottom of the view."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAutoFillBackground(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.button = QPushButton(self.tr("Undo"))
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip(self.tr("Dismiss"))
        close.clicked.connect(self.dismiss)
        self.button.clicked.connect(self._undo)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        lay.addWidget(close)
        self._callback: Callable[[], None] | None = None
        self.hide()

    def offer(self, text: str, callback: Callable[[], None]) -> None:
        self.label.setText(text)
        self._callback = callback
        self.show()
        self.raise_()

    def dismiss(self) -> None:
        self._callback = None
        self.hide()

    def _undo(self) -> None:
        cb, self._callback = self._callback, None
        self.hide()
        if cb is not None:
            cb()


class SelectTextDialog(QDialog):
    """A message as rich text in a browser, to copy any part (all of it selected when
    the user asked to select text; nothing selected for a receipt, which is read)."""

    def __init__(
        self,
        html: str,
        link_colour: str,
        parent: QWidget | None = None,
        *,
        select_all: bool = True,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Select text"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.browser = QTextBrowser(self)
        self.browser.setOpenExternalLinks(True)
        self.browser.document().setDefaultStyleSheet(f"a {{ color: {link_colour}; }}")
        self.browser.setHtml(html)
        if select_all:
            self.browser.selectAll()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(self.browser)
        box.addWidget(buttons)
