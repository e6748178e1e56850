"""Files that change or vanish while a collection indexes, and folders the indexer may
not read (also when the tests run as root: the indexing then runs in a child process
that has dropped to the user nobody). Each is one line in the report; the rest is
indexed; what was indexed before of a file that changed mid-way is kept."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from chatapp.core.docindex import DocIndex
from chatapp.service.documents import index_collection, search
from tests.docs_corpus import make_corpus
from tests.service.test_documents_index import HashEmbedder


@pytest.fixture
def index(tmp_path: Path):
    with DocIndex(tmp_path / "documents.sqlite3") as idx:
        yield idx


def _lines(problems: Sequence[str]) -> dict[str, str]:
    return {Path(p.split(": ", 1)[0]).name: p.split(": ", 1)[1] for p in problems}


def test_a_file_that_changes_while_it_is_reindexed_keeps_its_old_chunks(
    index: DocIndex, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    kitchen = corpus / "kitchen.md"
    index.ensure_collection("c", [str(corpus)], "hash-v1")
    assert index_collection(index, "c", HashEmbedder()).added == 24
    kitchen.write_text("# Kitchen\n\nThe kettle is descaled every Monday with vinegar.\n")

    def hook(texts: Sequence[str]) -> None:
        if any("kettle" in t for t in texts):  # saved again while its chunks are embedded
            kitchen.write_text("# Kitchen\n\nThe kettle is descaled every Friday.\n")
            st = kitchen.stat()
            os.utime(kitchen, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    report = index_collection(index, "c", HashEmbedder(hook=hook))
    assert _lines(report.problems) == {
        "kitchen.md": "changed while it was indexed; it is indexed again next time"
    }
    assert report.removed == 0 and report.unchanged == 23
    # the version indexed before is still found, whole; the half-read one never was
    hits = search(index, "c", "coffee machine descaling Thursday", None)
    assert Path(hits[0].path).name == "kitchen.md" and "citric acid" in hits[0].text
    assert not search(index, "c", "kettle vinegar Monday", None)
    # the next run reads the file as it is now
    again = index_collection(index, "c", HashEmbedder())
    assert again.updated == 1 and not again.problems
    hits = search(index, "c", "kettle descaled Friday", None)
    assert "Friday" in hits[0].text and not search(index, "c", "citric acid Thursday", None)


def test_a_file_that_vanishes_while_it_is_embedded_is_not_indexed(
    index: DocIndex, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    doomed = corpus / "backups.txt"

    def hook(texts: Sequence[str]) -> None:
        if any("Osprey" in t for t in texts) and doomed.exists():
            doomed.unlink()

    index.ensure_collection("c", [str(corpus)], "hash-v1")
    report = index_collection(index, "c", HashEmbedder(hook=hook))
    assert _lines(report.problems) == {"backups.txt": "vanished while it was indexed"}
    assert report.added == 23
    assert not search(index, "c", "Osprey backup server", None)
    # gone for good: the next run has nothing to say about it
    assert not index_collection(index, "c", HashEmbedder()).problems


def test_unreadable_folders_and_files_are_lines_for_any_user(tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="chatapp-unreadable-"))  # (nobody can reach /tmp)
    try:
        root.chmod(0o755)
        corpus = make_corpus(root / "corpus")
        for path in [corpus, *corpus.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        private = corpus / "private"
        private.mkdir()
        (private / "secret.md").write_text("# Secret\n\nThe safe opens with the word Zanzibar.\n")
        private.chmod(0)
        (corpus / "locked.md").write_text("# Locked\n\nNobody may read this.\n")
        (corpus / "locked.md").chmod(0)
        result = _index_as_nobody(corpus) if os.geteuid() == 0 else _index(corpus)
    finally:
        for path in (root / "corpus" / "private", root / "corpus" / "locked.md"):
            if path.exists():
                path.chmod(0o755)
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    assert result["lines"] == {"private": "permission denied", "locked.md": "permission denied"}
    assert result["added"] == 24 and not result["found_secret"]


def _index(corpus: Path) -> dict:
    with DocIndex(":memory:") as index:
        index.ensure_collection("c", [str(corpus)], "hash-v1")
        report = index_collection(index, "c", HashEmbedder())
        return {
            "lines": _lines(report.problems),
            "added": report.added,
            "found_secret": bool(search(index, "c", "Zanzibar", None)),
        }


def _index_as_nobody(corpus: Path) -> dict:
    """_index(corpus) in a forked child that is the user nobody (root reads everything)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, json.dumps(_index(corpus)).encode())
            code = 0
        except BaseException as e:  # noqa: BLE001 (reported to the parent)
            os.write(write, json.dumps({"error": repr(e)}).encode())
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        out = json.loads(f.read())
    _, status = os.waitpid(pid, 0)
    assert "error" not in out, out
    assert os.waitstatus_to_exitcode(status) == 0
    return out
