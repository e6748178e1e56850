"""A full disk under the database: a clear StoreDiskFull (a DiskFullError), everything
committed before it intact, the Store still usable. A real 1 MB tmpfs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core.conversation import Role
from chatapp.core.errors import DiskFullError
from chatapp.core.store import Store, StoreDiskFull
from tests.tmpfs import small_tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs (needs root, as in the CI container; skipped elsewhere)."""
    with small_tmpfs(tmp_path, "1m") as mnt:
        yield mnt


def test_a_full_disk_is_a_clear_error_and_loses_nothing_saved(small_disk: Path) -> None:
    path = small_disk / "db.sqlite3"
    with Store(path) as s:
        conv = s.create_conversation("t")
        saved = []
        with pytest.raises(StoreDiskFull) as info:
            for i in range(10_000):
                saved.append(s.add_message(conv.id, Role.USER, f"{i} " + "x" * 2000).id)
        assert isinstance(info.value, DiskFullError)
        assert str(info.value) == f"The disk is full: could not save to the chat database {path}."
        assert len(saved) > 10
        assert [m.id for m in s.messages(conv.id)] == saved  # every committed message is there
    with Store(path) as again:  # and after a restart, too
        assert [m.id for m in again.messages(conv.id)] == saved
