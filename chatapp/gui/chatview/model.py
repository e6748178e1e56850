"""The shown thread as a list model: one row per message of the active branch.

Rows hold the message and what changes while it streams (text, thinking), plus view
state that is not data (the thinking section opened, versions "2/3"). The delegate keeps
its layout caches keyed by `Row.rev`, which every change bumps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.gui.i18n import QT_TRANSLATE_NOOP, TranslatedTexts

_ROLE_NAMES = TranslatedTexts(
    "MessageListModel",
    {
        Role.USER: QT_TRANSLATE_NOOP("MessageListModel", "You"),
        Role.ASSISTANT: QT_TRANSLATE_NOOP("MessageListModel", "Assistant"),
        Role.SYSTEM: QT_TRANSLATE_NOOP("MessageListModel", "System"),
        Role.TOOL: QT_TRANSLATE_NOOP("MessageListModel", "Tool"),
    },
)

Index = QModelIndex | QPersistentModelIndex

_revisions = itertools.count(1)  # unique across rows: a layout cache key never repeats


class MessageRole(IntEnum):
    MESSAGE = Qt.ItemDataRole.UserRole + 1
    ID = Qt.ItemDataRole.UserRole + 2
    TEXT = Qt.ItemDataRole.UserRole + 3
    VERSIONS = Qt.ItemDataRole.UserRole + 4


@dataclass(eq=False)
class Row:
    """One shown message. `text`/`thinking` run ahead of `message` while it streams."""

    message: Message
    text: str
    thinking: str
    versions: tuple[int, int] = (1, 1)
    thinking_open: bool = False
    unseen: bool = False  # left out of the latest prompt to fit the context window
    # how the body is shown: "text", or one of the token views (see chatview.tokens)
    display: str = "text"
    spans: list[Any] | None = None  # core.tokenview.TokenSpan, once known
    spans_note: str = ""  # why there are no spans (shown instead of them)
    spans_wanted: bool = False  # asked for, not yet delivered
    sampling: dict[str, Any] = field(default_factory=dict)  # what shaped the probabilities
    cards_closed: set[int] = field(default_factory=set)  # tool cards folded (chatview.toolcards)
    rev: int = field(default_factory=lambda: next(_revisions))
    # delegate caches: (width, theme, rev) -> height
    height: tuple[int, int, int, int] = field(default=(-1, -1, -1, 0))
    estimate: tuple[int, int, int] = field(default=(-1, -1, 0))

    @property
    def message_id(self) -> str:
        return self.message.id

    @property
    def role(self) -> Role:
        return self.message.role

    @property
    def streaming(self) -> bool:
        return self.message.finish_reason is FinishReason.STREAMING

    def accessible_text(self) -> str:
        name = _ROLE_NAMES.get(self.role, self.role.value)
        return f"{name}: {self.text}"

    def touch(self) -> None:
        self.rev = next(_revisions)


def role_name(role: Role) -> str:
    return _ROLE_NAMES.get(role, role.value)


class MessageListModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self.default_display = "text"  # the display new rows start with
        self.rows: list[Row] = []
        self._by_id: dict[str, int] = {}

    # -- Qt ------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return row.accessible_text()
        if role == Qt.ItemDataRole.ToolTipRole:
            return None
        if role == MessageRole.MESSAGE:
            return row.message
        if role == MessageRole.ID:
            return row.message_id
        if role == MessageRole.TEXT:
            return row.text
        if role == MessageRole.VERSIONS:
            return row.versions
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # -- ours ----------------------------------------------------------------------

    def row_of(self, message_id: str) -> int:
        return self._by_id.get(message_id, -1)

    def row_for(self, message_id: str) -> Row | None:
        i = self._by_id.get(message_id, -1)
        return self.rows[i] if i >= 0 else None

    def _reindex(self, start: int = 0) -> None:
        if start == 0:
            self._by_id = {}
        for i in range(start, len(self.rows)):
            self._by_id[self.rows[i].message_id] = i

    @staticmethod
    def make_row(msg: Message, versions: tuple[int, int] = (1, 1)) -> Row:
        return Row(msg, msg.content, msg.thinking, versions)

    def _new_row(self, msg: Message) -> Row:
        row = self.make_row(msg)
        row.display = self.default_display
        return row

    def reset(self, messages: list[Message]) -> None:
        self.beginResetModel()
        self.rows = [self._new_row(m) for m in messages]
        self._reindex()
        self.mark_unseen(messages)
        self.endResetModel()

    def mark_unseen(self, messages: list[Message]) -> list[int]:
        """Mark the messages the latest answer's prompt left out (the context policy
        dropped them; never silently); returns the rows that changed."""
        dropped: set[str] = set()
        for m in reversed(messages):
            ids = m.meta.get("context_dropped")
            if m.role is Role.ASSISTANT and isinstance(ids, list):
                dropped = {str(i) for i in ids}
                break
        changed = []
        for i, row in enumerate(self.rows):
            unseen = row.message_id in dropped
            if unseen != row.unseen:
                row.unseen = unseen
                row.rev = next(_revisions)
                changed.append(i)
        return changed

    def truncate(self, n: int) -> None:
        if n < len(self.rows):
            self.beginRemoveRows(QModelIndex(), n, len(self.rows) - 1)
            for r in self.rows[n:]:
                self._by_id.pop(r.message_id, None)
            del self.rows[n:]
            self.endRemoveRows()

    def extend(self, messages: list[Message]) -> None:
        if not messages:
            return
        start = len(self.rows)
        self.beginInsertRows(QModelIndex(), start, start + len(messages) - 1)
        self.rows.extend(self._new_row(m) for m in messages)
        self._reindex(start)
        self.endInsertRows()

    def changed(self, i: int) -> None:
        self.rows[i].touch()
        idx = self.index(i)
        self.dataChanged.emit(idx, idx)

    def set_message(self, i: int, msg: Message) -> None:
        row = self.rows[i]
        if msg.content != row.message.content or msg.finish_reason != row.message.finish_reason:
            # the tokens shown came from the old text, or from the stream: read them again
            row.spans, row.spans_note, row.spans_wanted = None, "", False
        row.message, row.text, row.thinking = msg, msg.content, msg.thinking
        self.changed(i)

    def set_text(self, i: int, text: str, thinking: str) -> None:
        row = self.rows[i]
        row.text, row.thinking = text, thinking
        self.changed(i)
