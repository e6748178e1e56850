"""Branches in the window: walk versions, edit, regenerate any answer, continue, delete.

The message view only asks (signals); this extension answers. Switching a version and
deleting (to the trash, with undo) are service commands (service.conversations, decided
by chatapp.core.tree); edit, regenerate and continue run a chat turn, which is the chat
session's job.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from chatapp.core.store.trash import TrashEntry
from chatapp.core.tree import Link, Tree

if TYPE_CHECKING:
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


def install(window: MainWindow) -> None:
    window.branch_actions = BranchActions(window)  # type: ignore[attr-defined]


class BranchActions(QObject):
    thread_shown = Signal()  # the open chat was shown again after an edit was saved

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        view = window.message_view
        session = window.session
        view.version_requested.connect(self.switch_version)
        view.delete_requested.connect(self.delete)
        view.edit_requested.connect(self.edit)
        view.regenerate_requested.connect(self.regenerate)
        view.continue_requested.connect(self.continue_answer)
        view.copied.connect(lambda _text: window.statusBar().showMessage(self.tr("Copied."), 2000))
        # after the window has shown the thread (it connected first), mark the versions
        session.conversation_selected.connect(lambda _cid: self.refresh_versions())
        session.reply_started.connect(lambda _cid, _mid: self.refresh_versions())
        session.reply_finished.connect(lambda _mid: self.refresh_versions())

    # -- helpers ----------------------------------------------------------------------

    def _busy(self) -> bool:
        if self.window.session.busy:
            self.window.show_error(self.window.session.still_streaming_text())
            return True
        return False

    def _links(self, conversation_id: str) -> Tree[Link]:
        return Tree(self.window.store.message_links(conversation_id))

    def refresh_versions(self) -> None:
        cid = self.window.session.conversation_id
        view = self.window.message_view
        if not cid:
            return
        shown = [r.message_id for r in view.widgets()]
        view.set_versions(self._links(cid).versions(shown))

    def _show(self, anchor: str | None) -> None:
        view = self.window.message_view
        view.show_thread(self.window.session.thread(), anchor=anchor)
        self.refresh_versions()
        self.thread_shown.emit()

    # -- edits (the service saves them) ---------------------------------------------------

    def switch_version(self, message_id: str, step: int) -> None:
        cid = self.window.session.conversation_id
        if not cid or self._busy():
            return
        session = self.window.session

        def done(leaf: str | None) -> None:
            if leaf is not None and session.conversation_id == cid:
                self._show(anchor=message_id)  # the row keeps its place; what follows changes

        session.when_saved(
            session.service.conversations.switch_version(cid, message_id, step), done
        )

    def delete(self, message_id: str) -> None:
        """The message and its replies go to the trash; Undo brings every row back, the
        answers' token traces and receipts included."""
        cid = self.window.session.conversation_id
        if not cid or self._busy():
            return
        session = self.window.session
        shown = [r.message_id for r in self.window.message_view.widgets()]
        i = shown.index(message_id) if message_id in shown else -1
        above = shown[i - 1] if i > 0 else None

        def done(entry: TrashEntry | None) -> None:
            if entry is None:
                return
            if session.conversation_id == entry.conversation_id:
                self._show(anchor=above)
            n = entry.message_count
            self.window.message_view.offer_undo(
                self.tr("Deleted 1 message.")
                if n == 1
                else self.tr("Deleted {n} messages.").format(n=n),
                lambda: self.undo(entry.id),
            )

        session.when_saved(session.service.conversations.delete_message(message_id), done)

    def undo(self, trash_id: str) -> None:
        session = self.window.session

        def done(entries: list[TrashEntry]) -> None:
            if entries and session.conversation_id == entries[0].conversation_id:
                self._show(anchor=None)

        session.restore_deleted([trash_id], done)

    # -- chat turns (the session runs them) --------------------------------------------------

    def edit(self, message_id: str, text: str) -> None:
        self.window.session.edit_message(message_id, text)

    def regenerate(self, message_id: str) -> None:
        self.window.session.regenerate(message_id)

    def continue_answer(self, message_id: str) -> None:
        self.window.session.continue_answer(message_id)
