"""SQLite persistence for conversations and messages.

stdlib sqlite3 in WAL mode with synchronous=NORMAL: a committed transaction survives a
killed process, and readers never block the writer. Every write goes through
`transaction()`, which rolls back on error, so a failure never leaves half a change.
The Store belongs to one thread (the GUI thread, or the CLI's main thread).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatapp.core.conversation import (
    Conversation,
    FinishReason,
    Message,
    Role,
    new_id,
    now,
    thread,
)
from chatapp.core.errors import StoreError
from chatapp.core.migrations import MIGRATIONS, Migration
from chatapp.core.tree import Link

log = logging.getLogger(__name__)

_CONV_COLS = "id, title, created_at, updated_at, model_path, system_prompt, current_leaf_id, meta"
_MSG_COLS = (
    "id, conversation_id, parent_id, role, content, thinking, created_at, model, finish_reason,"
    " prompt_tokens, completion_tokens, tokens_per_second, meta"
)


def _conv(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=row["id"],
        title=row["title"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model_path=row["model_path"],
        system_prompt=row["system_prompt"],
        current_leaf_id=row["current_leaf_id"],
        meta=json.loads(row["meta"] or "{}"),
    )


def _msg(row: sqlite3.Row) -> Message:
    fr = row["finish_reason"]
    return Message(
        id=row["id"],
        conversation_id=row["conversation_id"],
        parent_id=row["parent_id"],
        role=Role(row["role"]),
        content=row["content"],
        thinking=row["thinking"],
        created_at=row["created_at"],
        model=row["model"],
        finish_reason=FinishReason(fr) if fr else None,
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        tokens_per_second=row["tokens_per_second"],
        meta=json.loads(row["meta"] or "{}"),
    )


class Store:
    def __init__(
        self, path: Path | str, migrations: Sequence[tuple[str, Migration]] = MIGRATIONS
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate(migrations)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"Cannot open the chat database {self.path}: {e}") from e

    # -- plumbing -----------------------------------------------------------------

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._db.in_transaction:  # nested: join the outer transaction
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")

    def _migrate(self, migrations: Sequence[tuple[str, Migration]]) -> None:
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        applied = {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
        known = {name for name, _ in migrations}
        unknown = sorted(applied - known)
        if unknown:
            raise StoreError(
                f"The chat database {self.path} was written by a newer chatapp "
                f"(it has migration {unknown[-1]}). Update chatapp to open it.",
            )
        for name, fn in migrations:
            if name in applied:
                continue
            log.info("applying migration %s to %s", name, self.path)
            with self.transaction() as db:
                fn(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now()))

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM _migrations ORDER BY name")]

    # -- conversations ------------------------------------------------------------

    def create_conversation(
        self,
        title: str = "New chat",
        *,
        model_path: str | None = None,
        system_prompt: str = "",
        meta: dict[str, Any] | None = None,
        created_at: float | None = None,
        conversation_id: str | None = None,
    ) -> Conversation:
        t = created_at if created_at is not None else now()
        conv = Conversation(
            id=conversation_id or new_id(),
            title=title,
            created_at=t,
            updated_at=t,
            model_path=model_path,
            system_prompt=system_prompt,
            meta=meta or {},
        )
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO conversations ({_CONV_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conv.id,
                    conv.title,
                    conv.created_at,
                    conv.updated_at,
                    conv.model_path,
                    conv.system_prompt,
                    None,
                    json.dumps(conv.meta),
                ),
            )
        return conv

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        row = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        return _conv(row) if row else None

    def find_conversation(self, prefix: str) -> Conversation | None:
        """By full id or a unique id prefix (handy on the command line)."""
        conv = self.get_conversation(prefix)
        if conv or len(prefix) < 4:
            return conv
        rows = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations WHERE id LIKE ? LIMIT 2",
            (prefix.replace("%", "").replace("_", "") + "%",),
        ).fetchall()
        return _conv(rows[0]) if len(rows) == 1 else None

    def list_conversations(self, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """Most recently updated first."""
        rows = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations ORDER BY updated_at DESC, rowid DESC"
            " LIMIT ? OFFSET ?",
            (-1 if limit is None else limit, offset),
        ).fetchall()
        return [_conv(r) for r in rows]

    def count_conversations(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])

    def update_conversation(self, conversation_id: str, **fields: Any) -> Conversation:
        allowed = {"title", "model_path", "system_prompt", "current_leaf_id", "meta", "updated_at"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        fields.setdefault("updated_at", now())
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            cur = db.execute(
                f"UPDATE conversations SET {sets} WHERE id = ?", (*fields.values(), conversation_id)
            )
            if cur.rowcount == 0:
                raise KeyError(conversation_id)
        conv = self.get_conversation(conversation_id)
        assert conv is not None
        return conv

    def rename_conversation(self, conversation_id: str, title: str) -> Conversation:
        return self.update_conversation(conversation_id, title=title.strip() or "New chat")

    def delete_conversation(self, conversation_id: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # -- messages -----------------------------------------------------------------

    def add_message(
        self,
        conversation_id: str,
        role: Role,
        content: str,
        *,
        parent_id: str | None = None,
        make_current: bool = True,
        message_id: str | None = None,
        created_at: float | None = None,
        **fields: Any,
    ) -> Message:
        msg = Message(
            id=message_id or new_id(),
            conversation_id=conversation_id,
            parent_id=parent_id,
            role=Role(role),
            content=content,
            created_at=created_at if created_at is not None else now(),
            **fields,
        )
        with self.transaction() as db:
            self._insert_message(db, msg)
            if make_current:
                db.execute(
                    "UPDATE conversations SET current_leaf_id = ?, updated_at = ? WHERE id = ?",
                    (msg.id, max(msg.created_at, now()), conversation_id),
                )
        return msg

    def _insert_message(self, db: sqlite3.Connection, msg: Message) -> None:
        db.execute(
            f"INSERT INTO messages ({_MSG_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                msg.id,
                msg.conversation_id,
                msg.parent_id,
                msg.role.value,
                msg.content,
                msg.thinking,
                msg.created_at,
                msg.model,
                msg.finish_reason.value if msg.finish_reason else None,
                msg.prompt_tokens,
                msg.completion_tokens,
                msg.tokens_per_second,
                json.dumps(msg.meta),
            ),
        )

    def insert_messages(self, messages: Sequence[Message]) -> None:
        """Bulk insert as they are (imports); parents must come before children."""
        with self.transaction() as db:
            for m in messages:
                self._insert_message(db, m)

    def update_message(self, message_id: str, **fields: Any) -> None:
        allowed = {
            "content",
            "thinking",
            "finish_reason",
            "prompt_tokens",
            "completion_tokens",
            "tokens_per_second",
            "meta",
            "model",
        }
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"cannot update {sorted(bad)}")
        if "finish_reason" in fields and fields["finish_reason"] is not None:
            fields["finish_reason"] = FinishReason(fields["finish_reason"]).value
        if "meta" in fields:
            fields["meta"] = json.dumps(fields["meta"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.transaction() as db:
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))

    def delete_message(self, message_id: str) -> None:
        """Remove a message and its replies; a conversation that pointed at it points at
        its parent instead."""
        msg = self.get_message(message_id)
        if msg is None:
            return
        with self.transaction() as db:
            db.execute(
                "UPDATE conversations SET current_leaf_id = ? WHERE id = ? AND current_leaf_id = ?",
                (msg.parent_id, msg.conversation_id, message_id),
            )
            db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def get_message(self, message_id: str) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return _msg(row) if row else None

    def messages(self, conversation_id: str) -> list[Message]:
        """Every message of the conversation (all branches), oldest first."""
        rows = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE conversation_id = ?"
            " ORDER BY created_at, rowid",
            (conversation_id,),
        ).fetchall()
        return [_msg(r) for r in rows]

    def message_links(self, conversation_id: str) -> list[Link]:
        """Every message's place in the tree (id, parent, time) without its text: cheap
        enough to count versions in a long conversation on every change."""
        rows = self._db.execute(
            "SELECT id, conversation_id, parent_id, created_at FROM messages"
            " WHERE conversation_id = ? ORDER BY created_at, rowid",
            (conversation_id,),
        ).fetchall()
        return [Link(*r) for r in rows]

    def active_thread(self, conversation_id: str) -> list[Message]:
        conv = self.get_conversation(conversation_id)
        if conv is None:
            return []
        return thread(self.messages(conversation_id), conv.current_leaf_id)

    def set_current_leaf(self, conversation_id: str, message_id: str | None) -> None:
        self.update_conversation(conversation_id, current_leaf_id=message_id)

    # -- app state ----------------------------------------------------------------

    def get_state(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM app_state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str | None) -> None:
        with self.transaction() as db:
            if value is None:
                db.execute("DELETE FROM app_state WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO app_state VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    def recover_interrupted(self) -> int:
        """Answers that were still streaming when the process died keep what was saved
        and are marked as stopped. Returns how many."""
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE messages SET finish_reason = ? WHERE finish_reason = ?",
                (FinishReason.CANCELLED.value, FinishReason.STREAMING.value),
            )
            return cur.rowcount
