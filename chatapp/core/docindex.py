"""The documents index: collections, their files and chunks, in its own SQLite file in the
data folder (documents.sqlite3), with an FTS5 keyword index (BM25) and the chunks'
embedding vectors beside it.

Vectors are stored as float32 blobs in the chunks table (the truth, written in the same
transaction as the text) and searched as one normalised numpy matrix per collection,
built when first searched and rebuilt when the collection's version changes; the built
matrix is also kept as a .npy file beside the index and memory-mapped, so a new process
(`chatapp docs search`) does not rebuild it (sqlite-vec is not used: VECTOR_STORE says
so in the status). Keyword and vector rankings are fused by reciprocal rank (RRF, k=60).
A file's chunks are replaced in one transaction: a failure or a cancel never leaves a
file half-written.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.core.doc_migrations import MIGRATIONS
from chatapp.core.errors import StoreError, UserError

log = logging.getLogger(__name__)

VECTOR_STORE = "numpy matrix (sqlite-vec is not installed)"
RRF_K = 60
COMMON_SHARE = 0.2  # a word in more than this share of chunks is not searched for
# FTS5 scores every chunk that holds any of the question's words (about 1.6 ms per 1,000
# on this project's loaded 2-core machine): the rarest words are searched for until their
# chunks add up to this many, the commoner ones are left to the vector search
MAX_POSTINGS = 20_000
VECTORS_DIR = "documents.vectors"  # beside the index file: the matrices as .npy files
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "does",
        "do",
        "did",
        "can",
        "my",
        "your",
    ]
)


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    paths: list[str]
    embedding_model: str
    dim: int
    created_at: float
    indexed_at: float | None
    report: list[str]
    version: int
    files: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class FileRow:
    id: int
    path: str
    kind: str
    size: int
    mtime: float
    sha256: str
    embedding_model: str


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str
    page: int | None
    heading: str
    vector: np.ndarray | None = None


@dataclass
class Hit:
    """A retrieved passage: where it is, its text, and how it ranked."""

    chunk_id: int | str  # an attached file's chunk: "<sha256 prefix>#<position>"
    path: str
    sha256: str
    page: int | None
    heading: str
    text: str
    score: float = 0.0  # the fused (RRF) score
    keyword_rank: int | None = None  # 1-based
    vector_rank: int | None = None
    bm25: float | None = None
    similarity: float | None = None
    ordinal: int = 0  # the chunk's position in its file

    @property
    def where(self) -> str:
        name = Path(self.path).name
        if self.page is not None:
            return f"{name}, page {self.page}"
        return f"{name}, {self.heading}" if self.heading else name

    def as_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "ordinal": self.ordinal,
            "file": self.path,
            "sha256": self.sha256,
            "page": self.page,
            "heading": self.heading,
            "score": round(self.score, 6),
            "keyword_rank": self.keyword_rank,
            "vector_rank": self.vector_rank,
            "bm25": None if self.bm25 is None else round(self.bm25, 4),
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "text": self.text,
        }


@dataclass
class VectorMatrix:
    """A collection's vectors, normalised, one row per chunk (possibly memory-mapped)."""

    ids: np.ndarray  # int64
    matrix: np.ndarray  # float32 (n, dim)
    version: int = -1

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if not len(self.ids):
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.matrix.shape[1]:
            raise UserError(
                f"The question's embedding has {q.shape[0]} dimensions; the collection's "
                f"have {self.matrix.shape[1]}: it was built with another embedding model."
            )
        q = q / (np.linalg.norm(q) or 1.0)
        # einsum, not matmul: one thread at memory speed. OpenBLAS's gemv is no faster on
        # two cores and its threads keep spinning after it, slowing the llama.cpp threads
        # that run next (the chat model's prompt, the next question's embedding).
        scores = np.einsum("ij,j->i", self.matrix, q)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(int(i), float(s)) for i, s in zip(self.ids[top], scores[top], strict=True)]


def normalised(vectors: np.ndarray) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return v / norms


def query_words(text: str) -> list[str]:
    """The question's words for an FTS5 query that matches any of them (BM25 ranks by
    how many and how rare); each is quoted in the query, so FTS syntax means nothing."""
    words = [w for w in _WORD.findall(text.lower()) if w not in _STOP]
    if not words:
        words = _WORD.findall(text.lower())
    return list(dict.fromkeys(words))[:32]


def fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds 1/(k + rank) to its items' scores."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


class DocIndex:
    """One connection to the documents index; use it on one thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path) if str(path) != ":memory:" else Path(":memory:")
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0)
            self._db.row_factory = sqlite3.Row
            if str(path) != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"The documents index {path} cannot be opened: {e}") from e
        self._vectors: dict[int, VectorMatrix] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DocIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)"
        )
        done = {r[0] for r in db.execute("SELECT name FROM _migrations")}
        known = {name for name, _ in MIGRATIONS}
        if done - known:
            raise StoreError(
                f"The documents index {self.path} was written by a newer chatapp "
                f"({', '.join(sorted(done - known))}); it is left as it is."
            )
        for name, migration in MIGRATIONS:
            if name in done:
                continue
            with self.transaction():
                migration(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, time.time()))

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- collections --------------------------------------------------------------------

    def _collection(self, row: sqlite3.Row) -> Collection:
        counts = self._db.execute(
            "SELECT (SELECT count(*) FROM files WHERE collection_id=?),"
            " (SELECT count(*) FROM chunks JOIN files ON files.id=chunks.file_id"
            "  WHERE files.collection_id=?)",
            (row["id"], row["id"]),
        ).fetchone()
        return Collection(
            row["id"],
            row["name"],
            json.loads(row["paths"]),
            row["embedding_model"],
            row["dim"],
            row["created_at"],
            row["indexed_at"],
            json.loads(row["report"]),
            row["version"],
            counts[0],
            counts[1],
        )

    def collection(self, name: str) -> Collection | None:
        row = self._db.execute("SELECT * FROM collections WHERE name=?", (name,)).fetchone()
        return self._collection(row) if row is not None else None

    def collections(self) -> list[Collection]:
        rows = self._db.execute("SELECT * FROM collections ORDER BY name").fetchall()
        return [self._collection(r) for r in rows]

    def ensure_collection(
        self, name: str, paths: Sequence[str], embedding_model: str | None
    ) -> Collection:
        """Create the collection, or add paths to it and set its embedding model."""
        if not name.strip():
            raise UserError("A collection needs a name.")
        with self.transaction() as db:
            row = db.execute("SELECT * FROM collections WHERE name=?", (name,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO collections (name, paths, embedding_model, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (name, json.dumps(list(paths)), embedding_model or "", time.time()),
                )
            else:
                have = json.loads(row["paths"])
                merged = have + [p for p in paths if p not in have]
                model = row["embedding_model"] if embedding_model is None else embedding_model
                db.execute(
                    "UPDATE collections SET paths=?, embedding_model=? WHERE id=?",
                    (json.dumps(merged), model, row["id"]),
                )
        found = self.collection(name)
        assert found is not None
        return found

    def update_collection(self, name: str, paths: Sequence[str], embedding_model: str) -> None:
        """Set the collection's folders and files and its embedding model (the window's
        collections dialog): a path left out is removed at the next indexing, a new model
        re-embeds every file."""
        with self.transaction() as db:
            found = db.execute(
                "UPDATE collections SET paths=?, embedding_model=? WHERE name=?",
                (json.dumps(list(paths)), embedding_model, name),
            ).rowcount
        if not found:
            raise UserError(f"No collection named {name!r}.")

    def remove_collection(self, name: str) -> bool:
        with self.transaction() as db:
            row = db.execute("SELECT id FROM collections WHERE name=?", (name,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM collections WHERE id=?", (row[0],))
        self.forget_vectors(row[0])
        return True

    def finish_indexing(self, collection_id: int, report: list[str], dim: int) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE collections SET indexed_at=?, report=?, dim=? WHERE id=?",
                (time.time(), json.dumps(report), dim, collection_id),
            )

    # -- files and chunks ---------------------------------------------------------------

    def files(self, collection_id: int) -> dict[str, FileRow]:
        rows = self._db.execute(
            "SELECT id, path, kind, size, mtime, sha256, embedding_model FROM files"
            " WHERE collection_id=?",
            (collection_id,),
        )
        return {r["path"]: FileRow(*r) for r in rows}

    def replace_file(
        self,
        collection_id: int,
        path: str,
        kind: str,
        size: int,
        mtime: float,
        sha256: str,
        embedding_model: str,
        chunks: Sequence[NewChunk],
    ) -> None:
        """The file's chunks, all at once: the old ones go in the same transaction."""
        with self.transaction() as db:
            db.execute("DELETE FROM files WHERE collection_id=? AND path=?", (collection_id, path))
            file_id = db.execute(
                "INSERT INTO files (collection_id, path, kind, size, mtime, sha256,"
                " embedding_model, indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (collection_id, path, kind, size, mtime, sha256, embedding_model, time.time()),
            ).lastrowid
            db.executemany(  # rows made one at a time: no second copy of every vector
                "INSERT INTO chunks (file_id, ordinal, page, heading, text, vector)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (
                        file_id,
                        c.ordinal,
                        c.page,
                        c.heading,
                        c.text,
                        None if c.vector is None else np.asarray(c.vector, np.float32).tobytes(),
                    )
                    for c in chunks
                ),
            )
            self._bump(db, collection_id)

    def touch_file(self, file_id: int, size: int, mtime: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE files SET size=?, mtime=? WHERE id=?", (size, mtime, file_id))

    def remove_files(self, collection_id: int, paths: Sequence[str]) -> None:
        if not paths:
            return
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM files WHERE collection_id=? AND path=?",
                [(collection_id, p) for p in paths],
            )
            self._bump(db, collection_id)

    @staticmethod
    def _bump(db: sqlite3.Connection, collection_id: int) -> None:
        db.execute("UPDATE collections SET version=version+1 WHERE id=?", (collection_id,))

    def hits(self, chunk_ids: Sequence[int]) -> dict[int, Hit]:
        out: dict[int, Hit] = {}
        ids = list(chunk_ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self._db.execute(
                "SELECT chunks.id, files.path, files.sha256, chunks.page, chunks.heading,"
                " chunks.text, chunks.ordinal FROM chunks JOIN files ON files.id=chunks.file_id"
                f" WHERE chunks.id IN ({','.join('?' * len(part))})",
                part,
            )
            for r in rows:
                out[r[0]] = Hit(r[0], r[1], r[2], r[3], r[4], r[5], ordinal=r[6])
        return out

    # -- search -------------------------------------------------------------------------

    def keyword(self, collection_id: int, text: str, k: int = 50) -> list[tuple[int, float]]:
        """The k best chunks of the collection by BM25 for any of the question's words.

        Only the informative words are searched for (see _informative): FTS5 scores every
        chunk that holds one of them, so common words would cost time and rank nothing."""
        words = query_words(text)
        if not words:
            return []
        words = self._informative(words)
        query = " OR ".join(f'"{w}"' for w in words)
        several = self._db.execute("SELECT count(*) FROM collections").fetchone()[0] > 1
        depth = k * 4 if several else k
        rows = self._db.execute(
            "SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ?"
            " ORDER BY score LIMIT ?",
            (query, depth),
        ).fetchall()
        found = [(int(r[0]), -float(r[1])) for r in rows]
        if found and several:  # only this collection's chunks
            ids = [cid for cid, _ in found]
            # CROSS JOIN: look the few chunks up by id (the planner would otherwise walk
            # all of the collection's files and chunks)
            mine = {
                r[0]
                for r in self._db.execute(
                    "SELECT chunks.id FROM chunks CROSS JOIN files ON files.id=chunks.file_id"
                    f" WHERE chunks.id IN ({','.join('?' * len(ids))}) AND files.collection_id=?",
                    (*ids, collection_id),
                )
            }
            found = [f for f in found if f[0] in mine]
        return found[:k]

    def _informative(self, words: list[str]) -> list[str]:
        """The words worth a keyword search, in the question's order: the rarest first
        while the chunks holding them add up to at most MAX_POSTINGS, and never a word in
        more than COMMON_SHARE of all chunks; the rarest word always. A small index
        (under 1,000 chunks) searches for every word."""
        total = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        if total < 1000:
            return words
        terms = self._terms(words)
        df = dict(
            self._db.execute(
                f"SELECT term, doc FROM chunks_vocab WHERE term IN ({','.join('?' * len(terms))})",
                terms,
            ).fetchall()
        )
        counts = [df.get(t, 0) for t in terms]
        kept: list[int] = []
        postings = 0
        for i in sorted(range(len(words)), key=lambda i: counts[i]):
            if kept and (counts[i] > total * COMMON_SHARE or postings + counts[i] > MAX_POSTINGS):
                break
            kept.append(i)
            postings += counts[i]
        return [words[i] for i in sorted(kept)]

    def _terms(self, words: list[str]) -> list[str]:
        """Each word as the index stores it (the porter stem, accents folded): FTS5's own
        tokenizer run on the words in a temporary table of this connection."""
        db = self._db
        db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms"
            " USING fts5(word, tokenize='porter unicode61')"
        )
        db.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.query_terms_vocab"
            " USING fts5vocab(temp, query_terms, 'instance')"
        )
        db.execute("DELETE FROM temp.query_terms")
        db.executemany(
            "INSERT INTO temp.query_terms (rowid, word) VALUES (?, ?)", list(enumerate(words))
        )
        stems = dict(db.execute("SELECT doc, term FROM temp.query_terms_vocab").fetchall())
        return [stems.get(i, w) for i, w in enumerate(words)]

    def vectors(self, collection: Collection) -> VectorMatrix:
        """The collection's vectors as one matrix, rebuilt only when they changed: held
        in memory, and memory-mapped from a .npy file beside the index in a new process."""
        version, created = self._version(collection.id)
        with self._lock:
            cached = self._vectors.get(collection.id)
            if cached is not None and cached.version == version:
                return cached
        key = f"c{collection.id}-{int(created * 1e6)}-v{version}"
        vm = self._mapped(key, version)
        if vm is None:
            self._db.execute("BEGIN")  # the version and the vectors from one snapshot
            try:
                version, created = self._version(collection.id)
                vm = self._build_vectors(collection.id, version, collection.dim)
            finally:
                self._db.execute("COMMIT")
            self._save_vectors(f"c{collection.id}-{int(created * 1e6)}-v{version}", vm)
        with self._lock:
            self._vectors[collection.id] = vm
        return vm

    def _version(self, collection_id: int) -> tuple[int, float]:
        row = self._db.execute(
            "SELECT version, created_at FROM collections WHERE id=?", (collection_id,)
        ).fetchone()
        return (row[0], row[1]) if row else (-1, 0.0)

    def _build_vectors(self, collection_id: int, version: int, dim: int) -> VectorMatrix:
        """Read in blocks into one preallocated matrix, normalised in place: the memory
        of one matrix, not of every row's blob and copies of it."""
        n, longest = self._db.execute(
            "SELECT count(*), max(length(chunks.vector)) / 4 FROM chunks"
            " JOIN files ON files.id=chunks.file_id"
            " WHERE files.collection_id=? AND chunks.vector IS NOT NULL",
            (collection_id,),
        ).fetchone()
        if not n:
            return VectorMatrix(np.zeros(0, np.int64), np.zeros((0, 1), np.float32), version)
        dim = dim or longest  # the collection's model's; vectors of another size stay zero
        ids = np.empty(n, np.int64)
        matrix = np.zeros((n, dim), np.float32)
        cursor = self._db.execute(
            "SELECT chunks.id, chunks.vector FROM chunks JOIN files ON files.id=chunks.file_id"
            " WHERE files.collection_id=? AND chunks.vector IS NOT NULL ORDER BY chunks.id",
            (collection_id,),
        )
        at = 0
        while rows := cursor.fetchmany(4096):
            rows = rows[: n - at]  # (rows written since the count: never, in one snapshot)
            ids[at : at + len(rows)] = [r[0] for r in rows]
            if all(len(r[1]) == dim * 4 for r in rows):
                block = b"".join(r[1] for r in rows)
                matrix[at : at + len(rows)] = np.frombuffer(block, np.float32).reshape(-1, dim)
            else:  # a vector from another model stays zero: never similar
                for i, r in enumerate(rows):
                    if len(r[1]) == dim * 4:
                        matrix[at + i] = np.frombuffer(r[1], np.float32)
            at += len(rows)
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))[:, None]  # (no n x dim temporary)
        norms[norms == 0] = 1.0
        matrix /= norms
        return VectorMatrix(ids[:at], matrix[:at], version)

    def _vectors_dir(self) -> Path | None:
        if str(self.path) == ":memory:":
            return None
        return self.path.parent / VECTORS_DIR

    def _mapped(self, key: str, version: int) -> VectorMatrix | None:
        folder = self._vectors_dir()
        if folder is None:
            return None
        try:
            ids = np.load(folder / f"{key}.ids.npy")
            matrix = np.load(folder / f"{key}.matrix.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        if matrix.ndim != 2 or matrix.dtype != np.float32 or len(ids) != len(matrix):
            return None
        return VectorMatrix(ids, matrix, version)

    def _save_vectors(self, key: str, vm: VectorMatrix) -> None:
        """Written atomically (temporary file, then os.replace), the ids before the
        matrix; older versions of the collection's files are removed. A failure (disk
        full, read-only folder) only costs the next process a rebuild."""
        folder = self._vectors_dir()
        if folder is None or not len(vm.ids):
            return
        prefix = key.split("-", 1)[0] + "-"
        try:
            folder.mkdir(exist_ok=True)
            for name, array in (("ids", vm.ids), ("matrix", vm.matrix)):
                tmp = folder / f".{key}.{name}.{os.getpid()}.{threading.get_ident()}.tmp"
                with open(tmp, "wb") as f:
                    np.save(f, array)
                os.replace(tmp, folder / f"{key}.{name}.npy")
            for old in folder.glob(f"{prefix}*.npy"):
                if not old.name.startswith(f"{key}."):
                    old.unlink(missing_ok=True)
        except OSError as e:
            log.warning("the vector matrix could not be saved in %s: %s", folder, e)

    def forget_vectors(self, collection_id: int) -> None:
        """The collection's saved matrices (its files are removed with it)."""
        folder = self._vectors_dir()
        if folder is not None and folder.is_dir():
            for old in folder.glob(f"c{collection_id}-*.npy"):
                old.unlink(missing_ok=True)

    def search(
        self,
        collection: Collection,
        text: str,
        query_vectors: Sequence[np.ndarray] | Callable[[], Sequence[np.ndarray]] = (),
        k: int = 5,
        *,
        texts: Sequence[str] = (),
        depth: int = 50,
    ) -> list[Hit]:
        """The k best passages: keyword (BM25) and vector rankings fused by reciprocal
        rank. texts: more phrasings of the question (RAG-Fusion), each ranked too;
        query_vectors: the embeddings of the question (and of each of texts), or a
        function that gives them, called after the keyword search (so that they can be
        computed on another thread meanwhile)."""
        rankings: list[list[int]] = []
        keyword_rank: dict[int, int] = {}
        bm25: dict[int, float] = {}
        for i, t in enumerate([text, *texts]):
            found = self.keyword(collection.id, t, depth)
            rankings.append([cid for cid, _ in found])
            if i == 0:
                keyword_rank = {cid: r for r, (cid, _) in enumerate(found, 1)}
                bm25 = dict(found)
        vector_rank: dict[int, int] = {}
        similarity: dict[int, float] = {}
        if callable(query_vectors):
            query_vectors = query_vectors()
        if len(query_vectors):
            matrix = self.vectors(collection)
            for i, q in enumerate(query_vectors):
                found_v = matrix.search(q, depth)
                rankings.append([cid for cid, _ in found_v])
                if i == 0:
                    vector_rank = {cid: r for r, (cid, _) in enumerate(found_v, 1)}
                    similarity = dict(found_v)
        scores = fuse(rankings)
        best = sorted(scores, key=lambda c: -scores[c])[:k]
        hits = self.hits(best)
        out = []
        for cid in best:
            if cid not in hits:
                continue
            h = hits[cid]
            h.score = scores[cid]
            h.keyword_rank = keyword_rank.get(cid)
            h.vector_rank = vector_rank.get(cid)
            h.bm25 = bm25.get(cid)
            h.similarity = similarity.get(cid)
            out.append(h)
        return out


@dataclass
class Report:
    """What an indexing run did, and one line per file it could not index."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks: int = 0
    problems: list[str] = field(default_factory=list)
    cancelled: bool = False

    def summary(self) -> str:
        done = (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed, {self.chunks} chunks embedded"
        )
        if self.problems:
            done += f"; {len(self.problems)} not indexed"
        return done + (" (cancelled)" if self.cancelled else "")
