"""Indexing a collection: incremental re-indexing, removal, a change of embedding model,
cancel, and every kind of bad input as one line of the report with the rest indexed.
The embedding model here is a small deterministic stand-in (what is tested is the
indexer's bookkeeping); tests/service/test_documents_real.py embeds with llama.cpp."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from chatapp.core.docindex import DocIndex
from chatapp.core.errors import UserError
from chatapp.service.documents import Indexer, index_collection, search
from tests.docs_corpus import make_corpus


class HashEmbedder:
    """Vectors from the words' hashes: the same text, the same vector."""

    dim = 16

    def __init__(self, path: str = "hash-v1", hook: Callable[[Sequence[str]], None] | None = None):
        self.path = path
        self.hook = hook
        self.calls = 0

    def embed(self, texts, *, batch=16, cancel=None, progress=None) -> np.ndarray:
        self.calls += 1
        if self.hook is not None:
            self.hook(texts)
        if cancel is not None and cancel.is_set():
            raise InterruptedError("cancelled")
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, hashlib.sha256(w.encode()).digest()[0] % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "corpus")


@pytest.fixture
def index(tmp_path: Path):
    with DocIndex(tmp_path / "documents.sqlite3") as idx:
        yield idx


def _paths(index: DocIndex, name: str = "c") -> set[str]:
    c = index.collection(name)
    assert c is not None
    return {Path(p).name for p in index.files(c.id)}


def test_reindexing_reads_only_what_changed_and_removes_what_vanished(
    index: DocIndex, corpus: Path
) -> None:
    emb = HashEmbedder()
    index.ensure_collection("c", [str(corpus)], emb.path)
    first = index_collection(index, "c", emb)
    assert first.added == 24 and not first.problems
    again = index_collection(index, "c", emb)
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 24, 0)
    # touched but the same bytes: only its mtime is recorded again
    os.utime(corpus / "backups.txt", (1, 1))
    same = index_collection(index, "c", emb)
    assert same.unchanged == 24 and same.chunks == 0
    (corpus / "backups.txt").write_text("The backup server named Kestrel copies hourly.\n")
    (corpus / "culture.md").unlink()
    changed = index_collection(index, "c", emb)
    assert (changed.updated, changed.removed, changed.unchanged) == (1, 1, 22)
    assert "culture.md" not in _paths(index)
    hits = search(index, "c", "Kestrel backup", None)
    assert Path(hits[0].path).name == "backups.txt" and "Kestrel" in hits[0].text
    assert not search(index, "c", "Pemberton heron mascot", None)


def test_a_new_embedding_model_re_embeds_everything(index: DocIndex, corpus: Path) -> None:
    index.ensure_collection("c", [str(corpus)], "hash-v1")
    index_collection(index, "c", HashEmbedder("hash-v1"))
    index.ensure_collection("c", [], "hash-v2")
    report = index_collection(index, "c", HashEmbedder("hash-v2"))
    assert report.updated == 24 and report.unchanged == 0
    c = index.collection("c")
    assert c is not None and c.embedding_model == "hash-v2"
    assert {f.embedding_model for f in index.files(c.id).values()} == {"hash-v2"}


def test_cancel_leaves_no_file_half_written(index: DocIndex, corpus: Path) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def hook(texts: Sequence[str]) -> None:
        seen.append(1)
        if len(seen) == 3:
            cancel.set()  # during the third file's embedding

    emb = HashEmbedder(hook=hook)
    index.ensure_collection("c", [str(corpus)], emb.path)
    report = index_collection(index, "c", emb, cancel=cancel)
    assert report.cancelled and report.added == 2
    c = index.collection("c")
    assert c is not None
    files = index.files(c.id)
    assert len(files) == 2
    # every file in the index has all of its chunks
    for row in files.values():
        n = index._db.execute("SELECT count(*) FROM chunks WHERE file_id=?", (row.id,)).fetchone()
        assert n[0] >= 1
    # the next run finishes the job and removes nothing it should keep
    done = index_collection(index, "c", HashEmbedder())
    assert done.added == 22 and done.unchanged == 2


def test_bad_inputs_are_each_a_line_and_the_rest_is_indexed(
    index: DocIndex, corpus: Path, tmp_path: Path
) -> None:
    import pypdf

    bad = corpus / "bad"
    bad.mkdir()
    w = pypdf.PdfWriter()
    w.add_blank_page(612, 792)
    w.encrypt("secret")
    with open(bad / "locked.pdf", "wb") as f:
        w.write(f)
    w = pypdf.PdfWriter()
    w.add_blank_page(612, 792)
    with open(bad / "scanned.pdf", "wb") as f:
        w.write(f)
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 40)
    with open(bad / "huge.txt", "wb") as f:
        f.truncate(65 * 1024 * 1024)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (20 * 1024 * 1024))
    (bad / "bomb.docx").write_bytes(bomb.getvalue())
    os.symlink(bad, bad / "loop")  # a folder that contains itself
    os.symlink(bad / "self.md", bad / "self.md")  # a link to itself
    (bad / "vanishes.md").write_text("# Gone\n\nThis file is deleted before it is read.\n")
    (bad / "changes.md").write_text("# Moving\n\nThis file changes while it is embedded.\n")
    locked = bad / "private"
    locked.mkdir()
    (locked / "secret.md").write_text("# Secret\n\nunreadable\n")
    locked.chmod(0)

    def hook(texts: Sequence[str]) -> None:
        if any("changes while it is embedded" in t for t in texts):
            with open(bad / "changes.md", "a") as f:
                f.write("\nMore text, written during indexing.\n")
            st = (bad / "changes.md").stat()
            os.utime(bad / "changes.md", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def progress(p) -> None:
        if p.path.endswith("vanishes.md"):
            (bad / "vanishes.md").unlink()

    emb = HashEmbedder(hook=hook)
    index.ensure_collection("c", [str(corpus)], emb.path)
    try:
        report = index_collection(index, "c", emb, progress=progress)
    finally:
        locked.chmod(0o755)
    lines = {Path(line.split(": ", 1)[0]).name: line.split(": ", 1)[1] for line in report.problems}
    assert "encrypted PDF" in lines["locked.pdf"]
    assert lines["scanned.pdf"] == "no text; scanned pages need OCR"
    assert lines["binary.txt"] == "binary data, not text"
    assert lines["huge.txt"].startswith("too large")
    assert "zip bomb" in lines["bomb.docx"]
    assert lines["loop"].startswith("a symbolic link loop")
    assert lines["self.md"] == "a symbolic link loop"
    assert lines["vanishes.md"] == "vanished before it was read"
    assert lines["changes.md"].startswith("changed while it was indexed")
    if os.geteuid() != 0:  # root reads any folder
        assert lines["private"] == "permission denied"
    assert all("\n" not in line for line in report.problems)
    # the rest is indexed, and the report is kept with the collection
    assert report.added == 24 + (1 if os.geteuid() == 0 else 0)
    c = index.collection("c")
    assert c is not None and c.report == report.problems
    assert "changes.md" not in _paths(index)  # nothing half-written
    # the next run indexes the changed file
    assert index_collection(index, "c", HashEmbedder()).added == 1


def test_an_indexer_runs_on_its_own_thread_and_reports(tmp_path: Path, corpus: Path) -> None:
    db = tmp_path / "documents.sqlite3"
    with DocIndex(db) as index:
        index.ensure_collection("c", [str(corpus)], "hash-v1")
    progress: list[int] = []
    done = threading.Event()
    indexer = Indexer(
        db, "c", lambda: HashEmbedder(), on_progress=lambda p: progress.append(p.done),
        on_done=lambda r: done.set(),
    ).start()  # fmt: skip
    assert done.wait(120)
    result = indexer.join()
    assert not isinstance(result, Exception) and result is not None
    assert result.added == 24 and progress[-1] == 24
    assert indexer._thread.name == "index-c"


def test_a_chat_answers_while_a_folder_indexes(fake_service, tmp_path: Path, corpus: Path) -> None:
    from chatapp.service.events import TurnFinished

    service = fake_service(reply="Still here.")
    db = tmp_path / "documents.sqlite3"
    with DocIndex(db) as index:
        index.ensure_collection("c", [str(corpus)], "hash-v1")
    inside, go_on = threading.Event(), threading.Event()

    def hook(texts: Sequence[str]) -> None:
        inside.set()
        assert go_on.wait(60), "the chat never answered while indexing was held"

    indexer = Indexer(db, "c", lambda: HashEmbedder(hook=hook)).start()
    try:
        assert inside.wait(60)  # indexing is in the middle of embedding a file
        result = service.send(None, "Hello?").result(60)
        assert isinstance(result, TurnFinished) and result.message.content == "Still here."
        assert indexer._thread.is_alive()
    finally:
        go_on.set()
    report = indexer.join(60)
    assert report is not None and not isinstance(report, Exception) and report.added == 24


def test_a_query_embeds_on_another_thread_and_its_errors_reach_the_caller(
    index: DocIndex, corpus: Path
) -> None:
    emb = HashEmbedder()
    index.ensure_collection("c", [str(corpus)], emb.path)
    index_collection(index, "c", emb)
    threads: list[str] = []
    emb.hook = lambda texts: threads.append(threading.current_thread().name)
    hits = search(index, "c", "Kestrel backup copies", emb)
    assert threads == ["embed-question"] and any(h.vector_rank for h in hits)
    c = index.collection("c")
    assert c is not None
    direct = index.search(c, "Kestrel backup copies", list(HashEmbedder().embed([
        "Kestrel backup copies"])), 5)  # fmt: skip
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in direct]

    def broken(texts: Sequence[str]) -> None:
        raise UserError("The embedding model is gone.")

    emb.hook = broken
    with pytest.raises(UserError, match="embedding model is gone"):
        search(index, "c", "Kestrel backup copies", emb)
    assert index.keyword(c.id, "Zephyr telescope")  # the connection is still usable
