"""The conversation list: a thin Qt model over the store, pinned first, then most recent
first, grouped by date (Pinned, Today, Yesterday, This week, Older), optionally only
the conversations with one tag; and the delegate that draws a row as the title over a
small line with its time, tags and model, under its group's heading.

Rows are fetched a page at a time (canFetchMore/fetchMore), so start-up with thousands
of conversations reads only the first page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
)
from PySide6.QtGui import QFont, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from chatapp.core.conversation import Conversation
from chatapp.core.store import Store
from chatapp.gui.i18n import QT_TRANSLATE_NOOP

PAGE = 100
Index = QModelIndex | QPersistentModelIndex

# group keys, shown as headings translated (the delegate's self.tr)
PINNED = QT_TRANSLATE_NOOP("ConversationDelegate", "Pinned")
TODAY = QT_TRANSLATE_NOOP("ConversationDelegate", "Today")
YESTERDAY = QT_TRANSLATE_NOOP("ConversationDelegate", "Yesterday")
THIS_WEEK = QT_TRANSLATE_NOOP("ConversationDelegate", "This week")
OLDER = QT_TRANSLATE_NOOP("ConversationDelegate", "Older")


class ConversationRole(IntEnum):
    ID = Qt.ItemDataRole.UserRole + 1
    UPDATED_AT = Qt.ItemDataRole.UserRole + 2
    MODEL_PATH = Qt.ItemDataRole.UserRole + 3
    PINNED = Qt.ItemDataRole.UserRole + 4
    TAGS = Qt.ItemDataRole.UserRole + 5
    GROUP = Qt.ItemDataRole.UserRole + 6  # Pinned, Today, Yesterday, This week, Older
    GROUP_START = Qt.ItemDataRole.UserRole + 7  # the first row of its group: draw a heading
    DETAIL = Qt.ItemDataRole.UserRole + 8  # the small second line: time · tags · model


def date_group(updated_at: float, now: float) -> str:
    """Today and Yesterday by the local calendar; This week: the 7 days before today."""
    today = datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0)
    when = datetime.fromtimestamp(updated_at)
    if when >= today:
        return TODAY
    if when >= today - timedelta(days=1):
        return YESTERDAY
    if when >= today - timedelta(days=7):
        return THIS_WEEK
    return OLDER


def _short_time(updated_at: float, group: str) -> str:
    when = datetime.fromtimestamp(updated_at)
    if group in (TODAY, YESTERDAY):
        return when.strftime("%H:%M")
    if group == THIS_WEEK:
        return when.strftime("%a %H:%M")
    return when.strftime("%Y-%m-%d")


def _nonempty(tags: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: v for k, v in tags.items() if v}


class ConversationListModel(QAbstractListModel):
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self._store = store
        self._clock = clock
        self._tag: str | None = None
        self._rows: list[Conversation] = []
        self._pinned: set[str] = set()
        self._tags: dict[str, list[str]] = {}
        self._groups: list[str] = []
        self._now = clock()
        self._total = store.count_conversations()
        self.fetchMore()  # the first page, so the list is filled when the window appears

    # Qt overrides -----------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = index.row()
        conv = self._rows[row]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conv.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(conv)
        if role == ConversationRole.ID:
            return conv.id
        if role == ConversationRole.UPDATED_AT:
            return conv.updated_at
        if role == ConversationRole.MODEL_PATH:
            return conv.model_path
        if role == ConversationRole.PINNED:
            return conv.id in self._pinned
        if role == ConversationRole.TAGS:
            return list(self._tags.get(conv.id, []))
        if role == ConversationRole.GROUP:
            return self._groups[row]
        if role == ConversationRole.GROUP_START:
            return row == 0 or self._groups[row - 1] != self._groups[row]
        if role == ConversationRole.DETAIL:
            return self._detail(conv, self._groups[row])
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid():
            return
        more = self._store.list_conversations(limit=PAGE, offset=len(self._rows), tag=self._tag)
        if not more:
            self._total = len(self._rows)
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(more) - 1)
        self._add(more)
        self.endInsertRows()

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names[ConversationRole.ID] = QByteArray(b"conversationId")
        names[ConversationRole.UPDATED_AT] = QByteArray(b"updatedAt")
        names[ConversationRole.MODEL_PATH] = QByteArray(b"modelPath")
        names[ConversationRole.PINNED] = QByteArray(b"pinned")
        names[ConversationRole.TAGS] = QByteArray(b"tags")
        names[ConversationRole.GROUP] = QByteArray(b"group")
        names[ConversationRole.GROUP_START] = QByteArray(b"groupStart")
        names[ConversationRole.DETAIL] = QByteArray(b"detail")
        return names

    # helpers ------------------------------------------------------------------------

    def _add(self, convs: list[Conversation]) -> None:
        if not self._rows:
            self._pinned = self._store.pinned_ids()
        self._tags.update(self._store.tags_of([c.id for c in convs]))
        self._rows.extend(convs)
        self._groups.extend(
            PINNED if c.id in self._pinned else date_group(c.updated_at, self._now) for c in convs
        )

    def _detail(self, conv: Conversation, group: str) -> str:
        # the model's file name last: it is the long part, cut short when space runs out
        parts = [_short_time(conv.updated_at, group)]
        parts += [f"#{t}" for t in self._tags.get(conv.id, [])]
        if conv.model_path:
            parts.append(Path(conv.model_path).name)
        return " · ".join(parts)

    def _tooltip(self, conv: Conversation) -> str:
        lines = [conv.title]
        if conv.model_path:
            lines.append(self.tr("Model: {name}").format(name=Path(conv.model_path).name))
        when = datetime.fromtimestamp(conv.updated_at).strftime("%Y-%m-%d %H:%M")
        lines.append(self.tr("Last message: {time}").format(time=when))
        tags = self._tags.get(conv.id)
        if tags:
            lines.append(self.tr("Tags: {tags}").format(tags=", ".join(tags)))
        return "\n".join(lines)

    @property
    def tag(self) -> str | None:
        return self._tag

    def set_tag(self, tag: str | None) -> None:
        """Show only the conversations tagged `tag` (None: all of them)."""
        self._tag = tag or None
        self.reload()

    def reload(self) -> None:
        """Re-read from the store, keeping as many rows loaded as before."""
        loaded = max(len(self._rows), PAGE)
        self.beginResetModel()
        self._now = self._clock()
        self._total = self._store.count_conversations(tag=self._tag)
        self._rows, self._groups, self._tags = [], [], {}
        self._add(self._store.list_conversations(limit=loaded, tag=self._tag))
        self.endResetModel()

    def _signature(self, convs: list[Conversation]) -> list[tuple[str, str, float, str | None]]:
        return [(c.id, c.title, c.updated_at, c.model_path) for c in convs]

    def reload_if_changed(self) -> bool:
        """Reload if the store holds other rows than those shown (another process added,
        renamed or deleted a chat); True if it did."""
        loaded = max(len(self._rows), PAGE)
        now = self._store.list_conversations(limit=loaded, tag=self._tag)
        same = (
            self._signature(now) == self._signature(self._rows)
            and self._store.count_conversations(tag=self._tag) == self._total
            and self._store.pinned_ids() == self._pinned
            and _nonempty(self._store.tags_of([c.id for c in now])) == _nonempty(self._tags)
        )
        if not same:
            self.reload()
        return not same

    def row_of(self, conversation_id: str) -> int:
        for i, c in enumerate(self._rows):
            if c.id == conversation_id:
                return i
        return -1

    def conversation_at(self, row: int) -> Conversation | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None


class ConversationDelegate(QStyledItemDelegate):
    """Draws a row as its title over a smaller line (time · tags · model), and the group's
    heading above the first row of each group. Colours come from the palette."""

    PAD = 6

    def _fonts(self, option: QStyleOptionViewItem) -> tuple[QFont, QFont, QFont]:
        title = QFont(option.font)
        small = QFont(title)
        small.setPointSizeF(max(6.0, title.pointSizeF() * 0.85))
        heading = QFont(small)
        heading.setBold(True)
        return title, small, heading

    def _heading_height(self, option: QStyleOptionViewItem, index: Index) -> int:
        if not index.data(ConversationRole.GROUP_START):
            return 0
        return QFontMetrics(self._fonts(option)[2]).height() + 2 * self.PAD

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        title, small, _ = self._fonts(option)
        h = QFontMetrics(title).height() + QFontMetrics(small).height() + 2 * self.PAD + 5
        return QSize(100, h + self._heading_height(option, index))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        title_font, small_font, heading_font = self._fonts(opt)
        rect = QRect(opt.rect)
        pal: QPalette = opt.palette
        painter.save()
        head = self._heading_height(opt, index)
        if head:
            painter.setFont(heading_font)
            painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(
                rect.adjusted(self.PAD, self.PAD, -self.PAD, 0),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                self.tr(str(index.data(ConversationRole.GROUP))),
            )
            rect.setTop(rect.top() + head)
        # the item's own background (selection, hover) below the heading only
        opt.rect = rect
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        text_role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        inner = rect.adjusted(self.PAD + 2, self.PAD, -self.PAD, -self.PAD)
        fm_title = QFontMetrics(title_font)
        painter.setFont(title_font)
        painter.setPen(pal.color(text_role))
        title = fm_title.elidedText(str(index.data()), Qt.TextElideMode.ElideRight, inner.width())
        painter.drawText(inner, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
        detail = str(index.data(ConversationRole.DETAIL) or "")
        if detail:
            small = QFontMetrics(small_font)
            painter.setFont(small_font)
            if not selected:
                painter.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
            line = inner.adjusted(0, fm_title.height() + 2, 0, 0)
            painter.drawText(
                line,
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                small.elidedText(detail, Qt.TextElideMode.ElideRight, line.width()),
            )
        painter.restore()


def setup_view(view: QListView) -> ConversationDelegate:
    """Give a list view the two-line rows with group headings (rows differ in height)."""
    delegate = ConversationDelegate(view)
    view.setItemDelegate(delegate)
    view.setUniformItemSizes(False)
    return delegate
