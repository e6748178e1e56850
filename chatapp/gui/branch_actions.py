"""Branches in the window: walk versions, edit, regenerate any answer, continue, delete.

The message view only asks (signals); this extension answers. Switching a version and
deleting (with undo) are store operations decided by chatapp.core.tree; edit, regenerate
and continue run a chat turn, which is the chat session's job.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from chatapp.core.errors import StoreError
from chatapp.core.tree import Deletion, Link, Tree

if TYPE_CHECKING:
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


def install(window: MainWindow) -> None:
    window.branch_actions = BranchActions(window)  # type: ignore[attr-defined]


class BranchActions(QObject):
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

    # -- store operations -------------------------------------------------------------------

    def switch_version(self, message_id: str, step: int) -> None:
        cid = self.window.session.conversation_id
        if not cid or self._busy():
            return
        leaf = self._links(cid).switch(message_id, step)
        if leaf is None:
            return
        self.window.store.set_current_leaf(cid, leaf)
        self._show(anchor=message_id)  # the row keeps its place; what follows it changes

    def delete(self, message_id: str) -> None:
        cid = self.window.session.conversation_id
        store = self.window.store
        conv = store.get_conversation(cid) if cid else None
        if conv is None or self._busy():
            return
        plan = Tree(store.messages(conv.id)).plan_delete(message_id, conv.current_leaf_id)
        if plan is None:
            return
        shown = [r.message_id for r in self.window.message_view.widgets()]
        above = shown[shown.index(message_id) - 1] if shown.index(message_id) > 0 else None
        with store.transaction():
            store.delete_message(message_id)
            store.set_current_leaf(conv.id, plan.leaf_after)
        self._show(anchor=above)
        n = len(plan.messages)
        self.window.message_view.offer_undo(
            self.tr("Deleted 1 message.")
            if n == 1
            else self.tr("Deleted {n} messages.").format(n=n),
            lambda: self.undo(plan),
        )

    def undo(self, plan: Deletion) -> None:
        store = self.window.store
        try:
            with store.transaction():
                store.insert_messages(plan.messages)
                store.set_current_leaf(plan.conversation_id, plan.leaf_before)
        except (sqlite3.Error, StoreError, KeyError) as e:  # e.g. the chat was deleted since
            log.warning("undo of a delete failed: %s", e)
            self.window.show_error(self.tr("Could not undo the delete: {error}").format(error=e))
            return
        if self.window.session.conversation_id == plan.conversation_id:
            self._show(anchor=None)

    # -- chat turns (the session runs them) --------------------------------------------------

    def edit(self, message_id: str, text: str) -> None:
        self.window.session.edit_message(message_id, text)

    def regenerate(self, message_id: str) -> None:
        self.window.session.regenerate(message_id)

    def continue_answer(self, message_id: str) -> None:
        self.window.session.continue_answer(message_id)
