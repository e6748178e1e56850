"""Edits to saved conversations, for the window and the CLI alike: rename, pin, tag,
switch a branch, delete to the trash, restore, empty the trash.

Each command runs on the chat service's store thread (the one connection that writes
for this process) and returns a Future; once it is saved, the service publishes a
ConversationsChanged event so every view of the list reloads. A delete moves the rows
to the trash in the database (core.trash): an undo puts back every row, the answers'
token traces and receipts included, and still works after a restart, until the user
empties the trash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from chatapp.core.conversation import Conversation
from chatapp.core.store import Store
from chatapp.core.store.trash import TrashEntry
from chatapp.core.tree import Tree
from chatapp.service.events import ConversationsChanged
from chatapp.service.store_thread import StoreThread

log = logging.getLogger(__name__)

T = TypeVar("T")


class ConversationCommands:
    def __init__(
        self,
        db: StoreThread,
        publish: Callable[[Any], None],
        forget_states: Callable[[list[str]], None] = lambda ids: None,
    ) -> None:
        """forget_states(ids): drop the KV states kept for these chats (their tokens are
        their text), called after a delete."""
        self._db = db
        self._publish = publish
        self._forget_states = forget_states

    def _run(
        self,
        what: str,
        ids: Sequence[str],
        fn: Callable[[Store], T],
        ids_of: Callable[[T], Sequence[str]] | None = None,
    ) -> Future[T]:
        """fn(store) on the store thread; then tell every view (also when it failed
        half-way: an earlier id may have been changed already). `ids_of(result)`: the
        chats it changed, when only the result knows."""

        def job(store: Store) -> T:
            changed = list(ids)
            try:
                result = fn(store)
                if ids_of is not None:
                    changed += ids_of(result)
                return result
            finally:
                self._publish(ConversationsChanged(what, tuple(dict.fromkeys(changed))))

        return self._db.submit(job)

    # -- titles, pins, tags ------------------------------------------------------------

    def rename(self, conversation_id: str, title: str) -> Future[Conversation]:
        return self._run(
            "rename", [conversation_id], lambda s: s.rename_conversation(conversation_id, title)
        )

    def set_pinned(self, conversation_ids: Sequence[str], pinned: bool) -> Future[None]:
        ids = list(conversation_ids)

        def job(store: Store) -> None:
            with store.transaction():
                for cid in ids:
                    store.set_pinned(cid, pinned)

        return self._run("pin", ids, job)

    def set_tags(self, conversation_ids: Sequence[str], tags: Sequence[str]) -> Future[list[str]]:
        """Replace the tags of each; returns them as stored (cleaned) for the last one."""
        ids = list(conversation_ids)

        def job(store: Store) -> list[str]:
            out: list[str] = []
            with store.transaction():
                for cid in ids:
                    out = store.set_tags(cid, list(tags))
            return out

        return self._run("tags", ids, job)

    def change_tags(
        self, conversation_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> Future[list[str]]:
        """Add and remove some tags (case does not matter, nor a leading #)."""

        def job(store: Store) -> list[str]:
            drop = {t.lstrip("#").strip().casefold() for t in remove}
            with store.transaction():
                kept = [t for t in store.tags(conversation_id) if t.casefold() not in drop]
                return store.set_tags(conversation_id, kept + list(add))

        return self._run("tags", [conversation_id], job)

    # -- branches ----------------------------------------------------------------------

    def switch_branch(self, conversation_id: str, leaf_id: str | None) -> Future[None]:
        """Show the branch ending at `leaf_id` (switching does not move the chat up)."""

        def job(store: Store) -> None:
            conv = store.get_conversation(conversation_id)
            if conv is None:
                raise KeyError(conversation_id)
            store.update_conversation(
                conversation_id, current_leaf_id=leaf_id, updated_at=conv.updated_at
            )

        return self._run("branch", [conversation_id], job)

    def switch_version(
        self, conversation_id: str, message_id: str, step: int
    ) -> Future[str | None]:
        """Show the previous (step -1) or next (+1) version of a message, on its newest
        branch. Returns the leaf now shown, or None when there is no such version."""

        def job(store: Store) -> str | None:
            conv = store.get_conversation(conversation_id)
            if conv is None:
                return None
            leaf = Tree(store.message_links(conversation_id)).switch(message_id, step)
            if leaf is not None:
                store.update_conversation(
                    conversation_id, current_leaf_id=leaf, updated_at=conv.updated_at
                )
            return leaf

        return self._run("branch", [conversation_id], job)

    def show_branch_of(self, message_id: str) -> Future[str | None]:
        """Make the branch through `message_id` its chat's current one (a search hit)."""

        changed: list[str] = []

        def job(store: Store) -> str | None:
            msg = store.get_message(message_id)
            if msg is not None:
                changed.append(msg.conversation_id)
            return store.show_branch_of(message_id)

        return self._run("branch", [], job, lambda _leaf: changed)

    # -- delete, undo, empty the trash ----------------------------------------------------

    def delete(self, conversation_ids: Sequence[str]) -> Future[list[TrashEntry]]:
        """Move the chats to the trash (an unknown id is skipped). Returns the entries to
        restore them with."""
        ids = list(conversation_ids)

        def job(store: Store) -> list[TrashEntry]:
            out = []
            for cid in ids:
                entry = store.trash_conversation(cid)
                if entry is not None:
                    out.append(entry)
            self._forget_states([e.conversation_id for e in out])
            return out

        return self._run("delete", ids, job)

    def delete_message(self, message_id: str) -> Future[TrashEntry | None]:
        """Move a message and its replies (every version) to the trash. If the chat shows
        a branch through it, it shows a neighbouring version after (core.tree); None if
        the message is unknown."""

        def job(store: Store) -> TrashEntry | None:
            msg = store.get_message(message_id)
            conv = store.get_conversation(msg.conversation_id) if msg else None
            if msg is None or conv is None:
                return None
            plan = Tree(store.messages(conv.id)).plan_delete(message_id, conv.current_leaf_id)
            if plan is None:
                return None
            entry = store.trash_messages(message_id, plan.leaf_after)
            if entry is not None:  # the chat's saved state holds the deleted text
                self._forget_states([entry.conversation_id])
            return entry

        return self._run("delete_message", [], job, lambda e: [e.conversation_id] if e else [])

    def restore(self, trash_id: str) -> Future[TrashEntry]:
        """Undo one delete: every row back as it was (RestoreError says why not)."""
        return self._run(
            "restore", [], lambda s: s.restore_trash(trash_id), lambda e: [e.conversation_id]
        )

    def restore_all(self, trash_ids: Sequence[str]) -> Future[list[TrashEntry]]:
        """Undo several deletes at once (the latest first is the caller's order)."""
        ids = list(trash_ids)

        def job(store: Store) -> list[TrashEntry]:
            with store.transaction():
                return [store.restore_trash(t) for t in ids]

        return self._run("restore", [], job, lambda es: [e.conversation_id for e in es])

    def deleted(self, limit: int | None = None) -> Future[list[TrashEntry]]:
        """What is in the trash, the latest delete first."""
        return self._db.submit(lambda s: s.trash_entries(limit))

    def find_deleted(self, key: str) -> Future[TrashEntry | None]:
        """A delete by its trash id, or the id of the chat or message it removed."""
        return self._db.submit(lambda s: s.find_trash(key))

    def purge_deleted(self, trash_ids: Sequence[str] | None = None) -> Future[int]:
        """Empty the trash (or drop the entries given): deleted for good."""
        ids = None if trash_ids is None else list(trash_ids)
        return self._run("purge", [], lambda s: s.purge_trash(ids))
