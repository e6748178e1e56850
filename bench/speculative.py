"""Speculative decoding vs plain decoding, tokens/s, ratios in one run.

    python bench/speculative.py [--model PATH] [--draft PATH] [--tokens 150] [--rounds 2]

Two tasks at temperature 0, as completions: "copy", repeat this code with one change
(where lookup should pay), and "story", a story continued (little to copy: where a
drafter should cost nothing). Configurations, one engine each, rounds alternating so
machine noise hits all alike:
- plain: the default load (no flash attention, F16 KV cache), plain decoding
- plain-fa: the speculative load (flash attention; on the CPU a BF16 KV cache),
  speculation off for the call
- lookup: prompt lookup drafts
- draft: the draft model drafts (lookup first), --draft (default: the model itself)
Every configuration's tokens must equal plain-fa's (printed). Ratios are of the summed
tokens/s over the rounds. Default model: Gemma 3 270M base (tests/fetch_models.py), which
copies the code exactly; SmolLM2-135M-Instruct rewrites it even as a completion (a third to
a half of lookup's drafts accepted), so it measures the model more than the drafter.
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
TASKS = {
    "copy": f"# shapes.py\n{CODE}\n\n# shapes.py again, with perimeter renamed to circumference:\n",
    "story": "The old lighthouse keeper climbed the stairs one last time. ",
}


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
    from tests.fetch_models import GEMMA3, fetch

    model = args.model or str(fetch() / GEMMA3)
    draft = args.draft or model
    kw = {"n_threads": args.threads, "context_limit": 2048}
    engines = {
        "plain": (LlamaEngine(model, **kw), False),
        "plain-fa": (LlamaEngine(model, speculative="lookup", **kw), False),
        "lookup": (LlamaEngine(model, speculative="lookup", **kw), True),
        "draft": (LlamaEngine(model, speculative="draft", draft_model=draft, **kw), True),
    }
    first = engines["plain"][0]
    bos = [first._llm.token_bos()] if first.info.add_bos else []
    for task, text in TASKS.items():
        prompt = bos + first.tokenize(text, special=False)
        print(
            f"\n{task}: prompt {len(prompt)} tokens, {args.tokens} generated, {args.threads} threads"
        )
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
            print(f"{task}: {name:9s} same tokens as plain-fa: {same}")
        base = sum(tps["plain-fa"])
        for name in engines:
            print(f"{task}: ratio {name:9s} / plain-fa: {sum(tps[name]) / base:.3f}")
        print(f"{task}: ratio plain-fa / plain: {base / sum(tps['plain']):.3f}")
    for eng, _ in engines.values():
        eng.close()


if __name__ == "__main__":
    main()
