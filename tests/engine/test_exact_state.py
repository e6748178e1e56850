"""Issue 22 items 1 and 2: an answer is a function of its prompt and settings, exactly.

A warm engine (KV cache reused across turns, a conversation switched away and back, an
answer settled in the background) and a fresh one give the same log-probabilities and the
same tokens, bit for bit, past 1,000 tokens, for SmolLM2 and for Gemma 3 (sliding-window
attention, repacked 4-bit weights)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from chatapp.core.token_engine import Sampled, SamplingParams
from chatapp.engine.llama import LlamaEngine

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0, top_k=1, max_tokens=6, seed=3)
TEXT = " ".join(f"Item {i} costs {i * 7 % 13} coins." for i in range(260))


def _run(engine: LlamaEngine, prompt: list[int], key: str) -> list[Sampled]:
    return list(engine.generate(prompt, GREEDY, threading.Event(), logprobs=5, cache_key=key))


@pytest.mark.parametrize("model", ["smollm2_path", "gemma_path"])
def test_warm_switched_settled_equals_cold(model: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(model)
    warm = LlamaEngine(path, context_limit=2048, n_threads=2)
    try:
        ids = warm.tokenize(TEXT)
        assert len(ids) > 1300
        p1 = ids[:1020]  # the answer crosses position 1024
        a1 = _run(warm, p1, "a")
        assert warm.settle() > 0  # the background job after an answer
        _run(warm, ids[:300], "b")  # a switch: a's state is saved, b's evaluated
        # a again: restored from the saved state, past 1,000 tokens, plus new tokens
        p2 = p1 + [s.token_id for s in a1] + ids[1100:1137]
        a2 = _run(warm, p2, "a")
        if warm.sliding_window:  # keeps no states: a's history is evaluated again
            assert warm.last_prompt.reused < len(p1)
        else:  # the restored state was used
            assert warm.last_prompt.reused >= 1000
        # an edit: a shorter prefix of the same conversation
        p3 = p1[:700] + ids[1200:1213]
        a3 = _run(warm, p3, "a")
    finally:
        warm.close()
    results = {}
    for name, prompt in (("a1", p1), ("a2", p2), ("a3", p3)):
        cold = LlamaEngine(path, context_limit=2048, n_threads=2)
        try:
            results[name] = _run(cold, prompt, "x")
        finally:
            cold.close()
    assert results["a1"] == a1
    assert results["a2"] == a2  # token ids and every log-probability, exactly
    assert results["a3"] == a3
