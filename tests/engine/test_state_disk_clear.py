"""Settings > Speed's operations on the folder of saved KV states (engine.state_disk):
deleting them all between two writes (the writes queued before are dropped, later ones
are written), a new budget taking effect at once (a lower one trims the folder, 0 saves
and restores nothing), and counting the space. No model: states of made-up bytes."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from pathlib import Path

import numpy as np

from chatapp.engine.state_disk import SUFFIX, StateDisk, clear_folder, usage

KEY = {"format": 1, "model": "test"}
N = 64 * 1024  # bytes of state per conversation


def _save(disk: StateDisk, conversation: str, fill: int = 1) -> bool:
    data = (ctypes.c_uint8 * N)(*([fill] * N))
    return disk.save(conversation, np.arange(32, dtype=np.int32), data, N, 32)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(f"*{SUFFIX}"))


def test_clear_deletes_every_state_and_drops_the_queued_writes(tmp_path: Path) -> None:
    disk = StateDisk(tmp_path, KEY, 1 << 30)
    try:
        assert _save(disk, "written")
        disk.flush()
        other = StateDisk(tmp_path, {**KEY, "model": "another"}, 1 << 30)
        assert _save(other, "of another model")
        other.close()
        assert len(_files(tmp_path)) == 2

        # the writer is held (as if writing a file) while two more states are queued
        disk._write_lock.acquire()
        try:
            assert _save(disk, "queued 1") and _save(disk, "queued 2")
            cleared: list[int] = []
            t = threading.Thread(target=lambda: cleared.append(disk.clear()))
            t.start()
            while disk._epoch == 0:  # clear() has begun: it waits for the write lock
                time.sleep(0.001)
        finally:
            disk._write_lock.release()
        t.join()
        disk.flush()
        assert cleared == [2] and _files(tmp_path) == []  # the queued ones never landed

        # the same state again after the delete is written (it is not "already on disk")
        assert _save(disk, "written")
        disk.flush()
        assert _files(tmp_path) == [disk.path_for("written").name]
        assert disk.load("written") is not None
    finally:
        disk.close()


def test_a_new_budget_applies_at_once(tmp_path: Path) -> None:
    disk = StateDisk(tmp_path, KEY, 1 << 30)
    try:
        for i, name in enumerate(("old", "middle", "new")):
            assert _save(disk, name)
            disk.flush()
            os.utime(disk.path_for(name), ns=(i * 10**9, i * 10**9))  # least recent first
        one = disk.path_for("new").stat().st_size
        disk.set_budget(int(one * 2.5))  # room for two: the oldest goes now, not later
        assert _files(tmp_path) == sorted(disk.path_for(n).name for n in ("middle", "new"))

        disk.set_budget(0)  # off: nothing saved or restored, the files stay
        assert not _save(disk, "another")
        assert disk.tokens("new") is None and disk.load("new") is None
        assert len(_files(tmp_path)) == 2
        disk.set_budget(1 << 30)
        assert disk.tokens("new") == list(range(32))
    finally:
        disk.close()


def test_the_space_used_and_the_temporary_files(tmp_path: Path) -> None:
    assert usage(tmp_path / "none yet") == (0, 0) and clear_folder(tmp_path / "none yet") == 0
    disk = StateDisk(tmp_path, KEY, 1 << 30)
    _save(disk, "a")
    _save(disk, "b")
    disk.close()
    n, size = usage(tmp_path)
    assert n == 2 and size == sum(p.stat().st_size for p in tmp_path.iterdir())
    mine = tmp_path / f"x{SUFFIX}.{os.getpid()}.tmp"  # left by this process (a crash)
    writing = tmp_path / f"y{SUFFIX}.999999.tmp"  # another process's write under way
    stale = tmp_path / f"z{SUFFIX}.999998.tmp"  # another process's, an hour old
    for p in (mine, writing, stale):
        p.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert usage(tmp_path) == (2, size + 3 * 7)
    (tmp_path / "notes.txt").write_text("not a state")
    assert clear_folder(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", writing.name]
