"""Qt adapters for the model manager: a thin table model over a Python list, a progress-bar
delegate, a bridge from the download thread, and a small background runner.

Widgets hold no data: each table shows a list owned by the core (search results, file groups,
library entries, download jobs) through column functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRunnable,
    Qt,
    QThreadPool,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionProgressBar

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemRole = Qt.ItemDataRole.UserRole + 1
ProgressRole = Qt.ItemDataRole.UserRole + 2  # int 0..100, or -1 for no bar

_Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column(Generic[T]):
    title: str
    text: Callable[[T], str]
    progress: Callable[[T], int] | None = None
    align_right: bool = False


class ListTableModel(QAbstractTableModel, Generic[T]):
    """Rows are the items of a list; columns are functions of an item."""

    def __init__(self, columns: Sequence[Column[T]], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.items: list[T] = []

    def set_items(self, items: Sequence[T]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def item(self, row: int) -> T | None:
        return self.items[row] if 0 <= row < len(self.items) else None

    def refresh_item(self, item: T) -> None:
        """The item changed in place (a download's progress): repaint its row."""
        for row, it in enumerate(self.items):
            if it is item:
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.columns) - 1))
                return

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.items)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.items):
            return None
        item = self.items[index.row()]
        col = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.text(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            return col.text(item) or None
        if role == ItemRole:
            return item
        if role == ProgressRole and col.progress is not None:
            return col.progress(item)
        if role == Qt.ItemDataRole.TextAlignmentRole and col.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role != Qt.ItemDataRole.DisplayRole or orientation != Qt.Orientation.Horizontal:
            return None
        return self.columns[section].title if 0 <= section < len(self.columns) else None


class ProgressDelegate(QStyledItemDelegate):
    """Draws a progress bar for cells whose column has a progress function."""

    def paint(self, painter: Any, option: Any, index: _Index) -> None:
        value = index.data(ProgressRole)
        if value is None or value < 0:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum, bar.progress = 0, 100, int(value)
        bar.text = index.data(Qt.ItemDataRole.DisplayRole) or f"{value}%"
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        QApplication.style().drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class JobBridge(QObject):
    """Lives on the GUI thread; `changed` emitted from the download thread arrives queued."""

    changed = Signal(object)


class _Signals(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], signals: _Signals) -> None:
        super().__init__()
        self.fn = fn
        self.signals = signals

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as e:  # delivered to on_error on the GUI thread  # noqa: BLE001
            self.signals.failed.emit(e)
        else:
            self.signals.done.emit(result)


_alive: set[_Signals] = set()


def run_in_thread(
    fn: Callable[[], Any], on_done: Callable[[Any], None], on_error: Callable[[Exception], None]
) -> None:
    """window.run_in_background's contract, for dialogs used without the main window."""
    signals = _Signals()  # created on the GUI thread, so its slots run there
    _alive.add(signals)

    def finish(cb: Callable[[Any], None], value: Any) -> None:
        # Let go of the signals object only after this delivery has returned.
        QTimer.singleShot(0, lambda: _alive.discard(signals))
        cb(value)

    signals.done.connect(lambda r: finish(on_done, r))
    signals.failed.connect(lambda e: finish(on_error, e))
    QThreadPool.globalInstance().start(_Task(fn, signals))
