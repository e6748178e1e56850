"""Documents: indexing throughput against llama-cpp-python's bare embedding loop, query
time over 100,000 chunks, and memory while indexing.

1. Throughput: the same chunks embedded by a bare `Llama(embedding=True).embed()` loop
   (the chunks prepared beforehand, nothing else done) and indexed by
   chatapp.service.documents.index_collection (walk, read, hash, extract, chunk, embed,
   write to SQLite), both with the same model, threads and batch; alternated A/B for
   --rounds rounds; medians; ratio = bare time / our time (1.0: no overhead).
2. A query over --chunks chunks (default 100,000): random text in FTS5 and synthetic
   vectors of the model's dimension in the matrix; the time of a whole query (the
   question embedded by the real model, keyword search, vector search, fusion, the
   passages read) in a new process: the first one (the matrix built, or mapped from its
   saved file), then the median and the worst of --queries more, and the parts. --vs
   OLD_TREE times another checkout in the same run (each tree twice, alternated).
3. Peak resident memory while a collection indexes, above what the process held before,
   sampled every 10 ms: one large file (--large-mb) and --folder-mb files of 1 MB.

    python bench/docs_index.py [--model M.gguf] [--files 40] [--rounds 3] [--chunks 100000]
    python bench/docs_index.py --only query --db /tmp/q.sqlite3 --vs /tmp/old-checkout
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# CHATAPP_BENCH_TREE: another checkout's chatapp (--vs runs the query part against it)
sys.path.insert(0, os.environ.get("CHATAPP_BENCH_TREE") or str(Path(__file__).resolve().parents[1]))

import numpy as np

WORDS = [
    "river",
    "stone",
    "market",
    "engine",
    "garden",
    "paper",
    "window",
    "signal",
    "harbor",
    "copper",
    "lantern",
    "orchard",
    "meadow",
    "ledger",
    "compass",
    "velvet",
    "thunder",
    "glacier",
    "pepper",
    "saddle",
    "timber",
    "cobalt",
    "marble",
    "falcon",
    "harvest",
    "beacon",
    "quarry",
    "tunnel",
    "violet",
    "walnut",
    "anchor",
    "canyon",
    "ember",
    "frost",
]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1024 / 1024


def make_corpus(root: Path, files: int, rng: random.Random) -> None:
    root.mkdir(parents=True)
    for i in range(files):
        parts = [f"# Document {i}"]
        for s in range(3):
            para = " ".join(rng.choice(WORDS) for _ in range(120))
            parts.append(f"## Section {s}\n\n{para}.")
        (root / f"doc{i:03d}.md").write_text("\n\n".join(parts))


def throughput(model: str, files: int, rounds: int, threads: int) -> None:
    import llama_cpp

    from chatapp.core.docindex import DocIndex
    from chatapp.engine.embedding import EmbeddingEngine
    from chatapp.ingest.chunk import chunk_sections
    from chatapp.ingest.extract import extract
    from chatapp.service.documents import embed_text, index_collection

    rng = random.Random(1)
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "corpus"
    make_corpus(corpus, files, rng)
    texts = [
        embed_text(c) for p in sorted(corpus.iterdir()) for c in chunk_sections(extract(p).sections)
    ]
    engine = EmbeddingEngine(model, n_threads=threads)
    bare = llama_cpp.Llama(
        model_path=model, embedding=True, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=engine.n_ctx, n_batch=engine.n_ctx, n_ubatch=engine.n_ctx,
        n_threads=threads, n_threads_batch=threads, verbose=False,
    )  # fmt: skip
    bare_times, ours_times = [], []
    for r in range(rounds):
        t = time.perf_counter()
        for start in range(0, len(texts), 16):
            bare.embed(texts[start : start + 16], normalize=True, truncate=True)
        bare_times.append(time.perf_counter() - t)
        with DocIndex(tmp / f"documents{r}.sqlite3") as index:
            index.ensure_collection("bench", [str(corpus)], engine.path)
            t = time.perf_counter()
            report = index_collection(index, "bench", engine)
            ours_times.append(time.perf_counter() - t)
            assert report.chunks == len(texts), (report.chunks, len(texts))
    b, o = statistics.median(bare_times), statistics.median(ours_times)
    print(f"throughput: {files} files, {len(texts)} chunks, {threads} threads, {rounds} rounds")
    print(f"  bare llama-cpp-python embed loop: {b:.2f} s ({len(texts) / b:.1f} chunks/s)")
    print(f"  chatapp index_collection:        {o:.2f} s ({len(texts) / o:.1f} chunks/s)")
    print(f"  ratio (bare time / ours): {b / o:.3f}")
    bare.close()
    engine.close()


def _vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """A 20,000-word vocabulary drawn Zipf-like, as real text is (a few words everywhere)."""
    rng = np.random.default_rng(2)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fe", "gu"]
    vocab = sorted({"".join(rng.choice(syllables, rng.integers(2, 5))) for _ in range(40000)})
    words = np.array(vocab[:20000])
    ranks = np.arange(1, len(words) + 1)
    return words, (1 / ranks) / (1 / ranks).sum()


def build_query_index(db: Path, chunks: int, dim: int) -> None:
    from chatapp.core.docindex import DocIndex, NewChunk

    words, p = _vocabulary()
    rng = np.random.default_rng(3)
    t0 = time.perf_counter()
    with DocIndex(db) as index:
        c = index.ensure_collection("big", [], "synthetic")
        per_file = 100
        for f in range(chunks // per_file):
            vecs = rng.standard_normal((per_file, dim)).astype(np.float32)
            text = [" ".join(rng.choice(words, 60, p=p)) for _ in range(per_file)]
            index.replace_file(
                c.id, f"/synthetic/{f}.md", "markdown", 1, 0.0, "0" * 64, "synthetic",
                [NewChunk(i, text[i], None, f"Doc {f}", vecs[i]) for i in range(per_file)],
            )  # fmt: skip
        index.finish_indexing(c.id, [], dim)  # (the collection's dimension: vectors searched)
    print(f"query: {chunks} chunks of {dim} dimensions built in {time.perf_counter() - t0:.0f} s")


def query_times(model: str, db: Path, threads: int, n: int) -> dict[str, Any]:
    """In this process: the first query (no matrix in memory), then n more; whole queries
    through chatapp.service.documents.search (the question embedded, keyword search,
    vector search, fusion, the passages read), then the parts of the same questions."""
    from chatapp.core.docindex import DocIndex
    from chatapp.engine.embedding import EmbeddingEngine
    from chatapp.service.documents import search

    engine = EmbeddingEngine(model, n_threads=threads)
    words, p = _vocabulary()
    rng = np.random.default_rng(5)
    questions = [" ".join(rng.choice(words, 6, p=p)) for _ in range(n + 1)]
    whole, embed, keyword, vector = [], [], [], []
    with DocIndex(db) as index:
        for q in questions:
            t = time.perf_counter()
            hits = search(index, "big", q, engine, 5)
            whole.append((time.perf_counter() - t) * 1000)
            assert len(hits) == 5 and any(h.vector_rank for h in hits), hits
        collection = index.collection("big")
        assert collection is not None
        for q in questions[1:]:
            t = time.perf_counter()
            qv = engine.embed([q])
            t1 = time.perf_counter()
            index.keyword(collection.id, q, 50)
            t2 = time.perf_counter()
            index.vectors(collection).search(qv[0], 50)
            t3 = time.perf_counter()
            embed.append((t1 - t) * 1000)
            keyword.append((t2 - t1) * 1000)
            vector.append((t3 - t2) * 1000)
    engine.close()
    return {"first": whole[0], "whole": whole[1:], "embed": embed, "keyword": keyword,
            "vector": vector}  # fmt: skip


def query(model: str, chunks: int, threads: int, n: int, db: str | None, vs: str | None) -> None:
    import json
    import os
    import subprocess

    path = Path(db) if db else Path(tempfile.mkdtemp()) / "documents.sqlite3"
    if not path.exists():
        from chatapp.engine.embedding import EmbeddingEngine

        engine = EmbeddingEngine(model, n_threads=1)
        dim = engine.dim
        engine.close()
        build_query_index(path, chunks, dim)
    trees = [("this tree", str(Path(__file__).resolve().parents[1]))]
    if vs:
        trees.insert(0, ("--vs tree", vs))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
    for _ in range(2 if vs else 1):  # each tree twice, alternated, each in a new process
        for name, tree in trees:
            out = subprocess.run(
                [sys.executable, __file__, "--query-child", str(path), "--model", model,
                 "--threads", str(threads), "--queries", str(n)],
                env={**os.environ, "CHATAPP_BENCH_TREE": tree}, check=True,
                capture_output=True, text=True,
            ).stdout  # fmt: skip
            results[name].append(json.loads(out.splitlines()[-1]))
    for name, runs in results.items():
        for r in runs:
            w = r["whole"]
            print(f"  {name}: first query {r['first']:.0f} ms; next {len(w)} whole queries "
                  f"median {statistics.median(w):.0f} ms, max {max(w):.0f} ms; parts (median / "
                  f"max): embedding {statistics.median(r['embed']):.0f} / {max(r['embed']):.0f}, "
                  f"keyword {statistics.median(r['keyword']):.0f} / {max(r['keyword']):.0f}, "
                  f"vector {statistics.median(r['vector']):.0f} / {max(r['vector']):.0f} ms")  # fmt: skip


class _HashEmbedder:
    """Vectors of the model's size from word hashes: the indexer's own memory, without
    hours of embedding on a slow machine (--memory-embedder model uses the real one)."""

    def __init__(self, dim: int) -> None:
        self.path, self.dim = "hash", dim

    def embed(self, texts, *, batch=16, cancel=None, progress=None):  # type: ignore[no-untyped-def]
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in t.split()[:64]:
                out[i, hash(w) % self.dim] += 1.0
        return out

    def close(self) -> None:
        pass


def memory(model: str, large_mb: int, threads: int, real: bool, folder_mb: int = 0) -> None:
    from chatapp.core.docindex import DocIndex
    from chatapp.engine.embedding import EmbeddingEngine
    from chatapp.service.documents import index_collection

    engine: Any = EmbeddingEngine(model, n_threads=threads)
    if not real:
        dim = engine.dim
        engine.close()
        engine = _HashEmbedder(dim)
    tmp = Path(tempfile.mkdtemp())
    corpus = tmp / "corpus"
    make_corpus(corpus, 10, random.Random(3))
    rng = random.Random(4)
    paras = [" ".join(rng.choice(WORDS) for _ in range(150)) + ".\n\n" for _ in range(997)]

    def write(path: Path, megabytes: float) -> None:
        with open(path, "w") as f:
            written, i = 0, 0
            while written < megabytes * 1024 * 1024:
                f.write(paras[i % len(paras)])  # (a prime count: no two files alike)
                written += len(paras[i % len(paras)])
                i += 1 + hash(path.name) % 3

    if large_mb:
        write(corpus / "large.txt", large_mb)
    for i in range(folder_mb):  # the rest of the folder: 1 MB files
        (corpus / f"part{i // 100:02d}").mkdir(exist_ok=True)
        write(corpus / f"part{i // 100:02d}" / f"file{i:04d}.txt", 1)
    before = rss_mb()
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with DocIndex(tmp / "documents.sqlite3") as index:
        index.ensure_collection("mem", [str(corpus)], engine.path)
        t = time.perf_counter()
        report = index_collection(index, "mem", engine)
        took = time.perf_counter() - t
    stop.set()
    sampler.join()
    size = sum(f.stat().st_size for f in corpus.rglob("*") if f.is_file()) / 1024 / 1024
    print(f"memory: a {size:.0f} MB folder (10 small files, {folder_mb} files of 1 MB, one "
          f"{large_mb} MB text file), {report.chunks} chunks in {took:.0f} s, embedder: "
          f"{'the model' if real else 'word hashes, same size'}")  # fmt: skip
    print(f"  resident before {before:.0f} MB, peak {peak[0]:.0f} MB: "
          f"+{peak[0] - before:.0f} MB while indexing")  # fmt: skip
    engine.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", help="a GGUF (default: the SmolLM2 test model)")
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--large-mb", type=int, default=20)
    ap.add_argument("--folder-mb", type=int, default=0, help="memory: this many 1 MB files more")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-embedder", choices=["hash", "model"], default="hash")
    ap.add_argument("--only", choices=["throughput", "query", "memory"])
    ap.add_argument("--queries", type=int, default=20, help="queries timed after the first")
    ap.add_argument("--db", help="the query index: reused when it exists, else built there")
    ap.add_argument("--vs", help="another checkout (e.g. `git worktree add`): its query times "
                    "first, in the same run, alternated with this tree's")  # fmt: skip
    ap.add_argument("--query-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    model = args.model
    if model is None:
        from tests import fetch_models

        model = str(fetch_models.fetch() / fetch_models.SMOLLM2)
    if args.query_child:
        import json

        print(json.dumps(query_times(model, Path(args.query_child), args.threads, args.queries)))
        return
    if args.only in (None, "throughput"):
        throughput(model, args.files, args.rounds, args.threads)
    if args.only in (None, "query"):
        query(model, args.chunks, args.threads, args.queries, args.db, args.vs)
    if args.only in (None, "memory"):
        memory(model, args.large_mb, args.threads, args.memory_embedder == "model", args.folder_mb)


if __name__ == "__main__":
    main()
