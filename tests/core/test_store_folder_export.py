"""Exporting many conversations into a folder is all or nothing, like the zip: a failure
half way (a conversation that cannot be read, a full disk) leaves the folder as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core import export
from chatapp.core.conversation import Conversation, Message, Role
from chatapp.core.errors import DiskFullError
from tests.tmpfs import small_tmpfs


def _many(n: int, size: int = 200) -> dict[str, tuple[Conversation, list[Message]]]:
    out = {}
    for i in range(n):
        cid = f"c{i}"
        text = f"conversation {i} " * size
        msgs = [Message(f"{cid}m", cid, None, Role.USER, text, 1e9)]
        out[cid] = (Conversation(cid, f"Chat {i}", 1e9, 1e9, current_leaf_id=f"{cid}m"), msgs)
    return out


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("existing", [False, True])
def test_a_failure_half_way_leaves_the_folder_as_it_was(tmp_path: Path, existing: bool) -> None:
    convs = _many(5)
    dest = tmp_path / "out"
    if existing:
        dest.mkdir()
        (dest / "mine.txt").write_text("the user's own file")
        (dest / "Chat 0.md").write_text("an older export, kept if this one fails")
    before = _tree(tmp_path)

    def load(cid: str) -> tuple[Conversation, list[Message]]:
        if cid == "c3":
            raise RuntimeError("the database went away")
        return convs[cid]

    with pytest.raises(RuntimeError):
        export.export_many(list(convs), load, "md", dest)
    assert _tree(tmp_path) == before
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no staging folder left behind


def test_a_complete_export_into_an_existing_folder_replaces_only_its_own_files(
    tmp_path: Path,
) -> None:
    convs = _many(2)
    (tmp_path / "mine.txt").write_text("kept")
    (tmp_path / "Chat 0.md").write_text("old")
    export.export_many(list(convs), convs.__getitem__, "md", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Chat 0.md",
        "Chat 1.md",
        "index.html",
        "index.json",
        "mine.txt",
    ]
    assert (tmp_path / "Chat 0.md").read_text() == export.render("md", *convs["c0"])
    assert (tmp_path / "mine.txt").read_text() == "kept"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KB tmpfs (needs root, as in the CI container; skipped elsewhere)."""
    with small_tmpfs(tmp_path, "256k") as mnt:
        yield mnt


@pytest.mark.parametrize("existing", [False, True])
def test_a_full_disk_leaves_nothing_in_the_folder(small_disk: Path, existing: bool) -> None:
    convs = _many(40, size=600)  # ~40 x 10 KB of Markdown: more than the disk holds
    dest = small_disk / "export"
    if existing:
        dest.mkdir()
        (dest / "mine.txt").write_text("kept")
    before = _tree(small_disk)
    with pytest.raises(DiskFullError) as info:
        export.export_many(list(convs), convs.__getitem__, "md", dest)
    assert str(info.value).startswith("The disk is full: could not write ")
    assert "\n" not in str(info.value)
    assert _tree(small_disk) == before
    assert [p.name for p in small_disk.rglob(".*")] == []
