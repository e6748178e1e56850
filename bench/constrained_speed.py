"""Constrained generation's cost: tokens/s with a JSON-schema grammar against free
generation, the same model, prompt and seed, alternated A/B for --rounds rounds (these
machines are noisy: compare the ratio of medians, not seconds). Target: >= 0.85.

The grammar (core.json_grammar, applied in llama.cpp's sampler chain) asks for a long
answer (at least 40 free strings), so both runs generate --tokens tokens. Each round
gives a ratio of its own pair; the median of those is printed beside the ratio of medians.

    python bench/constrained_speed.py [--model M.gguf] [--tokens 150] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatapp.core.backend import ChatRequest
from chatapp.core.json_grammar import schema_grammar
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine
from chatapp.engine.local import LocalBackend

SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "lines": {"type": "array", "items": {"type": "string"}, "minItems": 40},
    },
    "required": ["title", "lines"],
}
PROMPT = [{"role": "user", "content": "Write a long poem about the sea, as JSON."}]


def run(
    backend: LocalBackend, grammar: str | None, tokens: int, seed: int
) -> tuple[float, float, int]:
    """Tokens/s (wall clock) and tokens per CPU second of generation (the first token,
    which carries the prompt, left out of both), and the tokens generated."""
    request = ChatRequest(
        PROMPT, sampling=SamplingParams(seed=seed, max_tokens=tokens), grammar=grammar
    )
    stream = backend.execute(request, threading.Event())
    it = iter(stream)
    next(it)
    cpu0 = time.process_time()
    for _ in it:
        pass
    cpu = time.process_time() - cpu0
    n = stream.stats.completion_tokens
    return stream.stats.tokens_per_second, (n - 1) / cpu if cpu > 0 else 0.0, n


def main() -> None:
    default = Path.home() / ".cache/chatapp-test-models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(default))
    ap.add_argument("--tokens", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="1: CPU time compares cleanly")
    args = ap.parse_args()
    backend = LocalBackend(LlamaEngine(args.model, n_threads=args.threads))
    grammar = schema_grammar(SCHEMA)
    run(backend, None, 16, 0)  # warm-up
    free: list[float] = []
    constrained: list[float] = []
    pairs: list[float] = []
    cpu: dict[bool, list[float]] = {False: [], True: []}
    t0 = time.time()
    for r in range(args.rounds):
        order = [(None, free), (grammar, constrained)]
        if r % 2:
            order.reverse()
        for g, out in order:
            tps, per_cpu, n = run(backend, g, args.tokens, seed=r + 1)
            out.append(tps)
            cpu[g is not None].append(per_cpu)
            label = "constrained" if g else "free"
            print(
                f"round {r + 1} {label:12s} {tps:6.1f} tok/s, {per_cpu:6.1f} tok per CPU s"
                f" ({n} tokens)",
                flush=True,
            )
        pairs.append(constrained[-1] / free[-1])
    backend.close()
    a, b = statistics.median(free), statistics.median(constrained)
    print(f"\n{Path(args.model).name}: free {a:.1f} tok/s, constrained {b:.1f} tok/s (medians)")
    print(
        f"ratio constrained/free: {b / a:.2f} (of medians), {statistics.median(pairs):.2f} (median"
    )
    print(f"of the rounds' own ratios); target >= 0.85; {time.time() - t0:.0f} s")
    fc, cc = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(
        f"per CPU second (unmoved by other processes): free {fc:.1f}, constrained {cc:.1f},"
        f" ratio {cc / fc:.2f}"
    )


if __name__ == "__main__":
    main()
