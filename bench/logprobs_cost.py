"""What capturing the top alternatives costs: tokens/s with top-N capture (raw and
sampled distributions, engine.sampled_dist) against generation without capture.

    python bench/logprobs_cost.py [--model PATH] [--tokens 300] [--rounds 5] [--top 5]
    python bench/logprobs_cost.py --in-run [--model PATH] [--tokens 300]
    python bench/logprobs_cost.py --micro [--model PATH] [--tokens 300]

Same model file, prompt, sampling and seed on both sides, so both generate the same
tokens (capture only reads the logits). Each measurement runs in its own process (see
bench/stream_speed.py: leftover OpenMP threads skew a second run in one process), and
rounds alternate so machine noise hits both alike. Prints the medians and their ratio.
On a busy shared machine the runs' speeds vary more than the cost being measured; --in-run
then times each step's capture inside one generation and reports its share of the time.
--micro records each step's logits in one generation, then times the capture alone on
them (replayed in order, penalty window included), away from decoding.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# an editable install of another checkout must not supply modules this tree lacks
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]

PROMPT = "Write a long story about a lighthouse keeper and the ships she saw."
SEED = 7


def measure(model: str, threads: int, n_tokens: int, top: int) -> dict[str, float]:
    from chatapp.core.chat import prepare_prompt, template_for
    from chatapp.core.token_engine import SamplingParams
    from chatapp.engine.llama import LlamaEngine

    eng = LlamaEngine(model, n_threads=threads)
    prompt = prepare_prompt(eng, template_for(eng), "", [{"role": "user", "content": PROMPT}])
    params = SamplingParams(seed=SEED, max_tokens=n_tokens)  # the app's default sampling
    n, t_first, t_last = 0, 0.0, 0.0
    ids = []
    for s in eng.generate(prompt.tokens, params, threading.Event(), logprobs=top):
        now = time.perf_counter()
        n += 1
        ids.append(s.token_id)
        if n == 1:
            t_first = now
        t_last = now
    eng.close()
    rate = (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else 0.0
    return {"tokens": n, "tok_s": rate, "ids_hash": hash(tuple(ids))}


def in_run(model: str, threads: int, n_tokens: int, top: int) -> None:
    """Capture's share of one run's time: every step's capture (engine._sampled) is timed
    inside the same generation, so machine noise hits capture and decoding alike."""
    from chatapp.core.chat import prepare_prompt, template_for
    from chatapp.core.token_engine import SamplingParams
    from chatapp.engine.llama import LlamaEngine

    eng = LlamaEngine(model, n_threads=threads)
    prompt = prepare_prompt(eng, template_for(eng), "", [{"role": "user", "content": PROMPT}])
    spent = [0.0]
    real = eng._sampled

    def timed(*a: object) -> object:
        t = time.perf_counter()
        try:
            return real(*a)  # type: ignore[arg-type]
        finally:
            spent[0] += time.perf_counter() - t

    eng._sampled = timed  # type: ignore[method-assign, assignment]
    params = SamplingParams(seed=SEED, max_tokens=n_tokens)
    n, t_first, t_last, cap_first = 0, 0.0, 0.0, 0.0
    for _ in eng.generate(prompt.tokens, params, threading.Event(), logprobs=top):
        now = time.perf_counter()
        n += 1
        if n == 1:
            t_first, cap_first = now, spent[0]
        t_last = now
    eng.close()
    total = t_last - t_first
    cap = spent[0] - cap_first
    print(f"model: {Path(model).name}, {threads} threads, {n} tokens, top-{top}")
    print(
        f"with capture: {(n - 1) / total:.1f} tok/s; capture took {1e3 * cap / (n - 1):.2f} ms"
        f" of {1e3 * total / (n - 1):.2f} ms per token"
    )
    print(
        f"without it the same run would go {(n - 1) / (total - cap):.1f} tok/s:"
        f" cost {100 * cap / total:.1f}% (target < 10%)"
    )


def micro(model: str, threads: int, n_tokens: int, top: int, repeat: int = 20) -> None:
    """The capture alone on real logits: one generation records each step's logits and
    token, then SampledDistribution.capture is timed on them, `repeat` times over."""
    import llama_cpp
    import numpy as np

    from chatapp.core.chat import prepare_prompt, template_for
    from chatapp.core.token_engine import SamplingParams
    from chatapp.engine.llama import LlamaEngine
    from chatapp.engine.sampled_dist import SampledDistribution

    eng = LlamaEngine(model, n_threads=threads)
    prompt = prepare_prompt(eng, template_for(eng), "", [{"role": "user", "content": PROMPT}])
    seen: list[tuple[np.ndarray, int]] = []
    real = eng._sampled

    def record(ctx: object, token: int, top_n: int, dist: object) -> object:
        ptr = llama_cpp.llama_get_logits_ith(ctx, -1)
        seen.append((np.ctypeslib.as_array(ptr, shape=(eng.info.n_vocab,)).copy(), token))
        return real(ctx, token, top_n, dist)  # type: ignore[arg-type]

    eng._sampled = record  # type: ignore[method-assign, assignment]
    params = SamplingParams(seed=SEED, max_tokens=n_tokens)
    t0 = time.perf_counter()
    for _ in eng.generate(prompt.tokens, params, threading.Event(), logprobs=top):
        pass
    step = (time.perf_counter() - t0) / max(1, len(seen))
    last_n = eng._llm.last_n_tokens_size
    eng.close()
    times: list[float] = []
    for _ in range(repeat):
        dist = SampledDistribution(params, last_n)
        for logits, token in seen:
            t = time.perf_counter()
            dist.capture(logits, token, top)
            times.append(time.perf_counter() - t)
            dist.accept(token)
    per = statistics.median(times)
    print(f"model: {Path(model).name}, vocabulary {len(seen[0][0])}, {len(seen)} steps, top-{top}")
    print(
        f"capture alone: median {1e3 * per:.3f} ms, p90 "
        f"{1e3 * statistics.quantiles(times, n=10)[-1]:.3f} ms per token "
        f"({repeat} passes); a whole step with capture took {1e3 * step:.2f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--tokens", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=1, metavar="TOP")
    ap.add_argument(
        "--in-run", action="store_true", help="time capture inside one run (robust to noise)"
    )
    ap.add_argument("--micro", action="store_true", help="time the capture alone on real logits")
    args = ap.parse_args()
    if args.model is None:
        from tests import fetch_models

        args.model = str(fetch_models.fetch() / fetch_models.SMOLLM2)
    if args.micro:
        micro(args.model, args.threads, args.tokens, args.top)
        return
    if args.in_run:
        in_run(args.model, args.threads, args.tokens, args.top)
        return
    if args.child:
        out = measure(args.model, args.threads, args.tokens, int(args.child[0]))
        print(json.dumps(out))
        return
    runs: dict[int, list[dict[str, float]]] = {0: [], args.top: []}
    for r in range(args.rounds):
        for top in (0, args.top) if r % 2 == 0 else (args.top, 0):
            cmd = [
                sys.executable,
                __file__,
                "--model",
                args.model,
                "--tokens",
                str(args.tokens),
                "--threads",
                str(args.threads),
                "--child",
                str(top),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=None)
            runs[top].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(
                f"round {r + 1} top={top}: {runs[top][-1]['tok_s']:.1f} tok/s "
                f"({runs[top][-1]['tokens']:.0f} tokens)",
                flush=True,
            )
    same = {x["ids_hash"] for x in runs[0]} == {x["ids_hash"] for x in runs[args.top]}
    off = statistics.median(x["tok_s"] for x in runs[0])
    on = statistics.median(x["tok_s"] for x in runs[args.top])
    print(f"model: {Path(args.model).name}, {args.threads} threads, {args.tokens} tokens max")
    print(f"without capture: {off:.1f} tok/s (median of {args.rounds})")
    print(f"with top-{args.top} capture (raw + sampled): {on:.1f} tok/s")
    print(f"cost: {100 * (1 - on / off):.1f}% (target < 10%); same tokens both ways: {same}")


if __name__ == "__main__":
    main()
