"""Recover what SQLite can still read from a damaged chat database into a new file.

The damaged file is never written: it is copied (with its WAL) into a scratch folder and
read from there, row by row; a row or a run of rows that cannot be read is skipped by
seeking past it. The rows go into a fresh database made by the normal migrations, links
that point at lost rows are repaired (a lost parent message makes its replies a new
root; a lost current message points the conversation at its newest one), answers that
were streaming are marked stopped. Then the damaged file is renamed aside (kept, never
deleted) and the new file takes its place.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chatapp.core.errors import DiskFullError, StoreError
from chatapp.core.store import Store

log = logging.getLogger(__name__)

# Bookkeeping that means nothing in a new file (who was writing what) is not copied.
_SKIP = {"_migrations", "live_answers", "write_batches", "write_batch_rows"}
_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass
class Recovery:
    kept_copy: Path  # the damaged file, renamed aside
    database: Path  # the new file, at the old path
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows recovered
    lost_tables: list[str] = field(default_factory=list)  # tables nothing could be read from
    unreadable: int = 0  # stretches of rows that could not be read

    def summary(self) -> str:
        conv = self.rows.get("conversations", 0)
        msgs = self.rows.get("messages", 0)
        lost = (
            f"; nothing could be read from {', '.join(self.lost_tables)}"
            if self.lost_tables
            else ""
        )
        return (
            f"Recovered {conv} conversation(s) and {msgs} message(s) into {self.database}; "
            f"the damaged file is kept as {self.kept_copy}{lost}."
        )


def damaged_copy_path(path: Path, when: float | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when or time.time()))
    candidate = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.damaged-{stamp}-{n}{path.suffix}")
    return candidate


def recover(path: Path | str) -> Recovery:
    """Recover the database at `path` in place (the damaged file is renamed aside)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"There is no chat database at {path}.")
    scratch = Path(tempfile.mkdtemp(prefix=f".{path.name}.recover-", dir=path.parent))
    try:
        snapshot = scratch / path.name
        for suffix in ("", *_SIDE_FILES[:1]):
            src = Path(str(path) + suffix)
            if src.exists():
                shutil.copyfile(src, str(snapshot) + suffix)
        new = scratch / "recovered.db"
        result = Recovery(kept_copy=damaged_copy_path(path), database=path)
        with Store(new, check=False) as store:
            _copy_rows(snapshot, store, result)
        _swap(path, new, result.kept_copy)
    except OSError as e:
        if getattr(e, "errno", None) == 28:
            raise DiskFullError(f"The disk is full: could not recover {path}.") from e
        raise StoreError(f"Could not recover {path}: {e.strerror or e}") from e
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("%s", result.summary())
    return result


def _swap(path: Path, new: Path, kept: Path) -> None:
    with open(new, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(path, kept)
    for suffix in _SIDE_FILES:
        side = Path(str(path) + suffix)
        if side.exists():
            os.replace(side, Path(str(kept) + suffix))
    os.replace(new, path)


def _copy_rows(snapshot: Path, store: Store, result: Recovery) -> None:
    src = sqlite3.connect(str(snapshot), isolation_level=None)
    src.text_factory = lambda b: b.decode("utf-8", "replace")  # garbled rows: keep them quiet
    dst = store._db
    try:
        dst.execute("PRAGMA foreign_keys=OFF")
        targets = _tables(dst)
        try:
            have = set(_tables(src))
        except sqlite3.DatabaseError as e:
            log.warning("the schema of the damaged database cannot be read: %s", e)
            have = set()
        order = ["conversations", "messages", *sorted(set(targets) - {"conversations", "messages"})]
        for table in order:
            if table not in targets or table in _SKIP:
                continue
            if table not in have:
                result.lost_tables.append(table)
                continue
            cols = [c for c in targets[table] if c in _columns(src, table)]
            n = _copy_table(src, dst, table, cols, result)
            result.rows[table] = n
            if n == 0 and _rows_claimed(src, table):
                result.lost_tables.append(table)
        _repair_links(dst)
        dst.execute("PRAGMA foreign_keys=ON")
    finally:
        src.close()


def _tables(db: sqlite3.Connection) -> dict[str, list[str]]:
    """Ordinary tables (not virtual tables or their shadow tables) and their columns."""
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
    virtual = [n for n, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
    out = {}
    for name, _sql in rows:
        if name.startswith("sqlite_") or name in virtual:
            continue
        if any(name.startswith(v + "_") for v in virtual):
            continue
        out[name] = _columns(db, name)
    return out


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    try:
        return [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]
    except sqlite3.DatabaseError:
        return []


def _rows_claimed(db: sqlite3.Connection, table: str) -> bool:
    try:
        return db.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() is not None
    except sqlite3.DatabaseError:
        return True


def _copy_table(
    src: sqlite3.Connection, dst: sqlite3.Connection, table: str, cols: list[str], result: Recovery
) -> int:
    if not cols:
        return 0
    names = ", ".join(f'"{c}"' for c in cols)
    insert = f'INSERT OR IGNORE INTO "{table}" ({names}) VALUES ({", ".join("?" * len(cols))})'
    streaming = cols.index("finish_reason") if table == "messages" else -1
    n = 0
    dst.execute("BEGIN")
    for row in _salvage(src, table, names, result):
        values = list(row)
        if streaming >= 0 and values[streaming] == "streaming":
            values[streaming] = "cancelled"
        try:
            n += dst.execute(insert, values).rowcount
        except sqlite3.Error as e:  # a value the new schema refuses: that row is lost
            log.warning("recover: a row of %s is not kept: %s", table, e)
    dst.execute("COMMIT")
    return n


def _salvage(
    src: sqlite3.Connection, table: str, names: str, result: Recovery
) -> Iterator[tuple[object, ...]]:
    """Every readable row in rowid order. Past a row that cannot be read, look for the
    next one that can, stepping ahead in growing steps; every turn either yields a row
    further on or doubles the step, so this ends."""
    query = f'SELECT rowid, {names} FROM "{table}" WHERE rowid > ? ORDER BY rowid'
    probe_q = f'SELECT rowid, {names} FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1'
    last = -(2**63)
    step = 1
    while True:
        try:
            for row in src.execute(query, (last,)):
                last, step = row[0], 1
                yield tuple(row[1:])
            return
        except sqlite3.DatabaseError as e:
            if step == 1:
                log.warning("recover: rows of %s after rowid %d cannot be read: %s", table, last, e)
                result.unreadable += 1
        while True:
            probe = last + step
            if probe >= 2**63 - 1:
                return
            try:
                hit = src.execute(probe_q, (probe,)).fetchone()
            except sqlite3.DatabaseError:
                step *= 2
                continue
            if hit is None:
                return
            last = hit[0]
            step *= 2  # if the scan fails again right here, look further next time
            yield tuple(hit[1:])
            break


def _repair_links(db: sqlite3.Connection) -> None:
    db.execute("BEGIN")
    # messages of a conversation that was lost get a conversation again
    db.execute(
        "INSERT INTO conversations (id, title, created_at, updated_at)"
        " SELECT conversation_id, 'Recovered conversation', min(created_at), max(created_at)"
        " FROM messages WHERE conversation_id NOT IN (SELECT id FROM conversations)"
        " GROUP BY conversation_id"
    )
    db.execute(
        "UPDATE messages SET parent_id = NULL WHERE parent_id IS NOT NULL"
        " AND parent_id NOT IN (SELECT id FROM messages)"
    )
    db.execute(
        "UPDATE conversations SET current_leaf_id = (SELECT id FROM messages m"
        " WHERE m.conversation_id = conversations.id ORDER BY created_at DESC, rowid DESC LIMIT 1)"
        " WHERE current_leaf_id IS NULL OR current_leaf_id NOT IN (SELECT id FROM messages)"
    )
    # any other table (tags, pins ...) loses rows that point at nothing
    for row in db.execute("PRAGMA foreign_key_check").fetchall():
        db.execute(f'DELETE FROM "{row[0]}" WHERE rowid = ?', (row[1],))
    db.execute("COMMIT")
