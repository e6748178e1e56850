"""The item delegate: sizes and paints message rows from cached RowLayouts.

Exact layouts (Markdown to HTML, a QTextDocument wrapped to the width) are built only
for rows the view asks about near its visible area and kept in a small LRU cache; every
other row answers sizeHint with an estimate, so opening a long conversation costs the
rows on screen, not the whole conversation.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from chatapp.gui.chatview import layout as L
from chatapp.gui.chatview.model import MessageListModel, Row
from chatapp.gui.chatview.theme import Theme, theme_from

if TYPE_CHECKING:
    from chatapp.gui.chatview.view import MessageView

CACHE_SIZE = 96  # laid-out rows kept (a few screens' worth)

Index = QModelIndex | QPersistentModelIndex


class MessageDelegate(QStyledItemDelegate):
    def __init__(self, view: MessageView) -> None:
        super().__init__(view)
        self._view = view
        self._cache: OrderedDict[str, L.RowLayout] = OrderedDict()
        self.theme: Theme = theme_from(view.palette())
        self._theme_hash = hash(self.theme.key)
        self.metrics = L.Metrics.of(view.font())
        self.model: MessageListModel = view.message_model
        self._width = 120
        self.built = 0  # layouts built (tests check that a long chat builds few)

    # -- style changes ---------------------------------------------------------------

    def restyle(self) -> None:
        self.theme = theme_from(self._view.palette())
        self._theme_hash = hash(self.theme.key)
        self.metrics = L.Metrics.of(self._view.font())
        self._cache.clear()

    def sync_width(self) -> None:
        """Read the viewport's width (before a layout): sizeHint runs once per row per
        layout, so it uses this cached value."""
        self._width = max(120, self._view.viewport().width())

    def width(self) -> int:
        return self._width

    def _key(self, row: Row, width: int) -> tuple[int, int, int]:
        return (width, self._theme_hash, row.rev)

    # -- layouts -------------------------------------------------------------------------

    def cached(self, row: Row) -> L.RowLayout | None:
        lay = self._cache.get(row.message_id)
        if lay is not None and lay.key == self._key(row, self.width()):
            return lay
        return None

    def layout_for(self, row: Row) -> L.RowLayout:
        width = self.width()
        lay = self._cache.get(row.message_id)
        if lay is not None and lay.key == self._key(row, width):
            self._cache.move_to_end(row.message_id)
            row.height = (width, self._theme_hash, row.rev, lay.height)
            return lay
        is_last = bool(self.model.rows) and self.model.rows[-1] is row
        lay = L.build(row, width, self.theme, self.metrics, is_last)
        self.built += 1
        if row.display != "text" and row.spans is None and not row.spans_note:
            self._view.want_spans(row)  # the controller delivers them (set_spans)
        self._cache[row.message_id] = lay
        self._cache.move_to_end(row.message_id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        row.height = (width, self._theme_hash, row.rev, lay.height)
        return lay

    def height(self, row: Row) -> int:
        width = self._width
        w, t, rev, h = row.height
        if w == width and rev == row.rev and t == self._theme_hash:
            return h
        ew, erev, eh = row.estimate
        if ew != width or erev != row.rev:
            eh = L.estimate_height(row, width, self.metrics)
            row.estimate = (width, row.rev, eh)
        return eh

    def measured(self, row: Row) -> bool:
        w, t, rev, _h = row.height
        return w == self._width and rev == row.rev and t == self._theme_hash

    def ensure_measured(self, row: Row) -> bool:
        """Lay the row out if it has not been at this width; True if its height changed
        from what the view was told."""
        if self.measured(row):
            return False
        before = self.height(row)
        return self.layout_for(row).height != before

    def forget(self, message_id: str) -> None:
        self._cache.pop(message_id, None)

    # -- Qt ------------------------------------------------------------------------------

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        try:
            return QSize(self._width, self.height(self.model.rows[index.row()]))
        except IndexError:
            return QSize(0, 0)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rows = self.model.rows
        if not 0 <= index.row() < len(rows):
            return
        row = rows[index.row()]
        lay = self.layout_for(row)
        rect = option.rect
        if lay.height != rect.height():
            self.sizeHintChanged.emit(index)  # laid out late: the view lays out again
        state = option.state
        focused = bool(state & QStyle.StateFlag.State_HasFocus) and self._view.hasFocus()
        painter.save()
        painter.setClipRect(rect)
        painter.translate(rect.topLeft())
        L.paint(
            painter,
            lay,
            row,
            self.theme,
            self.metrics,
            focused=focused,
            copied=self._view.copied_target(row.message_id),
            selection=self._view.selection_of(row.message_id),
        )
        painter.restore()
