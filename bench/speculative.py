"""Speculative decoding vs plain decoding, tokens/s, ratios in one run.

    python bench/speculative.py [--model PATH] [--draft PATH] [--tokens 150] [--rounds 2]

The task is "repeat this code with one change" at temperature 0, as a completion (the
test models copy it there; as a chat question SmolLM2-135M paraphrases). Configurations,
one engine each, rounds alternating so machine noise hits all alike:
- plain: the default load (no flash attention), plain decoding
- plain-fa: the speculative load (flash attention), speculation off for the call
- lookup: prompt lookup drafts
- draft: the draft model drafts (lookup first), --draft (default: the model itself)
Every configuration's tokens must equal plain-fa's (printed). Ratios are of the summed
tokens/s over the rounds. Default model: SmolLM2-135M-Instruct (tests/fetch_models.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CODE = '''def area(w, h):
    """Area of a rectangle."""
    return w * h


def perimeter(w, h):
    """Perimeter of a rectangle."""
    return 2 * (w + h)
'''
TASK = f"# shapes.py\n{CODE}\n\n# shapes.py again, with perimeter renamed to circumference:\n"


def run(engine, prompt, n_tokens, speculate):  # type: ignore[no-untyped-def]
    from chatapp.core.token_engine import SamplingParams

    engine.speculation_enabled = speculate
    params = SamplingParams(temperature=0.0, max_tokens=n_tokens, seed=1)
    out: list[int] = []
    t_first = 0.0
    for s in engine.generate(prompt, params, threading.Event(), logprobs=5):
        out.append(s.token_id)
        if len(out) == 1:
            t_first = time.perf_counter()
    tps = (len(out) - 1) / (time.perf_counter() - t_first) if len(out) > 1 else 0.0
    return tps, out, engine.last_speculation


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--draft", default=None, help="draft model (default: the model itself)")
    ap.add_argument("--tokens", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from chatapp.engine.llama import LlamaEngine
    from tests.fetch_models import SMOLLM2, fetch

    model = args.model or str(fetch() / SMOLLM2)
    draft = args.draft or model
    kw = {"n_threads": args.threads, "context_limit": 2048}
    engines = {
        "plain": (LlamaEngine(model, **kw), False),
        "plain-fa": (LlamaEngine(model, speculative="lookup", **kw), False),
        "lookup": (LlamaEngine(model, speculative="lookup", **kw), True),
        "draft": (LlamaEngine(model, speculative="draft", draft_model=draft, **kw), True),
    }
    first = engines["plain"][0]
    prompt = ([first._llm.token_bos()] if first.info.add_bos else []) + first.tokenize(
        TASK, special=False
    )
    print(f"prompt {len(prompt)} tokens, {args.tokens} generated, {args.threads} threads")
    tps: dict[str, list[float]] = {k: [] for k in engines}
    outs: dict[str, list[int]] = {}
    for r in range(args.rounds):
        for name, (eng, speculate) in engines.items():
            t, out, st = run(eng, prompt, args.tokens, speculate)
            tps[name].append(t)
            outs[name] = out
            print(f"round {r} {name:9s} {t:6.1f} tok/s  {len(out)} tokens  {st}", flush=True)
    ref = outs["plain-fa"]
    for name in engines:
        same = outs[name] == ref
        print(f"{name:9s} same tokens as plain-fa: {same}")
    base = sum(tps["plain-fa"])
    for name in engines:
        print(f"ratio {name:9s} / plain-fa: {sum(tps[name]) / base:.3f}")
    print(f"ratio plain-fa / plain: {base / sum(tps['plain']):.3f}")
    for eng, _ in engines.values():
        eng.close()


if __name__ == "__main__":
    main()
