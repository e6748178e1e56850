"""The conversation list: a thin Qt model over the store, most recent first.

Rows are fetched a page at a time (canFetchMore/fetchMore), so start-up with thousands
of conversations reads only the first page.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from chatapp.core.conversation import Conversation
from chatapp.core.store import Store

PAGE = 100
Index = QModelIndex | QPersistentModelIndex


class ConversationRole(IntEnum):
    ID = Qt.ItemDataRole.UserRole + 1
    UPDATED_AT = Qt.ItemDataRole.UserRole + 2
    MODEL_PATH = Qt.ItemDataRole.UserRole + 3


class ConversationListModel(QAbstractListModel):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self._store = store
        self._rows: list[Conversation] = []
        self._total = store.count_conversations()
        self.fetchMore()  # the first page, so the list is filled when the window appears

    # Qt overrides -----------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        conv = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return conv.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return conv.title
        if role == ConversationRole.ID:
            return conv.id
        if role == ConversationRole.UPDATED_AT:
            return conv.updated_at
        if role == ConversationRole.MODEL_PATH:
            return conv.model_path
        return None

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid():
            return
        more = self._store.list_conversations(limit=PAGE, offset=len(self._rows))
        if not more:
            self._total = len(self._rows)
            return
        self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(more) - 1)
        self._rows.extend(more)
        self.endInsertRows()

    def roleNames(self) -> dict[int, bytes]:
        names = dict(super().roleNames())
        names[ConversationRole.ID] = b"conversationId"
        names[ConversationRole.UPDATED_AT] = b"updatedAt"
        names[ConversationRole.MODEL_PATH] = b"modelPath"
        return names

    # helpers ------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read from the store, keeping as many rows loaded as before."""
        loaded = max(len(self._rows), PAGE)
        self.beginResetModel()
        self._total = self._store.count_conversations()
        self._rows = self._store.list_conversations(limit=loaded)
        self.endResetModel()

    def row_of(self, conversation_id: str) -> int:
        for i, c in enumerate(self._rows):
            if c.id == conversation_id:
                return i
        return -1

    def conversation_at(self, row: int) -> Conversation | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None
