"""Dropping files on a widget as a file manager would: a drag enter, then (if the widget
accepts it) the drop, at the widget's centre."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget


def drag_files(target: QWidget, *paths: Path) -> tuple[QDragEnterEvent, QDropEvent]:
    """The enter and drop events sent (the drop only if the enter was accepted)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    center = target.rect().center()
    args = (
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(center), *args)
    QApplication.sendEvent(target, enter)
    drop = QDropEvent(QPointF(center), *args)
    if enter.isAccepted():
        QApplication.sendEvent(target, drop)
    return enter, drop
