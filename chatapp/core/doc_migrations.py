"""Append-only, named migrations of the documents index (documents.sqlite3), recorded in
its `_migrations` table like the chat database's (core/migrations.py). Never edit a
shipped migration: add one at the end."""

from __future__ import annotations

import sqlite3

from chatapp.core.store.migrations import Migration, _script

_TRIGGERS = (
    """CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
    END""",
    """CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
        VALUES ('delete', old.id, old.text, old.heading);
    END""",
)


def m001_documents(db: sqlite3.Connection) -> None:
    _script(
        db,
        """
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            paths TEXT NOT NULL DEFAULT '[]',
            embedding_model TEXT NOT NULL DEFAULT '',
            embedding_sha TEXT NOT NULL DEFAULT '',
            dim INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            indexed_at REAL,
            report TEXT NOT NULL DEFAULT '[]',
            version INTEGER NOT NULL DEFAULT 0  -- bumped on every change to its chunks
        );
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            kind TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime REAL NOT NULL,
            sha256 TEXT NOT NULL,
            embedding_model TEXT NOT NULL DEFAULT '',
            indexed_at REAL NOT NULL,
            UNIQUE (collection_id, path)
        );
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            page INTEGER,
            heading TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL,
            vector BLOB
        );
        CREATE INDEX chunks_file ON chunks(file_id, ordinal);
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, heading, content='chunks', content_rowid='id', tokenize='porter unicode61'
        );
        CREATE VIRTUAL TABLE chunks_vocab USING fts5vocab(chunks_fts, 'row')
        """,
    )
    for trigger in _TRIGGERS:  # (a trigger's body has semicolons of its own)
        db.execute(trigger)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_documents", m001_documents),
]
