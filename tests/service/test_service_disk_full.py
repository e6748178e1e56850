"""A full disk during a chat, on a real 1 MB tmpfs: the turn fails with one clear line,
the question and what was saved before are intact, the database is not damaged."""

from __future__ import annotations

from pathlib import Path

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.engine.local import LocalBackend
from chatapp.service import ChatService, LoadRequest
from chatapp.service.events import TurnChunk, TurnFailed
from tests.core.test_store_disk_full import small_disk  # noqa: F401  (fixture)
from tests.fakes import ScriptedEngine


def _fill(folder: Path) -> None:
    """Take every free byte of the disk."""
    try:
        with open(folder / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
    except OSError:  # no space left: that is the point
        pass


def test_a_disk_that_fills_mid_answer(small_disk: Path, tmp_path: Path) -> None:
    db = small_disk / "chat.sqlite3"
    service = ChatService(
        db,
        Settings(),
        lambda req: LocalBackend(ScriptedEngine(reply="word " * 4000, delay=0.001)),
    )
    filled: list[bool] = []
    chunks = [0]

    def listener(event: object) -> None:
        if isinstance(event, TurnChunk) and event.chunk.text and not filled:
            chunks[0] += 1
            if chunks[0] > 300:  # some text is saved by now: fill the disk under the stream
                _fill(small_disk)
                filled.append(True)

    try:
        service.load(LoadRequest(ModelRef.local(tmp_path / "m.gguf"))).result(60)
        result = service.send(None, "a question worth keeping", listener=listener).result(120)
    finally:
        service.shutdown()
    assert filled, "the disk was never filled"
    assert isinstance(result, TurnFailed)
    assert result.error.startswith("The disk is full")
    (small_disk / "filler").unlink()
    with Store(db) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        thread = store.active_thread(result.conversation_id)
        assert thread[0].content == "a question worth keeping"
