"""Fitting a long chat into the context ("Leave out the oldest turns"), with SmolLM2's
real template and tokenizer.

1. A 2,000-message chat (about 188k tokens) into a 4,096-token context with
   core.context_fit: the first fit (each kept message counted once), and a second fit
   of the same chat (a second regenerate: the counts come from the cache).
2. The same with the loop it replaced (leave out one turn, prepare the whole prompt
   again) on a smaller chat (--old-messages, 200 by default: the old loop is quadratic,
   2,000 messages took about 8 minutes), against the new fit of that same smaller chat:
   the ratio.
3. One prepare of the whole 2,000-message chat, for scale (what a single full
   tokenization costs).

Times are medians of --rounds runs (these machines are noisy: compare ratios).

    python bench/context_fit.py [--model M.gguf] [--messages 2000] [--old-messages 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def old_fit(backend: Any, request: Any, n_ctx: int) -> list[str]:
    """The loop core.context_fit replaced: one turn left out, one whole prepare."""
    from chatapp.core.context_fit import answer_reserve
    from chatapp.core.conversation import Role

    history = list(request.history)
    reserve = answer_reserve(request, n_ctx)
    if len(backend.prepare(request).tokens) + reserve <= n_ctx:
        return []
    dropped: list[str] = []
    while len(history) > 1:
        cut = 1
        while cut < len(history) - 1 and history[cut].role is not Role.USER:
            cut += 1
        dropped += [m.id for m in history[:cut]]
        history = history[cut:]
        if len(backend.prepare(replace(request, history=history)).tokens) + reserve <= n_ctx:
            return dropped
    raise RuntimeError("does not fit")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--old-messages", type=int, default=200)
    ap.add_argument("--context", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from chatapp.core.backend import ChatRequest
    from chatapp.core.chat_settings import DROP_OLDEST
    from chatapp.core.context_fit import TokenCounts, counter, fit_context
    from chatapp.engine.llama import VERSION, LlamaEngine
    from chatapp.engine.local import LocalBackend
    from tests.fetch_models import SMOLLM2, fetch
    from tests.long_chat import long_chat

    model = args.model or str(fetch() / SMOLLM2)
    backend = LocalBackend(LlamaEngine(model, context_limit=args.context), version=VERSION)
    n_ctx = backend.info.n_ctx

    def new_fit(request: ChatRequest, counts: TokenCounts) -> Any:
        count = counter(counts, "m", backend.tokenize)
        return fit_context(request, n_ctx, DROP_OLDEST, backend.prepare, count)

    def timed(fn: Any) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out

    big = ChatRequest(long_chat("c", args.messages))
    t_whole, whole = timed(lambda: backend.prepare(big))
    first, again = [], []
    for _ in range(args.rounds):
        counts = TokenCounts()
        t, fit = timed(lambda: new_fit(big, counts))  # noqa: B023
        first.append(t)
        again.append(timed(lambda: new_fit(big, counts))[0])  # noqa: B023
    print(f"{args.messages} messages, {len(whole.tokens)} tokens, into {n_ctx}:")
    print(f"  kept {len(fit.request.history)} messages, {len(fit.prompt.tokens)} tokens")
    print(f"  fit (first):  {statistics.median(first):.3f} s")
    print(f"  fit (again):  {statistics.median(again):.3f} s (counts cached)")
    print(f"  one prepare of the whole chat: {t_whole:.3f} s")

    small = ChatRequest(long_chat("s", args.old_messages))
    t_old, old_dropped = timed(lambda: old_fit(backend, small, n_ctx))
    news = []
    for _ in range(args.rounds):
        t, fit_small = timed(lambda: new_fit(small, TokenCounts()))
        news.append(t)
    assert list(fit_small.dropped) == old_dropped, "the new fit must leave out the same turns"
    t_new = statistics.median(news)
    print(f"{args.old_messages} messages into {n_ctx}: the same {len(old_dropped)} left out")
    print(f"  old loop: {t_old:.3f} s   new fit: {t_new:.3f} s   ratio {t_old / t_new:.0f}x")
    backend.close()


if __name__ == "__main__":
    main()
