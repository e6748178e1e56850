"""The sampled distribution (engine.sampled_dist) against llama.cpp's own samplers, on the
real SmolLM2's logits, and the engine's two distributions at each generated token."""

from __future__ import annotations

import ctypes
import math
import threading

import llama_cpp
import numpy as np
import pytest

from chatapp.core.chat import prepare_prompt, template_for
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine
from chatapp.engine.sampled_dist import SampledDistribution

pytestmark = pytest.mark.model

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


@pytest.fixture(scope="module")
def smol(smollm2_path):
    e = LlamaEngine(smollm2_path, n_threads=2)
    yield e
    e.close()


def _prompt(engine: LlamaEngine, text: str) -> list[int]:
    tpl = template_for(engine)
    return prepare_prompt(engine, tpl, "", [{"role": "user", "content": text}]).tokens


def _generate_recording(engine: LlamaEngine, prompt: list[int], params: SamplingParams, n: int = 5):
    """Generate with capture on, keeping a copy of each step's logits."""
    seen: list[np.ndarray] = []
    real = engine._sampled

    def spy(ctx, token, top_n, dist, row=-1):
        ptr = llama_cpp.llama_get_logits_ith(ctx, row)
        seen.append(np.ctypeslib.as_array(ptr, shape=(engine.info.n_vocab,)).copy())
        return real(ctx, token, top_n, dist, row)

    engine._sampled = spy  # type: ignore[method-assign]
    try:
        steps = list(engine.generate(prompt, params, threading.Event(), logprobs=n))
    finally:
        del engine._sampled
    assert len(seen) == len(steps)
    return steps, seen


class _LlamaChain:
    """llama-cpp-python's chain for Llama.generate (without the final dist), built through
    llama.cpp's C API: what the real sampler does to the logits before it draws."""

    def __init__(self, n_vocab: int, p: SamplingParams, last_n: int = 64) -> None:
        self.chain = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )

        def add(sampler: object) -> None:
            llama_cpp.llama_sampler_chain_add(self.chain, sampler)

        add(llama_cpp.llama_sampler_init_penalties(n_vocab, last_n, p.repeat_penalty, 0.0, 0.0))
        add(llama_cpp.llama_sampler_init_top_k(p.top_k))
        add(llama_cpp.llama_sampler_init_typical(1.0, 1))
        add(llama_cpp.llama_sampler_init_top_p(p.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(p.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(p.temperature))

    def survivors(self, logits: np.ndarray) -> dict[int, float]:
        data = np.zeros(len(logits), dtype=TOKEN_DATA)
        data["id"] = np.arange(len(logits))
        data["logit"] = logits
        arr = llama_cpp.llama_token_data_array(
            data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)), len(logits), -1, False
        )
        llama_cpp.llama_sampler_apply(self.chain, ctypes.byref(arr))
        kept = data[: arr.size]
        lg = kept["logit"].astype(np.float64)
        lp = lg - (lg.max() + np.log(np.exp(lg - lg.max()).sum()))
        return {int(i): float(v) for i, v in zip(kept["id"], lp)}

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self.chain, token)

    def close(self) -> None:
        llama_cpp.llama_sampler_free(self.chain)


@pytest.mark.parametrize(
    "params",
    [
        SamplingParams(
            temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1, seed=3
        ),
        # strong penalty and loose truncation: the window and the top-p cut both matter
        SamplingParams(
            temperature=1.3, top_k=100, top_p=0.9, min_p=0.0, repeat_penalty=1.5, seed=7
        ),
        SamplingParams(
            temperature=0.5, top_k=0, top_p=0.8, min_p=0.02, repeat_penalty=1.2, seed=11
        ),
    ],
)
def test_sampled_distribution_matches_llama_cpp_samplers(smol, params):
    params = SamplingParams(**{**params.as_dict(), "max_tokens": 48})
    prompt = _prompt(smol, "Write a short list of fruits, repeating the word fruit often.")
    steps, logits = _generate_recording(smol, prompt, params)
    chain = _LlamaChain(smol.info.n_vocab, params)
    mirror = SampledDistribution(params)
    try:
        for step, lg in zip(steps, logits):
            real = chain.survivors(lg)
            ids, lps = mirror.distribution(lg)
            ours = dict(zip(ids.tolist(), lps.tolist()))
            assert set(ours) == set(real)
            for t, lp in real.items():
                assert ours[t] == pytest.approx(lp, abs=2e-4)
            # the real sampler drew the token from this set, and the engine reported it
            assert step.token_id in real
            assert step.sampled_logprob == pytest.approx(real[step.token_id], abs=2e-4)
            chain.accept(step.token_id)
            mirror.accept(step.token_id)
    finally:
        chain.close()


def test_temperature_zero_draws_the_top_of_the_sampled_distribution(smol):
    # the default repeat penalty (1.1) is on: the raw top may lose to it, the sampled top never
    params = SamplingParams(temperature=0.0, max_tokens=60, seed=1)
    steps = list(
        smol.generate(
            _prompt(smol, "Count from one to twenty in words."),
            params,
            threading.Event(),
            logprobs=5,
        )
    )
    assert len(steps) >= 20
    for s in steps:
        assert s.sampled_top[0][0] == s.token_id
        assert len(s.sampled_top) == 1 and s.sampled_logprob == 0.0


def test_top_k_one_leaves_one_candidate_with_probability_one(smol):
    params = SamplingParams(temperature=0.9, top_k=1, max_tokens=30, seed=5)
    steps = list(
        smol.generate(_prompt(smol, "Name a colour."), params, threading.Event(), logprobs=5)
    )
    assert steps
    for s in steps:
        assert [t for t, _ in s.sampled_top] == [s.token_id]
        assert math.exp(s.sampled_top[0][1]) == pytest.approx(1.0)
        assert len(s.top) == 5  # the raw distribution still has its alternatives


def test_raw_and_sampled_alternatives_are_probabilities(smol):
    params = SamplingParams(temperature=0.7, max_tokens=40, seed=2)
    steps = list(
        smol.generate(_prompt(smol, "Why is the sky blue?"), params, threading.Event(), logprobs=5)
    )
    assert len(steps) >= 10
    for s in steps:
        for top in (s.top, s.sampled_top):
            probs = [math.exp(lp) for _, lp in top]
            assert all(0.0 < p <= 1.0 for p in probs)
            assert sum(probs) <= 1.0 + 1e-4
            assert probs == sorted(probs, reverse=True)
        # the drawn token is always one of the sampler's candidates
        assert s.sampled_logprob is not None and s.logprob is not None
        assert math.exp(s.sampled_logprob) > 0.0
