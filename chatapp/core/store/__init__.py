"""SQLite persistence for conversations and messages.

stdlib sqlite3 in WAL mode with synchronous=NORMAL: a committed transaction survives a
killed process, and readers never block the writer. Every write goes through
`transaction()`, which rolls back on error, so a failure never leaves half a change.
A Store (one connection) belongs to one thread: a thread that saves on its own (the chat
service's) opens its own Store on the same file.

Several processes may use the file at once (the window, `chatapp chat`, an import):
writes are short, a write that finds the database busy waits and retries (store.connection),
large imports commit in batches (`batched()`), and a start recovers only the answers and
imports whose process is gone (liveness). A damaged file is named at open and never
written (store.health); a bad value in one row falls back with a warning in the log.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatapp.core import liveness
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
from chatapp.core.images import ImageFile
from chatapp.core.logprobs import TokenTrace, pack_trace, unpack_trace
from chatapp.core.receipt import pack_tokens, unpack_tokens
from chatapp.core.store import images as store_images
from chatapp.core.store import trash
from chatapp.core.store.connection import (
    WRITE_TIMEOUT,
    BusyCallback,
    DatabaseDamaged,
    StoreBusy,
    StoreDiskFull,
    WriteWait,
    connect,
    damaged,
)
from chatapp.core.store.health import missing_schema, quick_check
from chatapp.core.store.migrations import MIGRATIONS, Migration

__all__ = [
    "DatabaseDamaged",
    "Store",
    "StoreBusy",
    "StoreDiskFull",
    "WriteWait",
]
from chatapp.core.search import SearchHit, leaf_through
from chatapp.core.search import search as search_index
from chatapp.core.tree import Link

log = logging.getLogger(__name__)

_CONV_COLS = "id, title, created_at, updated_at, model_path, system_prompt, current_leaf_id, meta"
_MSG_COLS = (
    "id, conversation_id, parent_id, role, content, thinking, created_at, model, finish_reason,"
    " prompt_tokens, completion_tokens, tokens_per_second, meta"
)

BATCH_SECONDS = 0.5  # a batched write commits at least this often...
BATCH_PAUSE = 0.025  # ...and leaves the lock free this long (waiting writers poll every ~10 ms)
BATCH_ROWS = 500  # messages per statement group inside a batch


# -- reading rows: one bad value never breaks the rest ------------------------------------


def _bad(row: sqlite3.Row, col: str, value: object, used: object) -> None:
    log.warning(
        "chat database: %s of row %s has a bad value %.80r; using %r",
        col,
        row["id"],
        value,
        used,
    )


def _meta(row: sqlite3.Row) -> dict[str, Any]:
    raw = row["meta"]
    try:
        value = json.loads(raw) if raw else {}
    except (ValueError, TypeError, RecursionError):
        value = None
    if not isinstance(value, dict):
        _bad(row, "meta", raw, {})
        return {}
    return value


def _str(row: sqlite3.Row, col: str, default: str = "") -> str:
    value = row[col]
    if isinstance(value, str):
        return value
    if value is None:
        return default
    used = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    _bad(row, col, value, used)
    return used


def _opt_str(row: sqlite3.Row, col: str) -> str | None:
    return None if row[col] is None else _str(row, col)


def _num(row: sqlite3.Row, col: str, kind: type, default: Any = None) -> Any:
    value = row[col]
    if value is None or (type(value) is kind) or (kind is float and type(value) is int):
        return default if value is None else kind(value)
    _bad(row, col, value, default)
    return default


def _conv(row: sqlite3.Row) -> Conversation:
    return Conversation(
        id=_str(row, "id"),
        title=_str(row, "title", "Untitled"),
        created_at=_num(row, "created_at", float, 0.0),
        updated_at=_num(row, "updated_at", float, 0.0),
        model_path=_opt_str(row, "model_path"),
        system_prompt=_str(row, "system_prompt"),
        current_leaf_id=_opt_str(row, "current_leaf_id"),
        meta=_meta(row),
    )


def _role(row: sqlite3.Row) -> Role:
    try:
        return Role(row["role"])
    except ValueError:
        # shown, and sent to the model, as the user's words: the safer guess for a row
        # whose author is unknown
        _bad(row, "role", row["role"], Role.USER.value)
        return Role.USER


def _finish(row: sqlite3.Row) -> FinishReason | None:
    fr = row["finish_reason"]
    if not fr:
        return None
    try:
        return FinishReason(fr)
    except ValueError:
        _bad(row, "finish_reason", fr, None)
        return None


def _msg(row: sqlite3.Row) -> Message:
    return Message(
        id=_str(row, "id"),
        conversation_id=_str(row, "conversation_id"),
        parent_id=_opt_str(row, "parent_id"),
        role=_role(row),
        content=_str(row, "content"),
        thinking=_str(row, "thinking"),
        created_at=_num(row, "created_at", float, 0.0),
        model=_opt_str(row, "model"),
        finish_reason=_finish(row),
        prompt_tokens=_num(row, "prompt_tokens", int),
        completion_tokens=_num(row, "completion_tokens", int),
        tokens_per_second=_num(row, "tokens_per_second", float),
        meta=_meta(row),
    )


@dataclass
class _Batch:
    id: str
    opened: float = 0.0
    conversations: int = 0


def _tag_filter(tag: str | None) -> tuple[str, tuple[str, ...]]:
    if tag is None:
        return "", ()
    return (
        "WHERE id IN (SELECT conversation_id FROM conversation_tags WHERE tag = ?)",
        (tag,),
    )


class Store:
    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[tuple[str, Migration]] = MIGRATIONS,
        *,
        on_busy: BusyCallback | None = None,
        write_timeout: float = WRITE_TIMEOUT,
        check: bool = True,
    ) -> None:
        """Open (or create) the database and bring its schema up to date.

        `check` runs PRAGMA quick_check first: a damaged file raises DatabaseDamaged and
        is not written. `on_busy` hears about writes that wait for another process.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batch: _Batch | None = None
        if check and self.path.is_file() and self.path.stat().st_size > 0:
            self._check_file(write_timeout)
        self._db = connect(self.path, write_timeout=write_timeout, on_busy=on_busy)
        try:
            self._open(migrations)
        except BaseException:
            self._db.close()
            raise

    def _check_file(self, write_timeout: float) -> None:
        """quick_check on a read-only connection: a damaged file is not even
        checkpointed into, which closing a read-write connection would do."""
        ro = connect(self.path, write_timeout=write_timeout, read_only=True)
        try:
            problem = quick_check(ro)
        finally:
            ro.close()
        if problem:
            raise damaged(self.path, problem)

    def _open(self, migrations: Sequence[tuple[str, Migration]]) -> None:
        db = self._db
        try:
            # only a new file is switched to WAL: asking again would be a write
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._migrate(migrations)
            problem = missing_schema(db, migrations)
            if problem:
                db.is_damaged = True
                raise damaged(self.path, problem)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"Cannot open the chat database {self.path}: {e}") from e

    # -- plumbing -----------------------------------------------------------------

    @property
    def on_busy(self) -> BusyCallback | None:
        """Told (on the writing thread) when a write waits for another process."""
        return self._db.on_busy

    @on_busy.setter
    def on_busy(self, callback: BusyCallback | None) -> None:
        self._db.on_busy = callback

    @property
    def is_damaged(self) -> bool:
        return self._db.is_damaged

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._db.in_transaction:  # nested, or inside batched(): join
            yield self._db
            if self._batch is not None:
                self._maybe_commit_batch()
            return
        self._begin()
        try:
            yield self._db
            self._db.execute("COMMIT")  # may fail too (a full disk): then roll back
        except BaseException:
            self._rollback()
            raise

    def _begin(self) -> None:
        if self._db.is_damaged:
            raise damaged(self.path, "it failed a check earlier; nothing more is written to it")
        self._db.execute("BEGIN IMMEDIATE")  # waits while another process writes

    def _rollback(self) -> None:
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except (sqlite3.Error, StoreError):
                log.exception("rollback failed")

    def _migrate(self, migrations: Sequence[tuple[str, Migration]]) -> None:
        """Read first: a database that is up to date is not written at all."""
        have_table = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
        ).fetchone()
        applied = (
            {r[0] for r in self._db.execute("SELECT name FROM _migrations")}
            if have_table
            else set()
        )
        self._refuse_newer(applied, migrations)
        if have_table and all(name in applied for name, _ in migrations):
            return
        if not have_table and self._db.execute("SELECT 1 FROM sqlite_master").fetchone():
            self._db.is_damaged = True  # tables, but no record of how they were made
            raise damaged(self.path, "the table _migrations is missing")
        with self.transaction() as db:  # another process may have migrated meanwhile
            db.execute(
                "CREATE TABLE IF NOT EXISTS _migrations"
                " (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            applied = {r[0] for r in db.execute("SELECT name FROM _migrations")}
            self._refuse_newer(applied, migrations)
            for name, fn in migrations:
                if name in applied:
                    continue
                log.info("applying migration %s to %s", name, self.path)
                fn(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now()))

    def _refuse_newer(self, applied: set[str], migrations: Sequence[tuple[str, Migration]]) -> None:
        unknown = sorted(applied - {name for name, _ in migrations})
        if unknown:
            raise StoreError(
                f"The chat database {self.path} was written by a newer chatapp "
                f"(it has migration {unknown[-1]}). Update chatapp to open it.",
            )

    def data_version(self) -> int:
        """Changes when another connection (another process, the service's thread) has
        committed since this one last looked: a cheap "reload?" check."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

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
            if self._batch is not None:
                db.execute("INSERT INTO write_batch_rows VALUES (?, ?)", (self._batch.id, conv.id))
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

    def list_conversations(
        self, limit: int | None = None, offset: int = 0, *, tag: str | None = None
    ) -> list[Conversation]:
        """Pinned first, then most recently updated first; only those tagged `tag` if given."""
        where, args = _tag_filter(tag)
        rows = self._db.execute(
            f"SELECT {_CONV_COLS} FROM conversations {where}"
            " ORDER BY pinned DESC, updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*args, -1 if limit is None else limit, offset),
        ).fetchall()
        return [_conv(r) for r in rows]

    def count_conversations(self, *, tag: str | None = None) -> int:
        where, args = _tag_filter(tag)
        return int(
            self._db.execute(f"SELECT COUNT(*) FROM conversations {where}", args).fetchone()[0]
        )

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
        """Delete for good (the user's Delete goes to the trash: trash_conversation)."""
        with self.transaction() as db:
            _drop_conversation(db, conversation_id)

    # -- the trash (core.trash): deletes the user can undo, across restarts ------------

    def trash_conversation(self, conversation_id: str) -> trash.TrashEntry | None:
        with self.transaction() as db:
            return trash.trash_conversation(db, conversation_id)

    def trash_messages(self, message_id: str, leaf_after: str | None) -> trash.TrashEntry | None:
        with self.transaction() as db:
            return trash.trash_messages(db, message_id, leaf_after)

    def restore_trash(self, trash_id: str) -> trash.TrashEntry:
        with self.transaction() as db:
            return trash.restore(db, trash_id)

    def purge_trash(self, trash_ids: list[str] | None = None) -> int:
        with self.transaction() as db:
            return trash.purge(db, trash_ids)

    def trash_entries(self, limit: int | None = None) -> list[trash.TrashEntry]:
        return trash.entries(self._db, limit)

    def find_trash(self, key: str) -> trash.TrashEntry | None:
        return trash.find(self._db, key)

    # -- images (core.store.images): stored once by sha256, named in message meta ---

    def put_images(self, images: Sequence[ImageFile]) -> None:
        with self.transaction() as db:
            for image in images:
                store_images.put(db, image)

    def get_image(self, sha256: str, *, with_data: bool = True) -> ImageFile | None:
        return store_images.get(self._db, sha256, with_data=with_data)

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
            if msg.finish_reason is FinishReason.STREAMING:
                self._mark_live(db, msg.id)
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
        """Bulk insert as they are (imports); parents must come before children.
        Inside `batched()` a long list is committed in pieces."""
        step = BATCH_ROWS if self._batch is not None else max(len(messages), 1)
        for i in range(0, len(messages), step):
            with self.transaction() as db:
                for m in messages[i : i + step]:
                    self._insert_message(db, m)
                    if m.tokens is not None:  # an imported answer's token probabilities
                        self.save_token_trace(m.id, m.tokens)

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Write a large change (an import) in short transactions, so other processes
        (an answer streaming in the window) never wait more than a moment.

        Inside the block, Store writes commit about every BATCH_SECONDS. It is still all
        or nothing for what it adds: if the block raises, the conversations it created are
        removed again; if the process dies, the next start removes them.
        """
        if self._batch is not None or self._db.in_transaction:
            raise RuntimeError("batched() cannot be nested or run inside a transaction")
        batch = _Batch(new_id())
        owner = liveness.me()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO write_batches VALUES (?, ?, ?, ?, ?)",
                (batch.id, owner.pid, owner.host, owner.started, now()),
            )
        try:
            self._begin()
            batch.opened = time.monotonic()
            self._batch = batch
            yield
            self._batch = None
            self._db.execute("COMMIT")
        except BaseException:
            self._batch = None
            self._rollback()
            self._undo_batch(batch.id)
            raise
        with self.transaction() as db:  # done: what it added is here to stay
            db.execute("DELETE FROM write_batches WHERE id = ?", (batch.id,))

    def _maybe_commit_batch(self) -> None:
        batch = self._batch
        assert batch is not None
        if time.monotonic() - batch.opened < BATCH_SECONDS:
            return
        self._db.execute("UPDATE write_batches SET heartbeat = ? WHERE id = ?", (now(), batch.id))
        self._db.execute("COMMIT")
        time.sleep(BATCH_PAUSE)  # SQLite's locks are not fair: let a waiting writer in
        self._begin()
        batch.opened = time.monotonic()

    def _undo_batch(self, batch_id: str) -> int:
        """Remove the conversations an unfinished batched write added, a few at a time."""
        removed = 0
        while True:
            with self.transaction() as db:
                ids = [
                    r[0]
                    for r in db.execute(
                        "SELECT conversation_id FROM write_batch_rows WHERE batch_id = ? LIMIT 20",
                        (batch_id,),
                    )
                ]
                for cid in ids:
                    _drop_conversation(db, cid)
                if not ids:
                    db.execute("DELETE FROM write_batches WHERE id = ?", (batch_id,))
                    break
                removed += len(ids)
        if removed:
            log.info("removed %d conversations of an unfinished import", removed)
        return removed

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
        finish = fields.get("finish_reason", FinishReason.STREAMING.value)
        with self.transaction() as db:
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", (*fields.values(), message_id))
            if finish == FinishReason.STREAMING.value:
                db.execute(
                    "UPDATE live_answers SET heartbeat = ? WHERE message_id = ?",
                    (now(), message_id),
                )
            else:
                db.execute("DELETE FROM live_answers WHERE message_id = ?", (message_id,))

    def mark_streaming(self, message_id: str) -> None:
        """An existing answer is being written again (Continue): streaming, and owned by
        this process until it finishes."""
        with self.transaction() as db:
            db.execute(
                "UPDATE messages SET finish_reason = ? WHERE id = ?",
                (FinishReason.STREAMING.value, message_id),
            )
            self._mark_live(db, message_id)

    def heartbeat(self, message_id: str) -> None:
        """Say that this streaming answer is still being written (when no text came)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE live_answers SET heartbeat = ? WHERE message_id = ?", (now(), message_id)
            )

    def _mark_live(self, db: sqlite3.Connection, message_id: str) -> None:
        owner = liveness.me()
        db.execute(
            "INSERT OR REPLACE INTO live_answers VALUES (?, ?, ?, ?, ?)",
            (message_id, owner.pid, owner.host, owner.started, now()),
        )

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
            trash.delete_leaves_first(db, trash.subtree_ids(db, message_id))

    def get_message(self, message_id: str) -> Message | None:
        row = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return _msg(row) if row else None

    def messages(self, conversation_id: str, *, with_tokens: bool = False) -> list[Message]:
        """Every message of the conversation (all branches), oldest first. with_tokens:
        attach each answer's token probabilities (for the JSON export)."""
        rows = self._db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE conversation_id = ?"
            " ORDER BY created_at, rowid",
            (conversation_id,),
        ).fetchall()
        msgs = [_msg(r) for r in rows]
        if with_tokens:
            traces = self.token_traces(conversation_id)
            msgs = [m.with_(tokens=traces[m.id]) if m.id in traces else m for m in msgs]
        return msgs

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

    # -- prompt receipts ------------------------------------------------------------

    def save_prompt_tokens(self, message_id: str, tokens: Sequence[int]) -> None:
        """The exact prompt token ids that produced an answer (see core.receipt)."""
        blob = pack_tokens(tokens)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO prompt_tokens VALUES (?, ?)"
                " ON CONFLICT(message_id) DO UPDATE SET tokens = excluded.tokens",
                (message_id, blob),
            )

    def prompt_tokens(self, message_id: str) -> list[int] | None:
        row = self._db.execute(
            "SELECT tokens FROM prompt_tokens WHERE message_id = ?", (message_id,)
        ).fetchone()
        return unpack_tokens(row[0]) if row else None

    # -- pins, tags, search -------------------------------------------------------

    def set_pinned(self, conversation_id: str, pinned: bool) -> None:
        """Pinned conversations stay on top of the list (the order among them: recency)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE conversations SET pinned = ? WHERE id = ?", (int(pinned), conversation_id)
            )

    def pinned_ids(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT id FROM conversations WHERE pinned")}

    def tags(self, conversation_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT tag FROM conversation_tags WHERE conversation_id = ? ORDER BY tag",
            (conversation_id,),
        )
        return [r[0] for r in rows]

    def tags_of(self, conversation_ids: Sequence[str]) -> dict[str, list[str]]:
        """Tags of many conversations at once (the list shows a page at a time)."""
        out: dict[str, list[str]] = {cid: [] for cid in conversation_ids}
        for i in range(0, len(conversation_ids), 500):
            chunk = list(conversation_ids[i : i + 500])
            rows = self._db.execute(
                "SELECT conversation_id, tag FROM conversation_tags WHERE conversation_id IN"
                f" ({', '.join('?' * len(chunk))}) ORDER BY tag",
                chunk,
            )
            for cid, tag in rows:
                out[cid].append(tag)
        return out

    def set_tags(self, conversation_id: str, tags: Sequence[str]) -> list[str]:
        """Replace the conversation's tags; returns them as stored (cleaned, no repeats)."""
        clean: dict[str, str] = {}
        for t in tags:
            t = " ".join(t.split()).lstrip("#").strip()[:40]
            if t:
                clean.setdefault(t.casefold(), t)
        with self.transaction() as db:
            db.execute(
                "DELETE FROM conversation_tags WHERE conversation_id = ?", (conversation_id,)
            )
            db.executemany(
                "INSERT INTO conversation_tags VALUES (?, ?)",
                [(conversation_id, t) for t in clean.values()],
            )
        return self.tags(conversation_id)

    def all_tags(self) -> list[tuple[str, int]]:
        """Every tag in use with how many conversations carry it, by name."""
        rows = self._db.execute(
            "SELECT tag, COUNT(*) FROM conversation_tags GROUP BY tag ORDER BY tag"
        )
        return [(r[0], int(r[1])) for r in rows]

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        return search_index(self._db, text, limit)

    def show_branch_of(self, message_id: str) -> str | None:
        """Make the branch through `message_id` its conversation's current one (keeping the
        current leaf if the message is on it already). Returns the leaf now current."""
        msg = self.get_message(message_id)
        conv = self.get_conversation(msg.conversation_id) if msg else None
        if msg is None or conv is None:
            return None
        leaf = leaf_through(self.messages(conv.id), message_id, conv.current_leaf_id)
        if leaf != conv.current_leaf_id:  # switching branches does not move the chat up
            self.update_conversation(conv.id, current_leaf_id=leaf, updated_at=conv.updated_at)
        return leaf

    def rebuild_search_index(self) -> None:
        """Re-read every title and message into the search index (after a VACUUM that
        renumbered rows, or to repair it)."""
        with self.transaction() as db:
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            db.execute("INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')")

    # -- per-token probabilities (h-inside, issue 10) ---------------------------------

    def save_token_trace(self, message_id: str, trace: TokenTrace) -> None:
        """An answer's tokens with their probabilities (core.logprobs), one blob."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO token_logprobs VALUES (?, ?)"
                " ON CONFLICT(message_id) DO UPDATE SET data = excluded.data",
                (message_id, pack_trace(trace)),
            )

    def token_trace(self, message_id: str) -> TokenTrace | None:
        row = self._db.execute(
            "SELECT data FROM token_logprobs WHERE message_id = ?", (message_id,)
        ).fetchone()
        return unpack_trace(row[0]) if row else None

    def token_traces(self, conversation_id: str) -> dict[str, TokenTrace]:
        rows = self._db.execute(
            "SELECT t.message_id, t.data FROM token_logprobs t"
            " JOIN messages m ON m.id = t.message_id WHERE m.conversation_id = ?",
            (conversation_id,),
        )
        return {r[0]: unpack_trace(r[1]) for r in rows}

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
        """Answers that were still streaming when their process died keep what was saved
        and are marked as stopped; imports whose process died are removed. Answers and
        imports of a process still running (another window, a CLI chat) are left alone.
        Reads first: with nothing to recover, nothing is written. Returns how many answers."""
        t = now()
        rows = self._db.execute(
            "SELECT m.id, l.pid, l.host, l.started, l.heartbeat FROM messages m"
            " LEFT JOIN live_answers l ON l.message_id = m.id"
            " WHERE m.finish_reason = 'streaming'"
        ).fetchall()
        dead = [r[0] for r in rows if r[1] is None or not _alive(r, t)]
        batches = self._db.execute(
            "SELECT id, pid, host, started, heartbeat FROM write_batches"
        ).fetchall()
        for b in batches:
            if not _alive(b, t):
                log.info("an import that did not finish (pid %s) is removed", b[1])
                self._undo_batch(b[0])
        if not dead:
            return 0
        with self.transaction() as db:
            n = 0
            for message_id in dead:
                n += db.execute(
                    "UPDATE messages SET finish_reason = ? WHERE id = ? AND finish_reason = ?",
                    (FinishReason.CANCELLED.value, message_id, FinishReason.STREAMING.value),
                ).rowcount
                db.execute("DELETE FROM live_answers WHERE message_id = ?", (message_id,))
        log.info("recovered %d interrupted answers", n)
        return n


def _drop_conversation(db: sqlite3.Connection, conversation_id: str) -> None:
    """Delete for good; its messages first, replies before what they answer (a cascade
    down a long chat would pass SQLite's 1000 trigger levels and fail)."""
    trash.delete_leaves_first(db, trash.message_ids(db, conversation_id))
    db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))


def _alive(row: sqlite3.Row, t: float) -> bool:
    owner = liveness.Owner(int(row[1]), str(row[2]), str(row[3]))
    return liveness.is_alive(owner, float(row[4]), t)
