"""A damaged database: named in one line, never written, recovered into a new file on
request; a bad value in one row never breaks reading the rest. Real SQLite files, damaged
the way disks and hand edits damage them, at fixed seeds; the CLI in a new process."""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core import export
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import DatabaseDamaged, Store
from chatapp.core.store import recover as db_recover
from chatapp.paths import app_paths
from tests.golden.sample import sample

RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
PAGE = 4096


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _fill(path: Path, conversations: int = 60, messages: int = 12) -> list[str]:
    ids = []
    with Store(path) as s:
        for i in range(conversations):
            conv = s.create_conversation(f"conversation {i}")
            parent = None
            for j in range(messages):
                role = Role.USER if j % 2 == 0 else Role.ASSISTANT
                parent = s.add_message(conv.id, role, f"text {i}.{j} " * 40, parent_id=parent).id
            ids.append(conv.id)
        s.set_state("last_model", "/models/x.gguf")
    return ids


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _table_pages(path: Path, table: str) -> list[int]:
    """Page numbers of a table's b-tree (from the dbstat virtual table)."""
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno", (table,))
        return [r[0] for r in rows]
    finally:
        db.close()


def _smash_page(path: Path, pageno: int, seed: int) -> None:
    data = bytearray(path.read_bytes())
    rnd = random.Random(seed)
    start = (pageno - 1) * PAGE
    data[start : start + PAGE] = rnd.randbytes(PAGE)
    path.write_bytes(bytes(data))


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.fixture
def db() -> Path:
    return app_paths().ensure().database


def test_random_bytes_in_a_page_are_named_never_written_and_recovered(
    db: Path, tmp_path: Path
) -> None:
    ids = _fill(db)
    pages = _table_pages(db, "messages")
    smashed = pages[len(pages) // 2]
    _smash_page(db, smashed, seed=1313)
    before = _digest(db)
    r = _cli("export", ids[0], "-f", "json", "-o", str(tmp_path / "one.json"))
    assert _one_error_line(r) == (
        f"chatapp: error: The chat database {db} is damaged (Page {smashed}: btreeInitPage()"
        " returns error code 11). Run `chatapp db recover` to keep a copy and recover what can"
        " be read into a new file."
    )
    assert not (tmp_path / "one.json").exists()
    for args in (
        ["conversations"],
        ["conversations", ids[0]],
        ["export", "--all", "-o", str(tmp_path / "all.zip")],
        ["db", "check"],
    ):
        line = _one_error_line(_cli(*args))
        assert f"The chat database {db} is damaged" in line and "chatapp db recover" in line
    # an import would write: it is refused, and the file is untouched
    (tmp_path / "c.json").write_text(export.to_json(*sample()), encoding="utf-8")
    assert "is damaged" in _one_error_line(_cli("import", str(tmp_path / "c.json")))
    assert _digest(db) == before
    assert not list(db.parent.glob("*.damaged-*"))  # nothing recovered unless asked
    names = sorted(p.name for p in db.parent.iterdir())
    # besides the file: the read-only check's shared-memory index and an empty WAL
    assert names == ["chatapp.sqlite3", "chatapp.sqlite3-shm", "chatapp.sqlite3-wal"]
    assert Path(f"{db}-wal").stat().st_size == 0

    r = _cli("db", "recover")
    assert r.returncode == 0, r.stderr
    kept = list(db.parent.glob("chatapp.damaged-*.sqlite3"))
    assert len(kept) == 1 and _digest(kept[0]) == before  # the damaged file, as it was
    assert r.stdout.startswith("Recovered 60 conversation(s) and ")
    assert f"the damaged file is kept as {kept[0]}" in r.stdout

    with Store(db) as s:  # a sound file again
        assert s.count_conversations() == 60
        n = s._db.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert 0 < n < 60 * 12  # one page of messages is gone, the rest is there
        assert s.get_state("last_model") == "/models/x.gguf"
        for cid in ids:  # every conversation still shows a thread that hangs together
            conv = s.get_conversation(cid)
            assert conv is not None
            branch = s.active_thread(cid)
            assert branch and branch[-1].id == conv.current_leaf_id
    assert _cli("db", "check").returncode == 0
    r = _cli("conversations", ids[-1])
    assert r.returncode == 0 and "text 59.11" in r.stdout


def test_a_dropped_table_is_named_and_recovered(db: Path) -> None:
    ids = _fill(db, conversations=5, messages=4)
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute("DROP TABLE messages")
    raw.commit()
    raw.close()
    before = _digest(db)
    line = _one_error_line(_cli("conversations"))
    assert line.startswith(
        f"chatapp: error: The chat database {db} is damaged (the table messages is missing)."
    )
    assert _digest(db) == before
    r = _cli("db", "recover")
    assert r.returncode == 0, r.stderr
    assert "Recovered 5 conversation(s) and 0 message(s)" in r.stdout
    assert "nothing could be read from messages" in r.stdout
    r = _cli("conversations")
    assert r.returncode == 0 and all(f"conversation {i}" in r.stdout for i in range(5))
    with Store(db) as s:
        assert [s.get_conversation(i).current_leaf_id for i in ids] == [None] * 5  # type: ignore[union-attr]


@pytest.mark.parametrize("table", ["_migrations", "app_state", "conversations"])
def test_any_dropped_table_is_named_and_nothing_is_written(tmp_path: Path, table: str) -> None:
    path = tmp_path / "db.sqlite3"
    _fill(path, conversations=2, messages=2)
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute(f"DROP TABLE {table}")
    raw.commit()
    raw.close()
    before = _digest(path)
    with pytest.raises(DatabaseDamaged) as info:
        Store(path)
    assert str(info.value).startswith(
        f"The chat database {path} is damaged (the table {table} is missing)."
    )
    assert _digest(path) == before


def test_a_file_that_is_not_a_database_at_all(db: Path) -> None:
    _fill(db, conversations=2, messages=2)
    _smash_page(db, 1, seed=7)  # the header and the schema
    line = _one_error_line(_cli("conversations"))
    assert "is damaged" in line and str(db) in line
    r = _cli("db", "recover")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Recovered 0 conversation(s) and 0 message(s)")
    assert _cli("conversations").returncode == 0  # an empty, working database


def test_the_store_refuses_to_write_once_damage_shows_up(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    _fill(path, conversations=30, messages=6)
    with pytest.raises(DatabaseDamaged):
        pages = _table_pages(path, "messages")
        _smash_page(path, pages[len(pages) // 2], seed=99)
        Store(path)
    # opened without the check, the damage is met while reading: from then on no writes
    s = Store(path, check=False)
    with pytest.raises(DatabaseDamaged):
        s._db.execute("SELECT content FROM messages").fetchall()
    before = _digest(path)
    with pytest.raises(DatabaseDamaged, match="nothing more is written"):
        s.create_conversation("no")
    s.close()
    assert _digest(path) == before


def test_bad_values_in_one_row_fall_back_and_the_rest_reads(db: Path, tmp_path: Path) -> None:
    with Store(db) as s:
        conv = s.create_conversation("bad rows", meta={"ok": True})
        u = s.add_message(conv.id, Role.USER, "fine question")
        a = s.add_message(
            conv.id, Role.ASSISTANT, "fine answer", parent_id=u.id, finish_reason=FinishReason.STOP
        )
        b = s.add_message(conv.id, Role.ASSISTANT, "odd", parent_id=a.id)
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA ignore_check_constraints=ON")
    raw.execute("UPDATE conversations SET meta = '{broken' WHERE id = ?", (conv.id,))
    raw.execute(
        "UPDATE messages SET meta = '[1, 2]', finish_reason = 'exploded' WHERE id = ?", (a.id,)
    )
    raw.execute("UPDATE messages SET role = 'robot', prompt_tokens = 'many' WHERE id = ?", (b.id,))
    raw.execute("UPDATE messages SET content = CAST(x'66ff6f' AS TEXT) WHERE id = ?", (u.id,))
    raw.commit()
    raw.close()

    r = _cli("conversations", conv.id)
    assert r.returncode == 0, r.stderr
    assert "[user]\nf\ufffdo" in r.stdout and "fine answer" in r.stdout and "odd" in r.stdout
    out = tmp_path / "bad.json"
    r = _cli("export", conv.id, "-f", "json", "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [m["content"] for m in doc["messages"]] == ["f\ufffdo", "fine answer", "odd"]
    assert _cli("export", "--all", "-o", str(tmp_path / "all.zip")).returncode == 0
    with Store(db) as s:
        assert s.get_conversation(conv.id).meta == {}  # type: ignore[union-attr]
        got = {m.id: m for m in s.messages(conv.id)}
        assert got[a.id].finish_reason is None and got[a.id].meta == {}
        assert got[b.id].role is Role.USER and got[b.id].prompt_tokens is None
    log = (app_paths().logs / "chatapp.log").read_text()
    assert f"finish_reason of row {a.id} has a bad value 'exploded'" in log
    assert f"role of row {b.id} has a bad value 'robot'" in log


def test_recover_keeps_a_copy_even_of_a_sound_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    ids = _fill(path, conversations=3, messages=3)
    result = db_recover.recover(path)
    assert result.kept_copy.exists() and result.rows["conversations"] == 3
    assert result.rows["messages"] == 9 and not result.lost_tables
    with Store(path) as s:
        assert [m.content for m in s.active_thread(ids[1])][-1].startswith("text 1.2")
