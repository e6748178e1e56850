"""The documents index's search paths that the query time depends on: which words a
large keyword search looks for, the collection filter, and the vector matrix saved
beside the index and memory-mapped by a new connection (a new process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatapp.core import docindex
from chatapp.core.docindex import DocIndex, NewChunk
from chatapp.core.errors import UserError


def _fill(index: DocIndex, name: str, texts: list[str], *, dim: int = 8, seed: int = 0) -> None:
    c = index.ensure_collection(name, [], "test-model")
    rng = np.random.default_rng(seed)
    per_file = 100
    for f in range(0, len(texts), per_file):
        part = texts[f : f + per_file]
        vectors = rng.standard_normal((len(part), dim)).astype(np.float32)
        index.replace_file(
            c.id, f"/{name}/{f // per_file}.md", "markdown", 1, 0.0, "0" * 64, "test-model",
            [NewChunk(i, t, None, "", vectors[i]) for i, t in enumerate(part)],
        )  # fmt: skip
    index.finish_indexing(c.id, [], dim)


@pytest.fixture
def index(tmp_path: Path):
    with DocIndex(tmp_path / "documents.sqlite3") as idx:
        yield idx


def test_common_words_are_left_out_by_their_stem(index: DocIndex) -> None:
    # "houses" is indexed as "hous" (porter): it must be counted under that name, or it
    # passes for a rare word and the keyword search scores every chunk
    texts = [f"the houses of block {i} stand in a row" for i in range(1200)]
    texts[777] = "the houses near the zebra crossing are painted"
    _fill(index, "c", texts)
    assert index._informative(["houses", "zebra", "crossing"]) == ["zebra", "crossing"]
    c = index.collection("c")
    assert c is not None
    found = index.keyword(c.id, "Which houses are at the zebra crossing?")
    assert found and len(found) == 1  # only the zebra chunk holds the words searched for
    assert index.hits([found[0][0]])[found[0][0]].text == texts[777]


def test_the_rarest_words_are_searched_until_the_postings_budget(
    index: DocIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = [f"filler text number {i}" for i in range(1500)]
    for i in range(10):
        texts[i] += " alpha"
    for i in range(200):
        texts[100 + i] += " bravo"
    for i in range(250):
        texts[400 + i] += " charlie"
    _fill(index, "c", texts)
    monkeypatch.setattr(docindex, "MAX_POSTINGS", 300)
    # question order kept; charlie (250 chunks) would bring the total to 460
    assert index._informative(["charlie", "bravo", "alpha"]) == ["bravo", "alpha"]
    monkeypatch.setattr(docindex, "MAX_POSTINGS", 5)
    assert index._informative(["charlie", "bravo", "alpha"]) == ["alpha"]  # the rarest, always
    # a word in more than a fifth of the chunks is never searched for, budget or not
    monkeypatch.setattr(docindex, "MAX_POSTINGS", 10**9)
    assert index._informative(["filler", "alpha"]) == ["alpha"]
    assert index._informative(["filler", "text"]) == ["filler"]  # nothing else is left


def test_a_small_index_searches_every_word(index: DocIndex) -> None:
    _fill(index, "c", ["the houses are red", "the zebra is striped"])
    assert index._informative(["houses", "zebra"]) == ["houses", "zebra"]


def test_keyword_search_keeps_to_its_collection(index: DocIndex) -> None:
    _fill(index, "a", [f"apple orchard note {i}" for i in range(30)])
    _fill(index, "b", [f"apple market note {i}" for i in range(30)])
    a, b = index.collection("a"), index.collection("b")
    assert a is not None and b is not None
    for c, word in ((a, "orchard"), (b, "market")):
        hits = index.hits([cid for cid, _ in index.keyword(c.id, "apple note", 20)])
        assert len(hits) == 20 and all(word in h.text for h in hits.values())


def test_the_vector_matrix_is_saved_and_mapped_by_a_new_process(tmp_path: Path) -> None:
    db = tmp_path / "documents.sqlite3"
    folder = tmp_path / docindex.VECTORS_DIR
    with DocIndex(db) as index:
        _fill(index, "c", [f"note {i}" for i in range(250)])
        c = index.collection("c")
        assert c is not None
        q = np.random.default_rng(9).standard_normal(8).astype(np.float32)
        built = index.vectors(c)
        assert not isinstance(built.matrix, np.memmap)
        expected = built.search(q, 10)
        assert len(list(folder.glob("*.npy"))) == 2
    with DocIndex(db) as index:  # as a new process would
        c = index.collection("c")
        assert c is not None
        mapped = index.vectors(c)
        assert isinstance(mapped.matrix, np.memmap)
        assert mapped.search(q, 10) == expected
        # rows are normalised: a similarity is a cosine
        assert abs(float(np.linalg.norm(mapped.matrix[3])) - 1.0) < 1e-5
        # a change to the collection: a new matrix, the old file removed
        index.replace_file(
            c.id, "/c/0.md", "markdown", 1, 0.0, "0" * 64, "test-model",
            [NewChunk(0, "only note", None, "", q)],
        )  # fmt: skip
        c = index.collection("c")
        assert c is not None
        changed = index.vectors(c)
        assert len(changed.ids) == 151
        assert changed.search(q, 1)[0][1] == pytest.approx(1.0, abs=1e-5)
        names = sorted(p.name for p in folder.glob("*.npy"))
        assert len(names) == 2 and all(f"-v{c.version}." in n for n in names)
    # a damaged file is not trusted: the matrix is built again from the index
    matrix_file = next(folder.glob("*.matrix.npy"))
    matrix_file.write_bytes(matrix_file.read_bytes()[:1000])
    with DocIndex(db) as index:
        c = index.collection("c")
        assert c is not None
        again = index.vectors(c)
        assert not isinstance(again.matrix, np.memmap) and len(again.ids) == 151
        assert again.search(q, 1)[0][1] == pytest.approx(1.0, abs=1e-5)
        assert index.remove_collection("c")
        assert not list(folder.glob("*.npy"))


def test_an_unwritable_vectors_folder_costs_only_a_rebuild(tmp_path: Path) -> None:
    (tmp_path / docindex.VECTORS_DIR).write_text("a file where the folder would be")
    with DocIndex(tmp_path / "documents.sqlite3") as index:
        _fill(index, "c", [f"note {i}" for i in range(20)])
        c = index.collection("c")
        assert c is not None
        assert len(index.vectors(c).search(np.ones(8, np.float32), 5)) == 5


def test_vectors_of_another_size_are_never_similar(index: DocIndex) -> None:
    _fill(index, "c", [f"note {i}" for i in range(10)])
    c = index.collection("c")
    assert c is not None
    other = index.ensure_collection("c", [], "another-model")
    index.replace_file(
        other.id, "/c/other.md", "markdown", 1, 0.0, "0" * 64, "another-model",
        [NewChunk(0, "other", None, "", np.ones(4, np.float32))],
    )  # fmt: skip
    c = index.collection("c")
    assert c is not None
    vm = index.vectors(c)
    assert len(vm.ids) == 11 and vm.matrix.shape[1] == 8
    top = dict(vm.search(np.ones(8, np.float32), 11))
    [other_id] = [cid for cid, h in index.hits(list(top)).items() if h.text == "other"]
    assert top[other_id] == 0.0
    with pytest.raises(UserError, match="another embedding model"):
        vm.search(np.ones(4, np.float32), 3)
