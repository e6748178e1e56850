"""Search latency over many messages, against a bare FTS5 query on the same file.

    python bench/search.py [--messages 200000] [--rounds 7] [--db PATH]

Builds (or reuses, with --db) a database of N messages in N/100 conversations, written
through the Store so the FTS5 triggers index them as the app would; text is drawn from a
Zipf-like vocabulary, so some words occur in most messages and others in a handful.
For each query: the median time of Store.search (titles + messages, joins, snippets,
limit 50), of the window's path (a fresh read-only connection on each search), and of
two bare FTS5 queries (MATCH, snippet, LIMIT 50): ORDER BY rank, the obvious query, and
ORDER BY rowid DESC, the floor; and the ratios. Then the cost of the update trigger on a streaming answer saved every 0.5 s:
milliseconds per save with the index against a database without it.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatapp.core.conversation import Message, Role, new_id
from chatapp.core.search import bare_query, fts_query, open_readonly, search
from chatapp.core.store import Store
from chatapp.core.store.migrations import MIGRATIONS

COMMON = [
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "it",
    "for",
    "you",
    "with",
    "on",
    "as",
    "are",
    "this",
    "be",
    "can",
    "or",
    "by",
    "not",
    "python",
    "function",
    "model",
    "data",
    "file",
    "list",
    "value",
    "code",
    "error",
    "use",
    "return",
    "example",
]
QUERIES = [
    ("rare word", "zq17x"),
    ("medium word", "kelvo"),
    ("common word", "the"),
    ("two common words", "python function"),
    ("prefix while typing", "func"),
    ("three words", "model data error"),
    ("FTS syntax as text", 'NEAR("the" -'),
]


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """Words and cumulative weights (for random.choices: cum_weights is O(log n) a draw)."""
    syllables = ["ka", "lo", "ve", "zi", "mu", "ra", "to", "ne", "si", "po", "lu", "de"]
    words = list(COMMON)
    while len(words) < 20000:
        w = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        words.append(w)
    words += ["kelvo", "zq17x"]
    weights = [1.0 / (i + 1) ** 1.05 for i in range(len(words))]
    weights[-2] = weights[300]  # "kelvo": a word of middling frequency
    weights[-1] = 0.0  # "zq17x": placed by hand below
    return words, list(itertools.accumulate(weights))


def build(path: Path, n_messages: int) -> None:
    rng = random.Random(1)
    words, weights = _vocabulary(rng)
    per_conv = 100
    t0 = time.perf_counter()
    with Store(path) as store:
        for c in range(max(1, n_messages // per_conv)):
            conv = store.create_conversation(" ".join(rng.choices(words[:2000], k=4)))
            parent = None
            batch = []
            for i in range(per_conv):
                text = rng.choices(words, cum_weights=weights, k=rng.randint(10, 70))
                if (c * per_conv + i) % 20_000 == 7:  # a word in 10 of 200,000 messages
                    text.append("zq17x")
                mid = new_id()
                batch.append(
                    Message(
                        id=mid,
                        conversation_id=conv.id,
                        parent_id=parent,
                        role=Role.USER if i % 2 == 0 else Role.ASSISTANT,
                        content=" ".join(text),
                        thinking=" ".join(rng.choices(words, cum_weights=weights, k=20))
                        if i % 10 == 1
                        else "",
                        created_at=time.time(),
                    )
                )
                parent = mid
            store.insert_messages(batch)
            store.set_current_leaf(conv.id, parent)
    print(f"built {n_messages} messages in {time.perf_counter() - t0:.1f} s ({path})")


def _median_ms(fn, rounds: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm the page cache
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench_queries(path: Path, rounds: int) -> None:
    with Store(path) as store:
        n = store._db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        print(f"\n{n} messages; median of {rounds} runs, limit 50 (times in ms)")
        print(
            f"{'query':<22} {'matches':>8} {'search':>8} {'window':>8}"
            f" {'bare rank':>10} {'bare newest':>12} {'ratio rank':>11} {'ratio newest':>13}"
        )
        bare_db = open_readonly(path)
        for label, q in QUERIES:
            fq = fts_query(q)
            matches = (
                bare_db.execute(
                    "SELECT COUNT(*) FROM messages_fts WHERE messages_fts MATCH ?", (fq,)
                ).fetchone()[0]
                if fq
                else 0
            )
            ours = _median_ms(lambda q=q: store.search(q), rounds)

            def window(q: str = q) -> None:
                db = open_readonly(path)
                try:
                    search(db, q)
                finally:
                    db.close()

            win = _median_ms(window, rounds)
            rank = _median_ms(lambda fq=fq: bare_query(bare_db, fq) if fq else None, rounds)
            newest = _median_ms(
                lambda fq=fq: bare_query(bare_db, fq, order="newest") if fq else None, rounds
            )

            def ratio(base: float, ours: float = ours) -> str:
                return f"{ours / base:.2f}" if base > 0.05 else "-"

            print(
                f"{label:<22} {matches:>8} {ours:>8.1f} {win:>8.1f} {rank:>10.1f}"
                f" {newest:>12.1f} {ratio(rank):>11} {ratio(newest):>13}"
            )
        bare_db.close()


def bench_streaming_saves(tmp: Path) -> None:
    """A 6,000-character answer saved 60 times as it grows (every 0.5 s in the app)."""
    rng = random.Random(2)
    words, weights = _vocabulary(rng)
    answer = " ".join(rng.choices(words, cum_weights=weights, k=1000))[:6000]
    results = {}
    for label, migrations in (
        ("without the index", [m for m in MIGRATIONS if m[0] < "004"]),
        ("with the index", MIGRATIONS),
    ):
        with Store(tmp / f"stream-{label[:4]}.db", migrations=migrations) as store:
            c = store.create_conversation("stream")
            per_save = []
            for _ in range(5):
                m = store.add_message(c.id, Role.ASSISTANT, "")
                for k in range(1, 61):
                    t0 = time.perf_counter()
                    store.update_message(m.id, content=answer[: k * 100])
                    per_save.append((time.perf_counter() - t0) * 1000)
            results[label] = (statistics.median(per_save), max(per_save))
    print("\nsaving a streaming answer (6,000 chars, 60 saves of a growing text):")
    for label, (med, worst) in results.items():
        print(f"  {label:<18} median {med:.2f} ms per save, worst {worst:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--db", type=Path, help="reuse (or create) this database file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = args.db or Path(d) / "bench.db"
        if not path.exists():
            build(path, args.messages)
        bench_queries(path, args.rounds)
        bench_streaming_saves(Path(d))


if __name__ == "__main__":
    main()
