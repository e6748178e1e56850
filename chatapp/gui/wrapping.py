"""Widgets whose text fits a narrow space without being cut: a push button whose label
wraps onto more lines, and a one-line label that elides (the full text in its tooltip)
so a long model name never widens the window."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QWidget


def shortened(text: str, chars: int = 40) -> str:
    """Text cut to `chars` characters with "…" (for names inside menu items and labels)."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


class WrapButton(QPushButton):
    """A QPushButton whose text wraps (a QPushButton's own text never does: it sets the
    button's minimum width to the whole text, which a narrow panel cannot give)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel(text, self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        em = self.fontMetrics().height()
        self._lay = lay = QHBoxLayout(self)
        lay.setContentsMargins(em // 2, em // 4, em // 2, em // 4)
        lay.addWidget(self.label)
        policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)
        if not self.accessibleName():
            self.setAccessibleName(text)

    def set_label(self, text: str) -> None:
        self.label.setText(text)
        self.updateGeometry()

    def label_text(self) -> str:
        return self.label.text()

    def sizeHint(self) -> QSize:
        hint = self._lay.sizeHint()
        return QSize(hint.width(), max(hint.height(), super().sizeHint().height()))

    def minimumSizeHint(self) -> QSize:
        return self._lay.minimumSize()

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return max(self._lay.totalHeightForWidth(width), super().sizeHint().height())


class ElidedLabel(QLabel):
    """One line of text cut with "…" to the width it gets; the whole text is its tooltip
    and accessible name. Its minimum width is small, so it never widens the window."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setMinimumWidth(self.fontMetrics().height() * 3)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(self.fontMetrics().height() * 3, super().minimumSizeHint().height())

    def paintEvent(self, _event: QPaintEvent) -> None:
        p = QPainter(self)
        r = self.contentsRect()
        shown = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, r.width())
        self.style().drawItemText(
            p,
            r,
            int(self.alignment()),
            self.palette(),
            self.isEnabled(),
            shown,
            self.foregroundRole(),
        )
