"""Drop a .gguf file anywhere on the main window to open it.

An event filter on the window and on the children that take drops themselves (the
message box would otherwise insert the file's path as text). Other drops pass through.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMimeData, QObject
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QAbstractScrollArea, QWidget

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

_DRAG = (QEvent.Type.DragEnter, QEvent.Type.DragMove)


def gguf_path(mime: QMimeData | None) -> str | None:
    """The first local .gguf file in a drag, if any."""
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and url.toLocalFile().lower().endswith(".gguf"):
            return url.toLocalFile()
    return None


class ModelDrop(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        window.setAcceptDrops(True)
        self.watched: list[QWidget] = [window]
        for child in window.findChildren(QWidget):
            if child.acceptDrops():
                self.watched.append(child)
                if isinstance(child, QAbstractScrollArea):
                    self.watched.append(child.viewport())
        for w in self.watched:
            w.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in _DRAG and isinstance(event, (QDragEnterEvent, QDragMoveEvent)):
            if gguf_path(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            path = gguf_path(event.mimeData())
            if path:
                event.acceptProposedAction()
                log.info("model dropped on the window: %s", path)
                self.window.open_model(path)
                return True
        return False


def install(window: MainWindow) -> ModelDrop:
    drop = ModelDrop(window)
    window.model_drop = drop
    return drop
