"""Is the database whole? Checked when a Store opens, before anything is written.

`PRAGMA quick_check` walks every page (it skips only the index-versus-table comparison
of `integrity_check`), so random bytes in a page are found; it reads the file once,
about a second per few hundred MB from the page cache. A dropped table passes it, so the
tables and columns are also compared with what the migrations create.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache

from chatapp.core.store.migrations import Migration


def quick_check(db: sqlite3.Connection, full: bool = False) -> str:
    """ "" when the file is sound, else SQLite's first complaint."""
    rows = db.execute("PRAGMA integrity_check(1)" if full else "PRAGMA quick_check(1)").fetchall()
    first = str(rows[0][0]) if rows else "no answer"
    if first == "ok":
        return ""
    # "*** in database main ***\nPage 84: btreeInitPage() ..." -> one line
    return " ".join(first.replace("*** in database main ***", "").split())


def _tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    names = [
        r[0]
        for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    return {n: {r[1] for r in db.execute(f'PRAGMA table_info("{n}")')} for n in names}


@lru_cache(maxsize=8)
def _expected(migrations: tuple[tuple[str, Migration], ...]) -> dict[str, set[str]]:
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        db.execute("BEGIN")
        for _name, fn in migrations:
            fn(db)
        db.execute("COMMIT")
        return _tables(db)
    finally:
        db.close()


def missing_schema(db: sqlite3.Connection, migrations: Sequence[tuple[str, Migration]]) -> str:
    """ "" when every table and column the applied migrations make is there, else what
    is missing (call it once every migration is applied)."""
    want = _expected(tuple(migrations))
    have = _tables(db)
    for table, cols in sorted(want.items()):
        if table not in have:
            return f"the table {table} is missing"
        lost = sorted(cols - have[table])
        if lost:
            return f"the table {table} lacks the column {lost[0]}"
    return ""
