"""The chat settings panel's Documents section: which knowledge collections this chat
asks (a checkable list), saved with the conversation (meta["documents"]["collections"]).

A new chat has no conversation yet: its choice is kept here and saved when its first
message creates the conversation. The panel's own file is untouched: the section puts
itself into the panel's layout, before the line that says what the next answer uses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from chatapp.core.docindex import DocIndex
from chatapp.core.errors import UserError
from chatapp.gui.wrapping import WrapButton

if TYPE_CHECKING:
    from chatapp.gui.documents_actions import DocumentsActions

log = logging.getLogger(__name__)

META_KEY = "documents"


def chosen_in(meta: dict[str, Any] | None) -> list[str]:
    raw = (meta or {}).get(META_KEY)
    names = raw.get("collections") if isinstance(raw, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


class CollectionsSection(QWidget):
    def __init__(self, docs: DocumentsActions) -> None:
        super().__init__()
        self.docs = docs
        self.setObjectName("documents_section")
        self.conversation_id: str | None = None
        # a new chat's choice, carried to the conversation its first message makes
        self.carry: list[str] | None = None
        self._chosen: list[str] = []
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        title = QLabel(self.tr("<b>Documents</b>"))
        self.note = QLabel(self.tr("Collections this chat answers from:"))
        self.note.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("chat_collections")
        self.list.setAccessibleName(self.tr("Collections this chat answers from"))
        self.list.itemChanged.connect(self._item_changed)
        self.empty = QLabel(self.tr("No collections yet."))
        self.empty.setWordWrap(True)
        self.empty.setEnabled(False)
        self.manage = WrapButton(self.tr("Manage collections…"))
        self.manage.clicked.connect(lambda: docs.show_collections())
        for w in (title, self.note, self.list, self.empty, self.manage):
            lay.addWidget(w)
        docs.collections_changed.connect(self.reload)
        s = docs.window.session
        s.conversation_selected.connect(self._on_conversation)
        self._on_conversation(s.conversation_id or "")

    # -- what the chat uses ------------------------------------------------------------

    def chosen(self) -> list[str]:
        return list(self._chosen)

    def set_chosen(self, names: list[str]) -> None:
        """Choose these collections for this chat (saved with it)."""
        self._chosen = list(dict.fromkeys(names))
        self._save()
        self.reload()

    def sending(self) -> list[str]:
        """The collections of the message being sent (a new chat's choice is carried to
        the conversation the message makes)."""
        if self.conversation_id is None:
            self.carry = list(self._chosen)
        return self.chosen()

    def _on_conversation(self, conversation_id: str) -> None:
        new = conversation_id or None
        carry, self.carry = self.carry, None
        if new is not None and self.conversation_id is None and carry:
            self.conversation_id = new
            self._chosen = carry
            self._save()
            self.reload()
            return
        self.conversation_id = new
        conv = self.docs.window.store.get_conversation(new) if new else None
        self._chosen = chosen_in(conv.meta) if conv is not None else []
        self.reload()

    def reload(self) -> None:
        try:
            with DocIndex(self.docs.index_file) as index:
                names = [c.name for c in index.collections()]
        except UserError as e:
            log.warning("documents index: %s", e)
            names = []
        self.list.blockSignals(True)
        self.list.clear()
        for name in [*names, *[n for n in self._chosen if n not in names]]:
            item = QListWidgetItem(
                name if name in names else self.tr("{name} (gone)").format(name=name)
            )
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(
                Qt.CheckState.Checked if name in self._chosen else Qt.CheckState.Unchecked
            )
            self.list.addItem(item)
        self.list.blockSignals(False)
        rows = self.list.count()
        self.list.setVisible(rows > 0)
        self.empty.setVisible(rows == 0)
        row_h = self.list.sizeHintForRow(0) if rows else 0
        self.list.setFixedHeight(min(rows, 6) * row_h + 2 * self.list.frameWidth() + 2)

    def _item_changed(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        on = item.checkState() == Qt.CheckState.Checked
        chosen = [n for n in self._chosen if n != name] + ([name] if on else [])
        self._chosen = chosen
        self._save()

    def _save(self) -> None:
        if self.conversation_id is None:
            return  # a new chat: kept here until its first message
        cid, chosen = self.conversation_id, list(self._chosen)

        def job(store: Any) -> None:
            conv = store.get_conversation(cid)
            if conv is None:
                return
            meta = {
                **conv.meta,
                META_KEY: {**(conv.meta.get(META_KEY) or {}), "collections": chosen},
            }
            store.update_conversation(cid, meta=meta, updated_at=conv.updated_at)

        session = self.docs.window.session
        session.when_saved(session.service.read(job))


def install_into_panel(section: CollectionsSection, panel: Any) -> bool:
    """Put the section into the chat settings panel's layout, before its last line (what
    the next answer uses) and the closing stretch; False if there is no panel."""
    body = panel.scroll.widget() if panel is not None else None
    lay = body.layout() if body is not None else None
    if lay is None:
        return False
    at = lay.indexOf(panel.next_answer) if hasattr(panel, "next_answer") else -1
    lay.insertWidget(at if at >= 0 else max(0, lay.count() - 1), section)
    return True
