"""The database under contention: several processes, one file, nobody loses work.

Real SQLite files and real processes. Waits are bounded only so that a hang fails the
test instead of blocking it; nothing asserts how long anything took.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatapp.core import export, store
from chatapp.core.conversation import Conversation, FinishReason, Message, Role
from chatapp.core.export import importers
from chatapp.core.store import Store, StoreBusy, WriteWait
from chatapp.paths import app_paths

HERE = Path(__file__).resolve().parent
CHILD = HERE / "store_child.py"
RUN_CLI = HERE.parent / "hub" / "run_cli.py"
BOUND = 300  # seconds: a hang fails instead of blocking forever


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def _big_export(dest: Path, conversations: int, messages: int) -> Path:
    """A chatapp JSON zip with conversations x messages (a chain each)."""
    convs = {}
    for i in range(conversations):
        cid = f"c{i:06d}"
        msgs, parent = [], None
        for j in range(messages):
            mid = f"{cid}m{j:04d}"
            role = Role.USER if j % 2 == 0 else Role.ASSISTANT
            msgs.append(Message(mid, cid, parent, role, f"message {j} of {i}. " * 20, 1e9 + j))
            parent = mid
        convs[cid] = (
            Conversation(cid, f"conv {i}", 1e9 + i, 1e9 + i, current_leaf_id=parent),
            msgs,
        )
    return export.export_many(list(convs), convs.__getitem__, "json", dest)


def _holder(path: Path) -> sqlite3.Connection:
    """Another program holding the write lock (BEGIN IMMEDIATE, not committed)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    db.execute("BEGIN IMMEDIATE")
    return db


def test_a_long_import_and_a_streaming_answer_in_two_processes_both_complete(tmp_path):
    db = app_paths().ensure().database
    Store(db).close()
    src = _big_export(tmp_path / "big.zip", 2000, 20)
    importer = subprocess.Popen(
        [sys.executable, str(RUN_CLI), "import", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    streamer = subprocess.run(
        [sys.executable, str(CHILD), str(db), "stream", "100"],
        capture_output=True,
        check=False,
        text=True,
        timeout=BOUND,
    )
    out, err = importer.communicate(timeout=BOUND)
    assert importer.returncode == 0, err
    assert out.strip() == "Imported 2000 conversations (40000 messages)."
    assert streamer.returncode == 0, streamer.stderr
    assert "locked" not in err + streamer.stderr and "Traceback" not in err + streamer.stderr
    seen = json.loads(streamer.stdout)
    # The answer's saves went in between the import's batches: the conversations they
    # saw committed kept growing while the answer streamed. (An import in one
    # transaction would have made the first save wait for all of it.)
    counts = seen["counts"]
    assert counts[0] < 2001 and len(set(counts)) > 1, counts
    with Store(db) as s:
        reply = s.get_message(seen["reply"])
        assert reply is not None and reply.content == seen["text"]
        assert reply.finish_reason is FinishReason.STOP
        assert s.count_conversations() == 2001
        assert s._db.execute("SELECT count(*) FROM write_batches").fetchone()[0] == 0
        assert s._db.execute("SELECT count(*) FROM live_answers").fetchone()[0] == 0
    print(
        f"longest save while importing: {seen['longest_save']:.3f} s; "
        f"import still running at the end of the answer: {seen['import_still_running']}"
    )


def test_a_write_waits_for_a_short_lock_and_says_so(tmp_path):
    path = tmp_path / "db.sqlite3"
    heard: list[WriteWait] = []
    told = threading.Event()

    def on_busy(w: WriteWait) -> None:
        heard.append(w)
        told.set()

    s = Store(path, on_busy=on_busy)
    conv = s.create_conversation("t")
    holder = _holder(path)

    def release_once_told() -> None:
        told.wait(BOUND)
        holder.execute("COMMIT")

    t = threading.Thread(target=release_once_told)
    t.start()
    msg = s.add_message(conv.id, Role.USER, "saved after the wait")
    t.join(BOUND)
    assert s.get_message(msg.id) is not None
    assert not heard[0].done and "another program is writing" in heard[0].message
    assert heard[-1].done and not heard[-1].gave_up
    s.close()
    holder.close()


def test_a_write_that_cannot_happen_is_a_clear_store_error(tmp_path):
    path = tmp_path / "db.sqlite3"
    heard: list[WriteWait] = []
    s = Store(path, on_busy=heard.append, write_timeout=1.0)
    conv = s.create_conversation("t")
    holder = _holder(path)
    with pytest.raises(StoreBusy) as info:
        s.add_message(conv.id, Role.USER, "never saved")
    assert str(info.value) == (
        f"The chat database {path} stayed busy for 1 s: another program is writing to it. "
        "Try again when it is done."
    )
    assert heard and heard[-1].gave_up
    holder.execute("ROLLBACK")
    assert s.active_thread(conv.id) == []  # nothing half-written
    s.add_message(conv.id, Role.USER, "later it works")  # the Store is still usable
    s.close()
    holder.close()


def test_a_start_reads_first_and_leaves_a_live_answer_alone(tmp_path):
    """`chatapp conversations` while another program holds the write lock and another
    process (this one) is streaming an answer: it lists, writes nothing, and the answer
    stays streaming."""
    db = app_paths().ensure().database
    with Store(db) as s:
        conv = s.create_conversation("live one")
        user = s.add_message(conv.id, Role.USER, "q")
        live = s.add_message(
            conv.id,
            Role.ASSISTANT,
            "so far",
            parent_id=user.id,
            finish_reason=FinishReason.STREAMING,
        )
    holder = _holder(db)
    try:
        r = _cli("conversations")
        assert r.returncode == 0, r.stderr
        assert "live one" in r.stdout
        r = _cli("conversations", conv.id)
        assert r.returncode == 0, r.stderr
        assert "so far" in r.stdout
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = _cli("conversations")  # free to write now: still nothing to recover
    assert r.returncode == 0, r.stderr
    with Store(db) as s:
        assert s.get_message(live.id).finish_reason is FinishReason.STREAMING  # type: ignore[union-attr]


def test_a_start_recovers_an_answer_whose_process_died(tmp_path):
    db = app_paths().ensure().database
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=False,
        timeout=BOUND,
    )
    dead_pid = int(dead.stdout)
    with Store(db) as s:
        conv = s.create_conversation("t")
        user = s.add_message(conv.id, Role.USER, "q")
        mine = s.add_message(
            conv.id, Role.ASSISTANT, "a", parent_id=user.id, finish_reason=FinishReason.STREAMING
        )
        gone = s.add_message(
            conv.id, Role.ASSISTANT, "b", parent_id=user.id, finish_reason=FinishReason.STREAMING
        )
        s._db.execute("UPDATE live_answers SET pid = ? WHERE message_id = ?", (dead_pid, gone.id))
        # a streaming row from before live_answers existed: no owner, so interrupted
        old = s.add_message(conv.id, Role.ASSISTANT, "c", parent_id=user.id)
        s._db.execute("UPDATE messages SET finish_reason = 'streaming' WHERE id = ?", (old.id,))
    r = _cli("conversations")
    assert r.returncode == 0, r.stderr
    with Store(db) as s:
        assert s.get_message(mine.id).finish_reason is FinishReason.STREAMING  # type: ignore[union-attr]
        assert s.get_message(gone.id).finish_reason is FinishReason.CANCELLED  # type: ignore[union-attr]
        assert s.get_message(old.id).finish_reason is FinishReason.CANCELLED  # type: ignore[union-attr]
        assert s.get_message(gone.id).content == "b"  # type: ignore[union-attr]


def test_a_recycled_pid_is_not_mistaken_for_the_writer(tmp_path):
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("process start times are read from /proc")
    with Store(tmp_path / "db.sqlite3") as s:
        conv = s.create_conversation("t")
        m = s.add_message(conv.id, Role.ASSISTANT, "x", finish_reason=FinishReason.STREAMING)
        # this very pid, but a process that started at another time
        s._db.execute("UPDATE live_answers SET started = 'earlier' WHERE message_id = ?", (m.id,))
        assert s.recover_interrupted() == 1


def test_a_failed_batched_import_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "BATCH_SECONDS", 0.0)  # commit after every write
    monkeypatch.setattr(store, "BATCH_PAUSE", 0.0)
    src = _big_export(tmp_path / "some.zip", 30, 4)
    path = tmp_path / "db.sqlite3"
    with Store(path) as s:
        keep = s.create_conversation("mine")
        other = sqlite3.connect(path)  # sees only what is committed

        def progress(done: int, total: int) -> None:
            if other.execute("SELECT count(*) FROM conversations").fetchone()[0] > 10:
                raise KeyboardInterrupt  # batches really were committed before this

        with pytest.raises(KeyboardInterrupt):
            importers.import_file(s, src, progress=progress)
        assert [c.id for c in s.list_conversations()] == [keep.id]
        assert s._db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert s._db.execute("SELECT count(*) FROM write_batches").fetchone()[0] == 0
        other.close()


def test_an_import_killed_midway_is_removed_at_the_next_start(tmp_path):
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        keep = s.create_conversation("mine")
    src = _big_export(tmp_path / "some.zip", 30, 4)
    r = subprocess.run(
        [sys.executable, str(CHILD), str(db), "import", str(src), "12"],
        capture_output=True,
        check=False,
        text=True,
        timeout=BOUND,
    )
    assert r.returncode == 9, r.stderr
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT count(*) FROM conversations").fetchone()[0] > 1  # committed
    raw.close()
    with Store(db) as s:
        s.recover_interrupted()
        assert [c.id for c in s.list_conversations()] == [keep.id]
        assert s._db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
        assert s._db.execute("SELECT count(*) FROM write_batches").fetchone()[0] == 0
