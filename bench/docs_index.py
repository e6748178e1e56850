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
   passages read), the first one (the matrix is built) and the median of the next ones.
3. Peak resident memory while a collection with one large file (--large-mb) indexes,
   above what the process held before, sampled every 10 ms.

    python bench/docs_index.py [--model M.gguf] [--files 40] [--rounds 3] [--chunks 100000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def query(model: str, chunks: int, threads: int) -> None:
    from chatapp.core.docindex import DocIndex, NewChunk
    from chatapp.engine.embedding import EmbeddingEngine
    from chatapp.service.documents import search

    engine = EmbeddingEngine(model, n_threads=threads)
    rng = np.random.default_rng(2)
    # a 20,000-word vocabulary drawn Zipf-like, as real text is (a few words everywhere)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fe", "gu"]
    vocab = sorted({"".join(rng.choice(syllables, rng.integers(2, 5))) for _ in range(40000)})
    words = np.array(vocab[:20000])
    ranks = np.arange(1, len(words) + 1)
    p = (1 / ranks) / (1 / ranks).sum()
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    with DocIndex(tmp / "documents.sqlite3") as index:
        c = index.ensure_collection("big", [], "synthetic")
        per_file = 100
        for f in range(chunks // per_file):
            vecs = rng.standard_normal((per_file, engine.dim)).astype(np.float32)
            text = [" ".join(rng.choice(words, 60, p=p)) for _ in range(per_file)]
            index.replace_file(
                c.id, f"/synthetic/{f}.md", "markdown", 1, 0.0, "0" * 64, "synthetic",
                [NewChunk(i, text[i], None, f"Doc {f}", vecs[i]) for i in range(per_file)],
            )  # fmt: skip
        print(f"query: {chunks} chunks of {engine.dim} dimensions built in "
              f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
        questions = [" ".join(rng.choice(words, 6, p=p)) for _ in range(11)]
        times, embeds, stores = [], [], []
        collection = index.collection("big")
        assert collection is not None
        for q in questions:  # embedding alone, whole query, store alone
            t = time.perf_counter()
            qv = engine.embed([q])
            embeds.append(time.perf_counter() - t)
            t = time.perf_counter()
            hits = search(index, "big", q, engine, 5)
            times.append(time.perf_counter() - t)
            assert len(hits) == 5
            t = time.perf_counter()
            index.search(collection, q, list(qv), 5)
            stores.append(time.perf_counter() - t)
    print(f"  first query (builds the vector matrix): {times[0] * 1000:.0f} ms")
    ms = [x * 1000 for x in times[1:]]
    print(f"  next 10 whole queries: median {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms")
    print(f"    of which embedding the question: median {statistics.median(embeds[1:]) * 1000:.0f} ms; "
          f"the store (FTS5 + matrix + fusion + passages): median "
          f"{statistics.median(stores[1:]) * 1000:.0f} ms")  # fmt: skip
    engine.close()


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


def memory(model: str, large_mb: int, threads: int, real: bool) -> None:
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
    with open(corpus / "large.txt", "w") as f:
        written = 0
        while written < large_mb * 1024 * 1024:
            para = " ".join(rng.choice(WORDS) for _ in range(150)) + ".\n\n"
            f.write(para)
            written += len(para)
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
    print(f"memory: 10 small files + one {large_mb} MB text file, {report.chunks} chunks "
          f"in {took:.0f} s, embedder: {'the model' if real else 'word hashes, same size'}")  # fmt: skip
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
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-embedder", choices=["hash", "model"], default="hash")
    ap.add_argument("--only", choices=["throughput", "query", "memory"])
    args = ap.parse_args()
    model = args.model
    if model is None:
        from tests import fetch_models

        model = str(fetch_models.fetch() / fetch_models.SMOLLM2)
    if args.only in (None, "throughput"):
        throughput(model, args.files, args.rounds, args.threads)
    if args.only in (None, "query"):
        query(model, args.chunks, args.threads)
    if args.only in (None, "memory"):
        memory(model, args.large_mb, args.threads, args.memory_embedder == "model")


if __name__ == "__main__":
    main()
