"""SampledDistribution.capture (threshold candidates, float32 normaliser, no full sort)
against a straightforward reference: a float64 softmax over the whole vocabulary and a
full sort, on real logits from SmolLM2 (49k vocabulary) and Gemma 3 (262k) at every
step of a generation, for the app's default sampling and the chain's other shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatapp.core.chat import prepare_prompt, template_for
from chatapp.core.token_engine import Sampled, SamplingParams
from chatapp.engine.llama import LlamaEngine
from chatapp.engine.sampled_dist import SampledDistribution
from tests.engine.test_sampled_dist import _generate_recording

TOL = 1e-4
PARAMS = [
    SamplingParams(seed=3),  # the app's default: top_k 40, top_p 0.95, min_p 0.05, penalty 1.1
    SamplingParams(temperature=0.0, seed=1),
    SamplingParams(temperature=1.3, top_k=100, top_p=0.9, min_p=0.0, repeat_penalty=1.5, seed=7),
    SamplingParams(temperature=0.9, top_k=0, top_p=0.8, min_p=0.02, repeat_penalty=1.2, seed=11),
    SamplingParams(temperature=0.8, top_k=3, top_p=1.0, min_p=0.0, repeat_penalty=0.8, seed=5),
    SamplingParams(temperature=0.7, top_k=0, top_p=0.9, min_p=0.0, seed=13),
    SamplingParams(temperature=-1.0, seed=17),  # no truncation at all
]
ID = ["default", "greedy", "penalty-1.5", "top-k-off", "penalty-below-1", "top-p-only", "dist"]


def _reference_raw(logits: np.ndarray) -> np.ndarray:
    lg = logits.astype(np.float64)
    m = lg.max()
    return lg - (m + math.log(np.exp(lg - m).sum()))


def _reference_sampled(
    logits: np.ndarray, window: list[int], p: SamplingParams
) -> tuple[np.ndarray, np.ndarray]:
    """llama.cpp's chain (see engine/sampled_dist.py), written out over the whole vocabulary."""
    pen = logits.astype(np.float64)
    rp = p.repeat_penalty
    for t in set(window):
        pen[t] = pen[t] * rp if pen[t] <= 0 else pen[t] / rp
    order = np.argsort(-pen, kind="stable")
    if p.temperature == 0:
        return order[:1], np.zeros(1)
    if p.temperature < 0:  # the draw straight from the penalized logits
        return order, pen[order] - (pen.max() + math.log(np.exp(pen - pen.max()).sum()))
    if p.top_k > 0:
        order = order[: p.top_k]
    vals = pen[order]
    probs = np.exp(vals - vals[0])
    probs /= probs.sum()
    keep = len(order)
    if p.top_p < 1.0:
        keep = min(keep, int(np.searchsorted(np.cumsum(probs), p.top_p)) + 1)
    if p.min_p > 0.0:
        keep = min(keep, max(1, int(np.sum(vals >= vals[0] + math.log(p.min_p)))))
    scaled = vals[:keep] / p.temperature
    m = scaled.max()
    return order[:keep], scaled - (m + math.log(np.exp(scaled - m).sum()))


def _assert_top_matches(top, ref_order: np.ndarray, ref_lp: np.ndarray, n: int) -> None:
    """`top` (id, log-probability) best first against the reference's n best: the same
    log-probabilities, and the same ids unless tokens tie at the cut."""
    ref_by_id = dict(zip(ref_order.tolist(), ref_lp.tolist()))
    want = [ref_by_id[int(t)] for t in ref_order[:n]]
    assert len(top) == len(want)
    assert [lp for _, lp in top] == pytest.approx(want, abs=TOL)
    ids = {t for t, _ in top}
    if ids != {int(t) for t in ref_order[:n]}:
        cut = want[-1]  # -inf for masked tokens: they tie too
        others = ids - {int(t) for t in ref_order[:n]}
        assert all(ref_by_id[t] == pytest.approx(cut, abs=TOL) for t in others)


def _capture_run(engine: LlamaEngine, params: SamplingParams, n_tokens: int):
    """Generate with capture on, keeping a copy of each step's logits."""
    tpl = template_for(engine)
    text = "Write a list of fruits, repeating the word fruit often."
    prompt = prepare_prompt(engine, tpl, "", [{"role": "user", "content": text}]).tokens
    params = SamplingParams(**{**params.as_dict(), "max_tokens": n_tokens})
    steps, seen = _generate_recording(engine, prompt, params)
    assert len(steps) >= 8
    return steps, seen


def _check_against_reference(
    engine: LlamaEngine, params: SamplingParams, n_tokens: int, top_n: int = 5
) -> None:
    steps, logits = _capture_run(engine, params, n_tokens)
    last_n = engine._llm.last_n_tokens_size
    replay = SampledDistribution(params, last_n)
    window: list[int] = []
    for step, lg in zip(steps, logits):
        raw_lp = _reference_raw(lg)
        raw_order = np.argsort(-raw_lp, kind="stable")
        ids, lps = _reference_sampled(lg, window, params)
        sampled = dict(zip(ids.tolist(), lps.tolist()))
        # what the engine reported while generating, and the capture replayed with a
        # different top_n on the same logits
        lp, top, s_lp, s_top = replay.capture(lg, step.token_id, top_n + 3)
        for got in (step, Sampled(step.token_id, lp, top, s_lp, s_top)):
            assert got.logprob == pytest.approx(raw_lp[step.token_id], abs=TOL)
            n = len(got.top)
            _assert_top_matches(got.top, raw_order, raw_lp[raw_order], n)
            _assert_top_matches(got.sampled_top, ids, lps, min(n, len(ids)))
            assert got.sampled_logprob == pytest.approx(sampled[step.token_id], abs=TOL)
        replay.accept(step.token_id)
        window = ([*window, step.token_id])[-last_n:]


def _check_replay(logits: list[np.ndarray], tokens: list[int], params: SamplingParams) -> None:
    """capture() replayed over logits against the reference, without a model."""
    dist = SampledDistribution(params)
    window: list[int] = []
    for lg, token in zip(logits, tokens):
        raw_lp = _reference_raw(lg)
        raw_order = np.argsort(-raw_lp, kind="stable")
        ids, lps = _reference_sampled(lg, window, params)
        lp, top, s_lp, s_top = dist.capture(lg, token, 5)
        assert lp == pytest.approx(raw_lp[token], abs=TOL)
        _assert_top_matches(top, raw_order, raw_lp[raw_order], min(5, len(lg)))
        _assert_top_matches(s_top, ids, lps, min(5, len(ids)))
        sampled = dict(zip(ids.tolist(), lps.tolist()))
        assert s_lp == (pytest.approx(sampled[token], abs=TOL) if token in sampled else None)
        dist.accept(token)
        window.append(token)


@pytest.mark.parametrize("params", PARAMS, ids=ID)
def test_capture_on_odd_logits(params):
    """Shapes real logits rarely take: a vocabulary smaller than the candidates asked
    for, a few finite logits among -inf (masked tokens), everything tied, a flat
    distribution where top_p needs most of the vocabulary."""
    rng = np.random.default_rng(0)
    masked = np.full(5000, -np.inf, dtype=np.float32)
    masked[[3, 70, 4000]] = [1.0, 2.5, -0.5]
    cases = [
        [rng.normal(size=30).astype(np.float32) for _ in range(6)],
        [masked] * 3,
        [np.zeros(1999, dtype=np.float32)] * 3,
        [rng.normal(scale=0.01, size=20000).astype(np.float32) for _ in range(3)],
    ]
    for logits in cases:
        tokens = [int(np.argmax(lg)) for lg in logits]
        _check_replay(logits, tokens, params)


@pytest.fixture(scope="module")
def smol(smollm2_path):
    e = LlamaEngine(smollm2_path, n_threads=2)
    yield e
    e.close()


@pytest.fixture(scope="module")
def gemma(gemma_path):
    e = LlamaEngine(gemma_path, n_threads=2)
    yield e
    e.close()


@pytest.mark.model
@pytest.mark.parametrize("params", PARAMS, ids=ID)
def test_capture_matches_reference_on_smollm2(smol, params):
    _check_against_reference(smol, params, 40)


@pytest.mark.model
@pytest.mark.parametrize("params", PARAMS[:4], ids=ID[:4])
def test_capture_matches_reference_on_gemma(gemma, params):
    _check_against_reference(gemma, params, 16)


@pytest.mark.model
def test_candidates_widen_when_the_margin_starts_too_narrow(smol):
    """The adaptive margin is a guess carried between steps: a guess far too narrow or
    far too wide on the next step's logits changes the cost, never the answer."""
    steps, logits = _capture_run(smol, SamplingParams(seed=3), 12)
    for margin in (1e-6, 0.5, 500.0):
        dist = SampledDistribution(SamplingParams(seed=3))
        for step, lg in zip(steps, logits):
            dist._margin = margin
            lp, top, s_lp, s_top = dist.capture(lg, step.token_id, 5)
            assert (lp, top, s_lp, s_top) == (
                step.logprob,
                step.top,
                step.sampled_logprob,
                step.sampled_top,
            )
            dist.accept(step.token_id)
