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
        """
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


def m007_token_logprobs(db: sqlite3.Connection) -> None:
    """Each answer's generated tokens with their probabilities and top alternatives, raw
    and as sampled (core.logprobs: one packed, compressed blob per answer), kept apart
    from messages like prompt_tokens: only read when a view or an export asks."""
    db.execute(
        "CREATE TABLE token_logprobs ("
        " message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,"
        " data BLOB NOT NULL)"
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", m001_initial),
    ("002_key_value", m002_key_value),
    ("003_prompt_tokens", m003_prompt_tokens),
    ("007_token_logprobs", m007_token_logprobs),  # h-inside (issue 10)
]
