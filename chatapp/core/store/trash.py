"""Deleted chats and messages, kept until the user restores them or empties the trash.

A delete moves the rows out of the live tables into the trash_* tables of migration
008_trash: the conversation (with its pin), its messages (or the deleted message with
its replies), each answer's token trace and prompt token ids (its receipt), and the
chat's tags. Lists, search, exports and the API read only the live tables, so what is
deleted is gone from all of them with no filter of their own; a restore moves every row
back, so nothing recorded about an answer is lost on the way. The trash is in the
database, so an undo outlives the process that deleted.

Functions here run on a connection inside a transaction the caller holds
(Store.transaction()); they never commit.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from chatapp.core import liveness
from chatapp.core.conversation import new_id, now
from chatapp.core.errors import UserError

CONVERSATION = "conversation"
MESSAGES = "messages"
PREVIEW_CHARS = 80

# a message and every reply below it, any depth (UNION, not UNION ALL: a damaged file
# with a loop of parents still ends)
_SUBTREE = (
    "WITH RECURSIVE sub(id) AS (SELECT ? UNION"
    " SELECT m.id FROM messages m JOIN sub ON m.parent_id = sub.id)"
)
_TRASH_COLS = (
    "id, kind, conversation_id, message_id, title, preview, message_count, deleted_at,"
    " leaf_before, leaf_after"
)


class RestoreError(UserError):
    """What was deleted cannot go back as it was (its chat or its parent is gone)."""


class StillWriting(UserError):
    """An answer in what is to be deleted is being written (here or by another process)."""


def _refuse_if_writing(db: sqlite3.Connection, ids_sql: str, args: tuple) -> None:
    t = now()
    rows = db.execute(
        f"{ids_sql} SELECT l.pid, l.host, l.started, l.heartbeat FROM live_answers l"
        " JOIN messages m ON m.id = l.message_id WHERE m.finish_reason = 'streaming'"
        " AND m.id IN (SELECT id FROM sub)",
        args,
    ).fetchall()
    for r in rows:
        if liveness.is_alive(liveness.Owner(int(r[0]), str(r[1]), str(r[2])), float(r[3]), t):
            raise StillWriting("An answer is still being written there: stop it first.")


@dataclass(frozen=True)
class TrashEntry:
    """One delete: a whole conversation, or a message with its replies."""

    id: str
    kind: str  # CONVERSATION or MESSAGES
    conversation_id: str
    message_id: str | None  # MESSAGES: the message deleted with its replies
    title: str  # the chat's title when it was deleted
    preview: str  # MESSAGES: the start of the deleted message
    message_count: int
    deleted_at: float
    leaf_before: str | None  # the chat's current leaf before the delete
    leaf_after: str | None  # ...and after it (MESSAGES)

    def describe(self) -> str:
        """One line for a list of deleted things."""
        if self.kind == CONVERSATION:
            return self.title
        return f"{self.title}: {self.preview}" if self.preview else self.title


def _entry(row: sqlite3.Row | tuple) -> TrashEntry:
    return TrashEntry(
        id=row[0],
        kind=row[1],
        conversation_id=row[2],
        message_id=row[3],
        title=row[4],
        preview=row[5],
        message_count=int(row[6]),
        deleted_at=float(row[7]),
        leaf_before=row[8],
        leaf_after=row[9],
    )


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]


def _shared(db: sqlite3.Connection, table: str) -> str:
    """The columns the live table and its trash copy both have, quoted."""
    have = set(_columns(db, f"trash_{table}"))
    return ", ".join(f'"{c}"' for c in _columns(db, table) if c in have)


def _preview(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1] + "…"


def _add_entry(db: sqlite3.Connection, entry: TrashEntry) -> None:
    db.execute(
        f"INSERT INTO trash ({_TRASH_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            entry.id,
            entry.kind,
            entry.conversation_id,
            entry.message_id,
            entry.title,
            entry.preview,
            entry.message_count,
            entry.deleted_at,
            entry.leaf_before,
            entry.leaf_after,
        ),
    )


def delete_leaves_first(db: sqlite3.Connection, ids: list[str]) -> None:
    """Delete these messages (in rowid order: a reply after what it answers) for good,
    one row at a time, replies first. A single DELETE of the first would cascade down the
    whole chain, one trigger level per message, and SQLite stops at 1000 levels: a long
    chat could not be deleted at all."""
    db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in reversed(ids)])


def message_ids(db: sqlite3.Connection, conversation_id: str) -> list[str]:
    """The conversation's message ids in rowid order."""
    rows = db.execute(
        "SELECT id FROM messages WHERE conversation_id = ? ORDER BY rowid", (conversation_id,)
    )
    return [r[0] for r in rows]


def subtree_ids(db: sqlite3.Connection, message_id: str) -> list[str]:
    """A message and every reply below it, in rowid order."""
    rows = db.execute(
        f"{_SUBTREE} SELECT m.id FROM messages m JOIN sub ON sub.id = m.id ORDER BY m.rowid",
        (message_id,),
    )
    return [r[0] for r in rows]


def trash_conversation(db: sqlite3.Connection, conversation_id: str) -> TrashEntry | None:
    """Move a conversation with everything it holds to the trash. None if unknown."""
    conv = db.execute(
        "SELECT title, current_leaf_id FROM conversations WHERE id = ?", (conversation_id,)
    ).fetchone()
    if conv is None:
        return None
    _refuse_if_writing(
        db,
        "WITH sub(id) AS (SELECT id FROM messages WHERE conversation_id = ?)",
        (conversation_id,),
    )
    ids = message_ids(db, conversation_id)
    first = db.execute(
        "SELECT content FROM messages WHERE conversation_id = ? AND role = 'user'"
        " ORDER BY created_at, rowid LIMIT 1",
        (conversation_id,),
    ).fetchone()
    entry = TrashEntry(
        id=new_id(),
        kind=CONVERSATION,
        conversation_id=conversation_id,
        message_id=None,
        title=str(conv[0]),
        preview=_preview(str(first[0])) if first else "",
        message_count=len(ids),
        deleted_at=now(),
        leaf_before=conv[1],
        leaf_after=None,
    )
    _add_entry(db, entry)
    t = entry.id
    cols = _shared(db, "conversations")
    db.execute(
        f"INSERT INTO trash_conversations (trash_id, {cols})"
        f" SELECT ?, {cols} FROM conversations WHERE id = ?",
        (t, conversation_id),
    )
    cols = _shared(db, "messages")
    db.execute(
        f"INSERT INTO trash_messages (trash_id, seq, {cols})"
        f" SELECT ?, rowid, {cols} FROM messages WHERE conversation_id = ?",
        (t, conversation_id),
    )
    for table in ("prompt_tokens", "token_logprobs"):
        cols = _shared(db, table)
        db.execute(
            f"INSERT INTO trash_{table} (trash_id, {cols}) SELECT ?, {cols} FROM {table}"
            " WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = ?)",
            (t, conversation_id),
        )
    cols = _shared(db, "conversation_tags")
    db.execute(
        f"INSERT INTO trash_conversation_tags (trash_id, {cols})"
        f" SELECT ?, {cols} FROM conversation_tags WHERE conversation_id = ?",
        (t, conversation_id),
    )
    delete_leaves_first(db, ids)
    db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
    return entry


def trash_messages(
    db: sqlite3.Connection, message_id: str, leaf_after: str | None
) -> TrashEntry | None:
    """Move a message and all its replies (every version) to the trash, with their token
    traces and prompt token ids; the chat then shows `leaf_after`. None if unknown."""
    row = db.execute(
        "SELECT m.conversation_id, m.content, c.title, c.current_leaf_id FROM messages m"
        " JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?",
        (message_id,),
    ).fetchone()
    if row is None:
        return None
    _refuse_if_writing(db, _SUBTREE, (message_id,))
    conversation_id = str(row[0])
    ids = subtree_ids(db, message_id)
    entry = TrashEntry(
        id=new_id(),
        kind=MESSAGES,
        conversation_id=conversation_id,
        message_id=message_id,
        title=str(row[2]),
        preview=_preview(str(row[1])),
        message_count=len(ids),
        deleted_at=now(),
        leaf_before=row[3],
        leaf_after=leaf_after,
    )
    _add_entry(db, entry)
    t = entry.id
    cols = _shared(db, "messages")
    db.execute(
        f"{_SUBTREE} INSERT INTO trash_messages (trash_id, seq, {cols})"
        f" SELECT ?, rowid, {cols} FROM messages WHERE id IN (SELECT id FROM sub)",
        (message_id, t),
    )
    for table in ("prompt_tokens", "token_logprobs"):
        cols = _shared(db, table)
        db.execute(
            f"{_SUBTREE} INSERT INTO trash_{table} (trash_id, {cols})"
            f" SELECT ?, {cols} FROM {table} WHERE message_id IN (SELECT id FROM sub)",
            (message_id, t),
        )
    db.execute(
        "UPDATE conversations SET current_leaf_id = ? WHERE id = ?", (leaf_after, conversation_id)
    )
    delete_leaves_first(db, ids)
    return entry


def restore(db: sqlite3.Connection, trash_id: str) -> TrashEntry:
    """Put every row of one delete back as it was and drop it from the trash."""
    row = db.execute(f"SELECT {_TRASH_COLS} FROM trash WHERE id = ?", (trash_id,)).fetchone()
    if row is None:
        raise RestoreError("That delete is no longer in the trash (it was emptied or undone).")
    entry = _entry(row)
    conv_live = db.execute(
        "SELECT 1 FROM conversations WHERE id = ?", (entry.conversation_id,)
    ).fetchone()
    if entry.kind == CONVERSATION:
        if conv_live:
            raise RestoreError(f"The chat “{entry.title}” is there already.")
    else:
        if not conv_live:
            raise RestoreError(
                f"The chat “{entry.title}” was deleted as well: restore the chat first."
            )
        parent = db.execute(
            "SELECT parent_id FROM trash_messages WHERE trash_id = ? AND id = ?",
            (trash_id, entry.message_id),
        ).fetchone()
        if (
            parent
            and parent[0] is not None
            and not db.execute("SELECT 1 FROM messages WHERE id = ?", (parent[0],)).fetchone()
        ):
            raise RestoreError("The message these answered was deleted later: restore that first.")
    clash = db.execute(
        "SELECT 1 FROM trash_messages t JOIN messages m ON m.id = t.id WHERE t.trash_id = ?",
        (trash_id,),
    ).fetchone()
    if clash:
        raise RestoreError("These messages are there already.")
    # replies come after what they answer in `seq` (rowid order) as a rule; checked at
    # commit all the same, for rows an import wrote in another order
    db.execute("PRAGMA defer_foreign_keys = ON")
    if entry.kind == CONVERSATION:
        cols = _shared(db, "conversations")
        db.execute(
            f"INSERT INTO conversations ({cols}) SELECT {cols} FROM trash_conversations"
            " WHERE trash_id = ?",
            (trash_id,),
        )
    cols = _shared(db, "messages")
    db.execute(
        f"INSERT INTO messages ({cols}) SELECT {cols} FROM trash_messages WHERE trash_id = ?"
        " ORDER BY seq",
        (trash_id,),
    )
    for table in ("prompt_tokens", "token_logprobs", "conversation_tags"):
        cols = _shared(db, table)
        db.execute(
            f"INSERT OR IGNORE INTO {table} ({cols}) SELECT {cols} FROM trash_{table}"
            " WHERE trash_id = ?",
            (trash_id,),
        )
    if entry.kind == MESSAGES and entry.leaf_before:
        db.execute(
            "UPDATE conversations SET current_leaf_id = ? WHERE id = ?"
            " AND EXISTS (SELECT 1 FROM messages WHERE id = ?)",
            (entry.leaf_before, entry.conversation_id, entry.leaf_before),
        )
    db.execute("DELETE FROM trash WHERE id = ?", (trash_id,))
    return entry


def purge(db: sqlite3.Connection, trash_ids: list[str] | None = None) -> int:
    """Delete for good: every entry (emptying the trash), or those given. Returns how
    many entries went."""
    if trash_ids is None:
        return int(db.execute("DELETE FROM trash").rowcount)
    return sum(int(db.execute("DELETE FROM trash WHERE id = ?", (t,)).rowcount) for t in trash_ids)


def entries(db: sqlite3.Connection, limit: int | None = None) -> list[TrashEntry]:
    """What is in the trash, the latest delete first."""
    rows = db.execute(
        f"SELECT {_TRASH_COLS} FROM trash ORDER BY deleted_at DESC, rowid DESC LIMIT ?",
        (-1 if limit is None else limit,),
    )
    return [_entry(r) for r in rows]


def find(db: sqlite3.Connection, key: str) -> TrashEntry | None:
    """The latest delete whose trash id, conversation id or message id is `key` or
    starts with it (at least 4 characters)."""
    key = key.strip()
    if not key:
        return None
    exact = db.execute(
        f"SELECT {_TRASH_COLS} FROM trash WHERE id = ? OR conversation_id = ? OR message_id = ?"
        " ORDER BY kind = 'conversation' DESC, deleted_at DESC LIMIT 1",
        (key, key, key),
    ).fetchone()
    if exact or len(key) < 4:
        return _entry(exact) if exact else None
    like = key.replace("%", "").replace("_", "") + "%"
    rows = db.execute(
        f"SELECT {_TRASH_COLS} FROM trash WHERE id LIKE ? OR conversation_id LIKE ?"
        " OR message_id LIKE ? ORDER BY deleted_at DESC",
        (like, like, like),
    ).fetchall()
    return _entry(rows[0]) if rows else None
