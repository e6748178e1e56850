"""The Store's SQLite connection: waits out a busy database, names a damaged one.

Every statement the Store runs goes through `Connection`, so no caller ever sees a raw
`sqlite3.OperationalError: database is locked` or `database disk image is malformed`:

- Busy: SQLite waits a short `busy_timeout` itself; a statement run outside a
  transaction (reads, and the `BEGIN IMMEDIATE` that starts every write) is then retried
  with a growing pause until `write_timeout` has passed, and only then fails with
  `StoreBusy`. The short polls matter: SQLite's locks are not fair, and a writer that
  commits in batches (imports) leaves only a brief gap between them.
- While it waits, `on_busy` (if set) is told, about once a second, and once more when the
  wait is over, so a window can say what is happening. It runs on the waiting thread.
- Damage (SQLITE_CORRUPT, SQLITE_NOTADB, a table that is gone) raises `DatabaseDamaged`
  and marks the connection: no write is attempted on it again.
- A full disk raises `StoreDiskFull`; other I/O failures a `StoreError`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from chatapp.core.errors import DiskFullError, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10  # SQLite's own wait per attempt: polls at 0, 1, 3, 8, 10 ms
WRITE_TIMEOUT = 30.0  # give up on a write (or read) that has waited this long
NOTIFY_AFTER = 0.3  # tell on_busy once a wait is longer than this
NOTIFY_EVERY = 1.0
_SLEEP_MIN, _SLEEP_MAX = 0.002, 0.01

# SQLite primary result codes (extended codes carry them in the low byte)
_BUSY, _LOCKED, _CORRUPT, _FULL, _IOERR, _READONLY, _CANTOPEN, _NOTADB = 5, 6, 11, 13, 10, 8, 14, 26


class StoreBusy(StoreError):
    """Another program held the database for longer than the Store waits."""


class DatabaseDamaged(StoreError):
    """The database file is malformed or misses tables: nothing is written into it."""


class StoreDiskFull(StoreError, DiskFullError):
    """SQLite could not grow the database: the disk is full."""


@dataclass(frozen=True)
class WriteWait:
    """What `on_busy` hears: the database, how long this statement has waited, and
    whether the wait is over (then `gave_up` says if it failed)."""

    path: Path
    waited: float
    done: bool = False
    gave_up: bool = False

    @property
    def message(self) -> str:
        if not self.done:
            return (
                f"Waiting for the chat database: another program is writing to it "
                f"({self.waited:.0f} s so far)."
            )
        if self.gave_up:
            return f"The chat database stayed busy for {self.waited:.0f} s; nothing was saved."
        return "The chat database is free again."


BusyCallback = Callable[[WriteWait], None]


def damaged_hint() -> str:
    return "Run `chatapp db recover` to keep a copy and recover what can be read into a new file."


def damaged(path: Path, detail: str) -> DatabaseDamaged:
    return DatabaseDamaged(f"The chat database {path} is damaged ({detail}).", hint=damaged_hint())


def _code(e: sqlite3.Error) -> int:
    code = getattr(e, "sqlite_errorcode", None)  # Python 3.11+
    if isinstance(code, int):
        return code & 0xFF
    text = str(e).lower()
    for words, c in (
        ("locked", _BUSY),
        ("busy", _BUSY),
        ("malformed", _CORRUPT),
        ("not a database", _NOTADB),
        ("disk is full", _FULL),
        ("disk i/o", _IOERR),
        ("readonly", _READONLY),
        ("unable to open", _CANTOPEN),
    ):
        if words in text:
            return c
    return 0


def is_busy(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and _code(e) in (_BUSY, _LOCKED)


def translate(e: sqlite3.Error, path: Path) -> Exception | None:
    """The StoreError for a sqlite3 error the user can do something about, or None."""
    code = _code(e)
    text = str(e)
    if code in (_CORRUPT, _NOTADB):
        return damaged(path, text)
    if isinstance(e, sqlite3.OperationalError) and text.startswith("no such table"):
        return damaged(path, text)
    if code == _FULL:
        return StoreDiskFull(f"The disk is full: could not save to the chat database {path}.")
    if code == _IOERR:
        return StoreError(f"Could not read or write the chat database {path} ({text}).")
    if code == _READONLY:
        return StoreError(f"The chat database {path} is read-only ({text}).")
    if code == _CANTOPEN:
        return StoreError(f"Cannot open the chat database {path} ({text}).")
    return None


class Connection(sqlite3.Connection):
    """A sqlite3 connection whose statements wait out a busy database and whose errors
    come out as StoreErrors. Set up by `connect()`."""

    path: Path
    write_timeout: float
    on_busy: BusyCallback | None
    is_damaged: bool

    def cursor(self, factory: Any = None) -> Cursor:  # type: ignore[override]
        return super().cursor(factory or Cursor)

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq: Any, /) -> Cursor:
        return self.cursor().executemany(sql, seq)

    def guarded(self, fn: Callable[[], T]) -> T:
        """Run fn, retrying while the database is busy (outside a transaction only: in
        one, a retry could not undo what already ran), translating errors."""
        start = time.monotonic()
        notified = 0.0
        pause = _SLEEP_MIN
        while True:
            try:
                result = fn()
            except sqlite3.Error as e:
                if is_busy(e) and not self.in_transaction:
                    waited = time.monotonic() - start
                    if waited >= self.write_timeout:
                        self._tell(WriteWait(self.path, waited, done=True, gave_up=True))
                        raise StoreBusy(
                            f"The chat database {self.path} stayed busy for {waited:.0f} s: "
                            "another program is writing to it.",
                            hint="Try again when it is done.",
                        ) from e
                    if waited >= NOTIFY_AFTER and waited - notified >= NOTIFY_EVERY:
                        notified = waited
                        log.info("waiting for the busy database %s (%.1f s)", self.path, waited)
                        self._tell(WriteWait(self.path, waited))
                    time.sleep(pause)
                    pause = min(pause * 1.5, _SLEEP_MAX)
                    continue
                err = translate(e, self.path)
                if err is None:
                    raise
                if isinstance(err, DatabaseDamaged):
                    self.is_damaged = True
                raise err from e
            if notified:
                self._tell(WriteWait(self.path, time.monotonic() - start, done=True))
            return result

    def _tell(self, wait: WriteWait) -> None:
        if self.on_busy is not None:
            try:
                self.on_busy(wait)
            except Exception:  # a listener's bug must not lose the write
                log.exception("on_busy listener failed")


class Cursor(sqlite3.Cursor):
    connection: Connection

    def execute(self, sql: str, parameters: Any = (), /) -> Cursor:
        run = super().execute
        self.connection.guarded(lambda: run(sql, parameters))
        return self

    def executemany(self, sql: str, seq: Any, /) -> Cursor:
        run = super().executemany
        self.connection.guarded(lambda: run(sql, seq))
        return self

    def fetchone(self) -> Any:
        return self.connection.guarded(super().fetchone)

    def fetchall(self) -> list[Any]:
        return self.connection.guarded(super().fetchall)

    def fetchmany(self, size: int | None = None) -> list[Any]:
        fetch = super().fetchmany
        return self.connection.guarded(lambda: fetch(size if size is not None else self.arraysize))

    def __next__(self) -> Any:
        return self.connection.guarded(super().__next__)


def decode_text(raw: bytes) -> str:
    """TEXT values as str; bytes that are not UTF-8 (a damaged or hand-edited row) are
    replaced instead of failing the whole query."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("a text value in the chat database is not valid UTF-8; showing it repaired")
        return raw.decode("utf-8", "replace")


def connect(
    path: Path,
    *,
    write_timeout: float = WRITE_TIMEOUT,
    on_busy: BusyCallback | None = None,
    read_only: bool = False,
) -> Connection:
    target = path.resolve().as_uri() + "?mode=ro" if read_only else str(path)
    try:
        db = sqlite3.connect(target, isolation_level=None, factory=Connection, uri=read_only)
    except sqlite3.Error as e:
        raise translate(e, path) or StoreError(f"Cannot open the chat database {path}: {e}") from e
    assert isinstance(db, Connection)
    db.path = path
    db.write_timeout = write_timeout
    db.on_busy = on_busy
    db.is_damaged = False
    db.row_factory = sqlite3.Row
    db.text_factory = decode_text
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return db
