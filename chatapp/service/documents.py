"""Chat with your documents: indexing collections and the retrieval step of a turn.

index_collection() walks a collection's folders and files, extracts and chunks each
(chatapp.ingest), embeds the chunks (engine.embedding) and replaces the file's chunks in
the index (core.docindex) in one transaction; what did not change (size, mtime, then
sha256) is skipped, what vanished is removed, and every file that cannot be indexed is a
line in the report. Indexer runs it on a thread of its own, with its own embedding
model, so neither the window nor the chat's inference thread waits for it.

DocumentsStep is the turn pipeline's retrieval step (Runner.run calls it before fitting
the context): attached files go into the question whole when they fit the budget, the
best chunks otherwise; a collection gives its best passages (keyword + vector, fused).
The passages are numbered; the answer's meta records what was inserted, with each
file's sha256 and the chunk ids, and the receipt repeats the ids and hashes.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from chatapp.core.backend import Backend, Capabilities, ChatRequest
from chatapp.core.citations import cited_passages
from chatapp.core.conversation import Message, Role
from chatapp.core.docindex import Collection, DocIndex, Hit, NewChunk, Report
from chatapp.core.errors import UserError
from chatapp.ingest.chunk import CHUNK_CHARS, OVERLAP_CHARS, Chunk, chunk_sections
from chatapp.ingest.extract import ExtractError, extract, kind_of, os_reason, read_bytes

log = logging.getLogger(__name__)

INDEX_FILE = "documents.sqlite3"
PASSAGES = 5  # passages a collection gives a question
ATTACH_SHARE = 0.5  # attached text may take this share of the context window
# After the question, where a small model still reads it; the sources as "[n] where:
# text" entries, so that a model that copies a source's line copies its number too.
# SmolLM2-135M at temperature 0 still seldom cites (docs/documents.md, Citations).
INSTRUCTION = (
    "Answer the question from the sources above, in their words. After each sentence, "
    "write the number of its source in brackets, like [1]."
)


class Embedder(Protocol):
    path: str
    dim: int

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch: int = 16,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray: ...


def index_path(data_dir: Path) -> Path:
    return data_dir / INDEX_FILE


def embed_text(chunk: Chunk | Hit) -> str:
    """What is embedded for a chunk: its heading gives it context."""
    return f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text


# -- indexing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    path: str


def walk(paths: Sequence[str], problems: list[str]) -> Iterator[Path]:
    """Every readable file of a supported kind under paths (symbolic links followed,
    each folder once, so a link loop ends); hidden files and folders are skipped.
    Unreadable folders and broken links are lines in problems."""
    seen: set[tuple[int, int]] = set()
    for given in paths:
        root = Path(given).expanduser()
        try:
            st = root.stat()
        except OSError as e:
            problems.append(f"{root}: {os_reason(e)}")
            continue
        if not root.is_dir():
            yield root
            continue
        seen.add((st.st_dev, st.st_ino))

        def onerror(e: OSError) -> None:
            problems.append(f"{e.filename}: {os_reason(e)}")

        for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
            keep = []
            for d in sorted(dirnames):
                if d.startswith("."):
                    continue
                full = os.path.join(dirpath, d)
                try:
                    dst = os.stat(full)
                except OSError as e:
                    problems.append(f"{full}: {os_reason(e)}")
                    continue
                key = (dst.st_dev, dst.st_ino)
                if key in seen:
                    if os.path.islink(full):
                        problems.append(f"{full}: a symbolic link loop (the folder is already in)")
                    continue
                seen.add(key)
                keep.append(d)
            dirnames[:] = keep
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                p = Path(dirpath, name)
                if kind_of(p) is not None:
                    yield p


def index_collection(
    index: DocIndex,
    name: str,
    embedder: Embedder | None,
    *,
    cancel: threading.Event | None = None,
    progress: Callable[[Progress], None] | None = None,
    chunk_chars: int = CHUNK_CHARS,
    overlap: int = OVERLAP_CHARS,
) -> Report:
    """Bring the collection's index up to date with its folders and files."""
    collection = index.collection(name)
    if collection is None:
        raise UserError(f"No collection named {name!r}.")
    model = embedder.path if embedder is not None else ""
    if collection.embedding_model and embedder is None:
        raise UserError(
            f"The collection {name!r} is embedded with {collection.embedding_model}; "
            "that model is needed to index it."
        )
    report = Report()
    files = list(walk(collection.paths, report.problems))
    known = index.files(collection.id)
    found: set[str] = set()
    keep_old: set[str] = set()
    dim = collection.dim
    for n, path in enumerate(files):
        if cancel is not None and cancel.is_set():
            report.cancelled = True
            break
        key = str(path.absolute())
        if key in found:
            continue
        found.add(key)
        if progress is not None:
            progress(Progress(n, len(files), key))
        try:
            added, chunks, dim_now = _index_file(
                index, collection, path, key, known.get(key), embedder, model, cancel,
                chunk_chars, overlap,
            )  # fmt: skip
        except ExtractError as e:
            report.problems.append(f"{path}: {e}")
            if "changed while" in str(e):
                keep_old.add(key)
            continue
        except InterruptedError:
            report.cancelled = True
            break
        dim = dim_now or dim
        if added is None:
            report.unchanged += 1
        elif added:
            report.added += 1
        else:
            report.updated += 1
        report.chunks += chunks
    if not report.cancelled:
        gone = [p for p in known if p not in found or (p in found and _failed(p, report))]
        gone = [p for p in gone if p not in keep_old]
        index.remove_files(collection.id, gone)
        report.removed = len([p for p in gone if p not in found])
        if progress is not None:
            progress(Progress(len(files), len(files), ""))
    index.finish_indexing(collection.id, report.problems, dim)
    return report


def _failed(path: str, report: Report) -> bool:
    return any(line.startswith(f"{path}: ") for line in report.problems)


def _index_file(
    index: DocIndex,
    collection: Collection,
    path: Path,
    key: str,
    old: Any,
    embedder: Embedder | None,
    model: str,
    cancel: threading.Event | None,
    chunk_chars: int,
    overlap: int,
) -> tuple[bool | None, int, int]:
    """(None: unchanged | True: added | False: updated, chunks embedded, dimensions)."""
    try:
        st = path.stat()
    except OSError as e:
        raise ExtractError(os_reason(e)) from e
    if (
        old is not None
        and old.embedding_model == model
        and old.size == st.st_size
        and old.mtime == st.st_mtime
    ):
        return None, 0, 0
    data = read_bytes(path)
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    if old is not None and old.embedding_model == model and old.sha256 == sha:
        index.touch_file(old.id, st.st_size, st.st_mtime)
        return None, 0, 0
    doc = extract(path, data)
    del data  # (memory follows the largest file: let go of each copy once it is used)
    kind = doc.kind
    chunks = chunk_sections(doc.sections, chunk_chars, overlap)
    del doc
    vectors: np.ndarray | None = None
    if embedder is not None and chunks:
        vectors = embedder.embed([embed_text(c) for c in chunks], cancel=cancel)
    try:
        after = path.stat()
    except OSError as e:
        raise ExtractError("vanished while it was indexed") from e
    if (after.st_size, after.st_mtime) != (st.st_size, st.st_mtime):
        raise ExtractError("changed while it was indexed; it is indexed again next time")
    index.replace_file(
        collection.id,
        key,
        kind,
        st.st_size,
        st.st_mtime,
        sha,
        model,
        [
            NewChunk(c.ordinal, c.text, c.page, c.heading, None if vectors is None else vectors[i])
            for i, c in enumerate(chunks)
        ],
    )
    return old is None, len(chunks), 0 if vectors is None else int(vectors.shape[1])


class Indexer:
    """Indexes a collection on a thread of its own (its own index connection and
    embedding model): the window stays responsive and chats keep answering."""

    def __init__(
        self,
        index_file: Path,
        name: str,
        make_embedder: Callable[[], Embedder | None],
        *,
        on_progress: Callable[[Progress], None] | None = None,
        on_done: Callable[[Report | Exception], None] | None = None,
        chunk_chars: int = CHUNK_CHARS,
    ) -> None:
        self.cancel_event = threading.Event()
        self._args = (index_file, name, make_embedder, on_progress, on_done, chunk_chars)
        self.result: Report | Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"index-{name}", daemon=True)

    def start(self) -> Indexer:
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.cancel_event.set()

    def join(self, timeout: float | None = None) -> Report | Exception | None:
        self._thread.join(timeout)
        return self.result

    def _run(self) -> None:
        index_file, name, make_embedder, on_progress, on_done, chunk_chars = self._args
        embedder = None
        try:
            embedder = make_embedder()
            with DocIndex(index_file) as index:
                self.result = index_collection(
                    index, name, embedder, cancel=self.cancel_event, progress=on_progress,
                    chunk_chars=chunk_chars,
                )  # fmt: skip
        except Exception as e:
            log.warning("indexing %s failed: %s", name, e, exc_info=not isinstance(e, UserError))
            self.result = e
        finally:
            close = getattr(embedder, "close", None)
            if close is not None:
                close()
        if on_done is not None:
            on_done(self.result)


# -- retrieval --------------------------------------------------------------------------


def search(
    index: DocIndex,
    name: str,
    query: str,
    embedder: Embedder | None,
    k: int = PASSAGES,
    *,
    rewrites: Sequence[str] = (),
) -> list[Hit]:
    """The collection's k best passages for the query. The question is embedded on a
    thread of its own while the keyword search runs here (llama.cpp and SQLite both
    release the GIL), so a query takes about as long as the longer of the two."""
    collection = index.collection(name)
    if collection is None:
        raise UserError(f"No collection named {name!r}.")
    if embedder is None or not collection.chunks or not collection.dim:
        return index.search(collection, query, (), k, texts=rewrites)
    model = embedder
    result: list[Any] = []

    def embed() -> None:
        try:
            result.append(model.embed([query, *rewrites]))
        except BaseException as e:  # noqa: BLE001 (raised again on the caller's thread)
            result.append(e)

    worker = threading.Thread(target=embed, name="embed-question", daemon=True)
    worker.start()

    def vectors() -> list[np.ndarray]:
        worker.join()
        if isinstance(result[0], BaseException):
            raise result[0]
        return list(result[0])

    try:
        return index.search(collection, query, vectors, k, texts=rewrites)
    finally:
        worker.join()  # (the embedder is never left busy when the keyword search failed)


@dataclass
class Passage:
    number: int
    where: str
    text: str
    file: str
    sha256: str
    whole: bool = False
    hit: Hit | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"n": self.number, "where": self.where, "file": self.file}
        d["sha256"] = self.sha256
        if self.whole:
            d["whole_file"] = True
        if self.hit is not None:
            d.update({k: v for k, v in self.hit.as_dict().items() if k not in ("file", "sha256")})
        else:
            d["text"] = self.text
        return d


def compose(question: str, passages: Sequence[Passage]) -> str:
    """The question as the model receives it: the numbered sources (one "[n] where: text"
    entry each, blank lines dropped, lines and indents kept), the question, the instruction."""
    parts = ["Sources:"]
    for p in passages:
        lines = [line.rstrip() for line in p.text.strip().splitlines()]
        parts.append(f"[{p.number}] {p.where}: " + "\n".join(line for line in lines if line))
    parts += ["", f"Question: {question}", "", INSTRUCTION]
    return "\n".join(parts)


def citations(answer: str, passages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages an answer cites ([1], [2, 3] ...), each once, in order of first
    citation; a number that names no passage is left out (core.citations.resolve gives
    each citation's place in the text too)."""
    return cited_passages(answer, passages)


@dataclass
class DocumentsStep:
    """The retrieval step of a turn (Runner.run calls it on the inference thread).

    collections: names in the index; attachments: files for this question;
    embedder: (model path) -> Embedder, for questions and attached chunks."""

    index_file: Path
    collections: Sequence[str] = ()
    attachments: Sequence[Path] = ()
    embedder: Any = field(default=lambda path: None)  # (model path) -> Embedder | None
    attach_embedding_model: str = ""
    k: int = PASSAGES
    rewrites: int = 0  # RAG-Fusion: the chat model rephrases the question this many times
    # the last result, kept by the caller across steps: Show prompt's retrieval for a draft
    # is reused by the send of that draft while nothing it read has changed (the files,
    # the collections' versions, the model), so the send inserts exactly what was shown
    memo: dict[Any, Any] | None = None

    def __call__(
        self, request: ChatRequest, backend: Backend, cancel: threading.Event
    ) -> tuple[ChatRequest, dict[str, Any]]:
        history = list(request.history)
        at = _last_user(history)
        if at is None:
            return request, {}
        question = _content(history[at])
        key = self._key(question, backend) if self.memo is not None else None
        if key is not None and self.memo is not None and key in self.memo:
            content, meta = self.memo[key]
        else:
            content, meta = self._retrieve(question, backend, cancel)
            if key is not None and self.memo is not None:
                self.memo.clear()
                self.memo[key] = (content, meta)
        meta = copy.deepcopy(meta)
        if content is None:
            return request, meta
        history[at] = _with_content(history[at], content)
        return _replace_history(request, history), meta

    def _key(self, question: str, backend: Backend) -> tuple[Any, ...] | None:
        """What the result depends on (None: it cannot be told, do not keep it)."""
        files = []
        for path in self.attachments:
            try:
                st = Path(path).stat()
            except OSError:
                return None
            files.append((str(path), st.st_size, st.st_mtime_ns))
        versions: list[tuple[Any, ...]] = []
        if self.collections:
            try:
                with DocIndex(self.index_file) as index:
                    for name in self.collections:
                        c = index.collection(name)
                        versions.append(
                            (name, c.id, c.created_at, c.version, c.embedding_model)
                            if c is not None
                            else (name,)
                        )
            except UserError:
                return None
        return (
            question, tuple(files), tuple(versions), self.k, self.rewrites,
            self.attach_embedding_model, str(backend.ref), backend.info.n_ctx,
        )  # fmt: skip

    def _retrieve(
        self, question: str, backend: Backend, cancel: threading.Event
    ) -> tuple[str | None, dict[str, Any]]:
        """(the question as the model receives it, or None; what the answer records)."""
        count = self._counter(backend)
        budget = int(backend.info.n_ctx * ATTACH_SHARE) if backend.info.n_ctx else 4096
        passages: list[Passage] = []
        for path in self.attachments:
            passages += self._attached(Path(path), question, count, budget, len(passages))
            budget -= sum(count(p.text) for p in passages)
        rewrites: list[str] = []
        if self.collections and self.rewrites > 0:
            rewrites = rephrase(backend, question, self.rewrites, cancel)
        if self.collections:
            with DocIndex(self.index_file) as index:
                for name in self.collections:
                    collection = index.collection(name)
                    if collection is None:
                        raise UserError(f"No document collection named {name!r}.")
                    embedder = (
                        self.embedder(collection.embedding_model)
                        if collection.embedding_model
                        else None
                    )
                    found = search(index, name, question, embedder, self.k, rewrites=rewrites)
                    for hit in found:
                        passages.append(
                            Passage(
                                len(passages) + 1, hit.where, hit.text, hit.path, hit.sha256,
                                hit=hit,
                            )
                        )  # fmt: skip
        if not passages:
            return None, {"documents": {"passages": [], "note": "no passage matched"}}
        content = compose(question, passages)
        files: dict[str, str] = {}
        for p in passages:
            files.setdefault(p.file, p.sha256)
        meta = {
            "documents": {
                "collections": list(self.collections),
                "files": [{"path": f, "sha256": s} for f, s in files.items()],
                # an index chunk's id; an attached file's chunks as "<sha256 prefix>#<position>"
                "chunk_ids": [p.hit.chunk_id for p in passages if p.hit is not None],
                "passages": [p.as_dict() for p in passages],
                "inserted": content,
            }
        }
        if rewrites:
            meta["documents"]["rewrites"] = rewrites
        return content, meta

    def _counter(self, backend: Backend) -> Callable[[str], int]:
        if getattr(backend, "capabilities", Capabilities()).tokens:
            return lambda text: len(backend.tokenize(text, special=False))
        return lambda text: len(text) // 4 + 1

    def _attached(
        self, path: Path, question: str, count: Callable[[str], int], budget: int, before: int
    ) -> list[Passage]:
        try:
            doc = extract(path)
        except ExtractError as e:
            raise UserError(f"Cannot attach {path}: {e}.") from e
        text = doc.text
        if count(text) <= budget:
            return [
                Passage(before + 1, f"{path.name} (whole file)", text, str(path), doc.sha256, True)
            ]
        # too long: the best chunks for the question, ranked in a throwaway index
        embedder = (
            self.embedder(self.attach_embedding_model) if self.attach_embedding_model else None
        )
        with DocIndex(":memory:") as mem:
            mem.ensure_collection("attached", [str(path)], embedder.path if embedder else "")
            chunks = chunk_sections(doc.sections)
            vectors = embedder.embed([embed_text(c) for c in chunks]) if embedder else None
            collection = mem.collection("attached")
            assert collection is not None
            mem.replace_file(
                collection.id, str(path), doc.kind, doc.size, 0.0, doc.sha256,
                embedder.path if embedder else "",
                [
                    NewChunk(c.ordinal, c.text, c.page, c.heading, None if vectors is None else vectors[i])
                    for i, c in enumerate(chunks)
                ],
            )  # fmt: skip
            collection = mem.collection("attached")
            assert collection is not None
            qv = list(embedder.embed([question])) if embedder else []
            hits = mem.search(collection, question, qv, max(self.k, 8))
        out: list[Passage] = []
        used = 0
        for hit in hits or []:
            cost = count(hit.text)
            if used + cost > budget:
                break
            used += cost
            hit.chunk_id = f"{doc.sha256[:12]}#{hit.ordinal}"
            out.append(
                Passage(before + len(out) + 1, hit.where, hit.text, str(path), doc.sha256, hit=hit)
            )
        if not out:
            raise UserError(
                f"Cannot attach {path}: no part of it matches the question within the "
                f"context budget ({budget} tokens)."
            )
        return out


def question_meta(step: Any) -> dict[str, Any]:
    """What a question records of the files attached to it, so it shows them whenever
    it is shown (meta["attachments"]: path, name, size), from its turn's retrieval step
    (TurnOptions.retrieval); {} when nothing is attached."""
    files = getattr(step, "attachments", None) or ()
    out: list[dict[str, Any]] = []
    for f in files:
        path = Path(f)
        try:
            size: int | None = path.stat().st_size
        except OSError:
            size = None
        out.append({"path": str(path.absolute()), "name": path.name, "size": size})
    return {"attachments": out} if out else {}


REPHRASE = (
    "Write {n} different search queries that would find the answer to the question "
    "below. Use other words than the question. One query per line, nothing else.\n\n"
    "Question: {question}"
)


def rephrase(backend: Backend, question: str, n: int, cancel: threading.Event) -> list[str]:
    """RAG-Fusion's rewrites: the chat model's own rephrasings of the question (on the
    inference thread, before the answer), each searched and fused with the question."""
    from chatapp.core.token_engine import SamplingParams

    request = ChatRequest(
        [{"role": "user", "content": REPHRASE.format(n=n, question=question)}],
        sampling=SamplingParams(temperature=0.3, max_tokens=24 * n + 16, seed=0),
    )
    text = "".join(c.text for c in backend.execute(request, cancel) if c.channel != "thinking")
    lines = [re.sub(r"^\s*(?:\d+[.)]|[-*•])\s*", "", line).strip() for line in text.splitlines()]
    out = [line.strip('"') for line in lines if len(line) > 3 and line.lower() != question.lower()]
    return list(dict.fromkeys(out))[:n]


def _last_user(history: list[Any]) -> int | None:
    for i in range(len(history) - 1, -1, -1):
        m = history[i]
        role = m.role.value if isinstance(m, Message) else m.get("role")
        if role == Role.USER.value:
            return i
    return None


def _content(m: Any) -> str:
    return m.content if isinstance(m, Message) else str(m.get("content", ""))


def _with_content(m: Any, content: str) -> Any:
    return m.with_(content=content) if isinstance(m, Message) else {**m, "content": content}


def _replace_history(request: ChatRequest, history: list[Any]) -> ChatRequest:
    from dataclasses import replace

    return replace(request, history=history)


class EmbedderCache:
    """Embedding models by path, loaded on first use on the calling thread (the turn's
    inference thread for questions); close() frees them."""

    def __init__(self, load: Callable[[str], Embedder]) -> None:
        self._load = load
        self._models: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    def __call__(self, path: str) -> Embedder | None:
        if not path:
            return None
        with self._lock:
            if path not in self._models:
                if not Path(path).exists():
                    raise UserError(
                        f"The embedding model {path} is gone; the collection needs it "
                        "(chatapp docs add NAME --embedding-model PATH re-embeds it)."
                    )
                self._models[path] = self._load(path)
            return self._models[path]

    def close(self) -> None:
        with self._lock:
            for model in self._models.values():
                close = getattr(model, "close", None)
                if close is not None:
                    close()
            self._models.clear()
