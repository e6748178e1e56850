"""Append-only, named schema migrations.

Each migration runs once, inside a transaction, and is recorded in the `_migrations`
table. Never edit or reorder a migration that has shipped: add a new one at the end.
A database that records a migration this code does not know was written by a newer
chatapp, and is refused rather than risked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = Callable[[sqlite3.Connection], None]


def _script(db: sqlite3.Connection, sql: str) -> None:
    # executescript() would COMMIT the surrounding transaction; run statement by statement.
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def m001_initial(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model_path TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            current_leaf_id TEXT,
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX conversations_updated ON conversations(updated_at DESC);
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id TEXT REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL,
            thinking TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            model TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            tokens_per_second REAL,
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX messages_conversation ON messages(conversation_id, created_at);
        CREATE INDEX messages_parent ON messages(parent_id);
        """,
    )


def m002_key_value(db: sqlite3.Connection) -> None:
    """Small app state that belongs with the data (e.g. the last model used)."""
    db.execute("CREATE TABLE app_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def m003_prompt_tokens(db: sqlite3.Connection) -> None:
    """The token ids each answer's prompt was (zlib-compressed little-endian int32), so a
    receipt can be checked token by token. Kept apart from messages: only read on demand."""
    db.execute(
        "CREATE TABLE prompt_tokens ("
        " message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
        " tokens BLOB NOT NULL)"
    )


def m006_live_writers(db: sqlite3.Connection) -> None:
    """Who is writing what, so a start recovers only work whose process is gone: answers
    being streamed (with a heartbeat) and imports that commit in batches (their
    conversations are removed again if the import never finished)."""
    _script(
        db,
        """
        CREATE TABLE live_answers (
            message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started TEXT NOT NULL,
            heartbeat REAL NOT NULL
        );
        CREATE TABLE write_batches (
            id TEXT PRIMARY KEY,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            started TEXT NOT NULL,
            heartbeat REAL NOT NULL
        );
        CREATE TABLE write_batch_rows (
            batch_id TEXT NOT NULL REFERENCES write_batches(id) ON DELETE CASCADE,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            PRIMARY KEY (batch_id, conversation_id)
        );
        CREATE INDEX write_batch_rows_conversation ON write_batch_rows(conversation_id);
        CREATE INDEX messages_streaming ON messages(id) WHERE finish_reason = 'streaming'
        """,
    )


_TOKENIZE = "tokenize = 'unicode61 remove_diacritics 2'"


def m004_search_index(db: sqlite3.Connection) -> None:
    """FTS5 over titles and messages (content and thinking), indexing the rows already
    there. External-content tables: the text is stored once, in its own table; triggers
    keep the index in step. The update trigger runs only when the text changed, so a
    streaming answer's saves (every 0.5 s) reindex that one message and nothing else.
    Prefix indexes for 2 and 3 characters keep search-as-you-type fast ("th*" over
    200,000 messages: 150 ms without, under 1 ms with; the index grows about 2.4 times)."""
    statements = [
        (
            "CREATE VIRTUAL TABLE messages_fts USING fts5(content, thinking,"
            f" content='messages', content_rowid='rowid', {_TOKENIZE}, prefix='2 3')"
        ),
        (
            "CREATE VIRTUAL TABLE conversations_fts USING fts5(title,"
            f" content='conversations', content_rowid='rowid', {_TOKENIZE})"
        ),
        # a hit in the answer counts for more than one in its reasoning
        "INSERT INTO messages_fts(messages_fts, rank) VALUES ('rank', 'bm25(1.0, 0.4)')",
        """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content, thinking)
            VALUES (new.rowid, new.content, new.thinking);
        END""",
        """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, thinking)
            VALUES ('delete', old.rowid, old.content, old.thinking);
        END""",
        """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, thinking ON messages
        WHEN old.content IS NOT new.content OR old.thinking IS NOT new.thinking BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content, thinking)
            VALUES ('delete', old.rowid, old.content, old.thinking);
            INSERT INTO messages_fts(rowid, content, thinking)
            VALUES (new.rowid, new.content, new.thinking);
        END""",
        """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
            INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, new.title);
        END""",
        """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
            INSERT INTO conversations_fts(conversations_fts, rowid, title)
            VALUES ('delete', old.rowid, old.title);
        END""",
        """CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations
        WHEN old.title IS NOT new.title BEGIN
            INSERT INTO conversations_fts(conversations_fts, rowid, title)
            VALUES ('delete', old.rowid, old.title);
            INSERT INTO conversations_fts(rowid, title) VALUES (new.rowid, new.title);
        END""",
        # the rows already there
        "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
        "INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')",
    ]
    for statement in statements:
        db.execute(statement)


def m005_pins_and_tags(db: sqlite3.Connection) -> None:
    """Pinned conversations stay on top of the list; tags group them."""
    _script(
        db,
        """
        ALTER TABLE conversations ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE conversation_tags (
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            tag TEXT NOT NULL COLLATE NOCASE,
            PRIMARY KEY (conversation_id, tag)
        ) WITHOUT ROWID;
        CREATE INDEX conversation_tags_tag ON conversation_tags(tag, conversation_id);
        CREATE INDEX conversations_pinned ON conversations(pinned DESC, updated_at DESC);
        """,
    )


def m007_token_logprobs(db: sqlite3.Connection) -> None:
    """Each answer's generated tokens with their probabilities and top alternatives, raw
    and as sampled (core.logprobs: one packed, compressed blob per answer), kept apart
    from messages like prompt_tokens: only read when a view or an export asks."""
    db.execute(
        "CREATE TABLE token_logprobs ("
        " message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
        " data BLOB NOT NULL)"
    )


def m008_trash(db: sqlite3.Connection) -> None:
    """Deleted chats and messages wait here until the user restores them or empties the
    trash (core.trash). A delete moves the rows out of the live tables, so every list,
    search, export and the API stop seeing them with no filter of their own; `trash`
    says what was deleted, the trash_* tables hold the rows as they were, token traces,
    prompt token ids and tags included. A later migration that adds a column to a live
    table adds it to its trash_* copy too (the copy moves the columns both have)."""
    _script(
        db,
        """
        CREATE TABLE trash (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('conversation', 'messages')),
            conversation_id TEXT NOT NULL,
            message_id TEXT,
            title TEXT NOT NULL,
            preview TEXT NOT NULL DEFAULT '',
            message_count INTEGER NOT NULL,
            deleted_at REAL NOT NULL,
            leaf_before TEXT,
            leaf_after TEXT
        );
        CREATE INDEX trash_deleted ON trash(deleted_at DESC);
        CREATE INDEX trash_conversation ON trash(conversation_id);
        CREATE TABLE trash_conversations (
            trash_id TEXT NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
            id TEXT NOT NULL,
            title TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            model_path TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            current_leaf_id TEXT,
            meta TEXT NOT NULL DEFAULT '{}',
            pinned INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX trash_conversations_trash ON trash_conversations(trash_id);
        CREATE TABLE trash_messages (
            trash_id TEXT NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            id TEXT NOT NULL,
            conversation_id TEXT NOT NULL,
            parent_id TEXT,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            thinking TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            model TEXT,
            finish_reason TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            tokens_per_second REAL,
            meta TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX trash_messages_trash ON trash_messages(trash_id, seq);
        CREATE TABLE trash_prompt_tokens (
            trash_id TEXT NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
            message_id TEXT NOT NULL,
            tokens BLOB NOT NULL
        );
        CREATE INDEX trash_prompt_tokens_trash ON trash_prompt_tokens(trash_id);
        CREATE TABLE trash_token_logprobs (
            trash_id TEXT NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
            message_id TEXT NOT NULL,
            data BLOB NOT NULL
        );
        CREATE INDEX trash_token_logprobs_trash ON trash_token_logprobs(trash_id);
        CREATE TABLE trash_conversation_tags (
            trash_id TEXT NOT NULL REFERENCES trash(id) ON DELETE CASCADE,
            conversation_id TEXT NOT NULL,
            tag TEXT NOT NULL
        );
        CREATE INDEX trash_conversation_tags_trash ON trash_conversation_tags(trash_id)
        """,
    )


def m009_tool_role(db: sqlite3.Connection) -> None:
    """Messages may have the role 'tool' (a tool's result, answering the call in its
    parent). Only the CHECK constraint changes, and it does not touch the file format,
    so the table's definition is edited in place (SQLite's documented way for such a
    change: writable_schema, then a new schema_version) instead of copying every row."""
    old = "CHECK (role IN ('system', 'user', 'assistant'))"
    new = "CHECK (role IN ('system', 'user', 'assistant', 'tool'))"
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
    ).fetchone()
    if row is None or old not in row[0]:
        return
    version = db.execute("PRAGMA schema_version").fetchone()[0]
    db.execute("PRAGMA writable_schema = ON")
    try:
        db.execute(
            "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'messages'",
            (row[0].replace(old, new),),
        )
        db.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        db.execute("PRAGMA writable_schema = OFF")


def m010_images(db: sqlite3.Connection) -> None:
    """Images in messages (core.images): each stored once, under the sha256 of its bytes;
    a message names its images in meta["images"] (hash, format, size), so a message
    moved to the trash and back keeps them."""
    db.execute(
        """
        CREATE TABLE images (
            sha256 TEXT PRIMARY KEY CHECK (length(sha256) = 64),
            mime TEXT NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        )
        """
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", m001_initial),
    ("002_key_value", m002_key_value),
    ("003_prompt_tokens", m003_prompt_tokens),
    ("004_search_index", m004_search_index),
    ("005_pins_and_tags", m005_pins_and_tags),
    ("006_live_writers", m006_live_writers),
    ("007_token_logprobs", m007_token_logprobs),
    ("008_trash", m008_trash),
    ("009_tool_role", m009_tool_role),
    ("010_images", m010_images),
]
