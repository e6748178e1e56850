"""Exact answers: time to first token per turn of an 8-turn chat, and what the background
settle after each answer costs (engine level, SmolLM2). Run it on two trees to compare:

    PYTHONPATH=/path/to/tree python bench/settle_cost.py [--model M.gguf] [--threads 2]

A tree without LlamaEngine.settle prints only the time to first token.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import chatapp
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine

QUESTIONS = [
    "Tell me about the history of tea.",
    "How is green tea made?",
    "And black tea?",
    "Which countries grow the most tea?",
    "What is matcha?",
    "Is tea healthy?",
    "How should I brew oolong?",
    "Thanks!",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    default = Path.home() / ".cache/chatapp-test-models/SmolLM2-135M-Instruct.Q4_1.gguf"
    ap.add_argument("--model", default=str(default))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    e = LlamaEngine(args.model, context_limit=4096, n_threads=args.threads)
    params = SamplingParams(temperature=0.7, seed=5, max_tokens=150)
    ids = e.tokenize("<|im_start|>system\nYou are helpful.<|im_end|>\n", special=True)
    ttft: list[float] = []
    settled: list[tuple[int, float]] = []
    for q in QUESTIONS:
        ids += e.tokenize(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")
        t = time.perf_counter()
        first = None
        out = []
        for s in e.generate(ids, params, threading.Event(), cache_key="c"):
            if first is None:
                first = time.perf_counter() - t
            out.append(s.token_id)
        ttft.append(first or 0.0)
        ids += out + e.tokenize("<|im_end|>\n")
        settle = getattr(e, "settle", None)
        if settle is not None:
            t = time.perf_counter()
            n = settle()
            settled.append((n, time.perf_counter() - t))
    e.close()
    print(chatapp.__file__)
    print("time to first token per turn (ms):", [round(x * 1000) for x in ttft])
    if settled:
        print("settle per answer (tokens, ms):", [(n, round(s * 1000)) for n, s in settled])


if __name__ == "__main__":
    main()
