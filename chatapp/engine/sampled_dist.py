"""The distribution llama.cpp's sampler actually draws from, recomputed in numpy.

The raw next-token distribution is the softmax of the logits. What the sampler draws
from is narrower: llama-cpp-python (0.3.x, Llama._init_sampler) builds this chain for
every Llama.generate() call, and this module follows it step by step on the same logits:

1. penalties: a token seen among the last `last_n` (64, Llama.last_n_tokens_size) tokens
   *accepted by this sampler* has its logit divided by repeat_penalty (multiplied when
   the logit is <= 0); frequency and presence penalties are 0 in chatapp. The sampler is
   new for each generate() call and the prompt is never accepted into it, so the window
   holds only the tokens generated in this call.
2. temperature == 0: greedy, the first highest penalized logit (probability 1; the
   other steps are skipped). temperature < 0: dist straight away (no truncation).
3. top_k (k <= 0: off), then typical_p (1.0 in chatapp: off)
4. top_p: the smallest best-first prefix whose softmax mass reaches top_p (>= 1: off)
5. min_p: keep logits >= best logit + log(min_p), i.e. p >= min_p * p_best (<= 0: off)
6. temperature: logits / temperature
7. dist: softmax over the survivors; the token is drawn from this.

tests/engine/test_sampled_dist.py checks it against llama.cpp's own samplers (the same
chain built through the C API) on real SmolLM2 logits; tests/engine/test_capture_reference.py
checks the engine's per-token capture() against a float64 softmax and full sort of the
whole vocabulary, on SmolLM2 and Gemma 3 logits.
"""

from __future__ import annotations

import math
from collections import Counter, deque

import numpy as np

from chatapp.core.token_engine import SamplingParams

DEFAULT_LAST_N = 64

Alternatives = tuple[tuple[int, float], ...]


class SampledDistribution:
    """Follows one generate() call: feed it each step's logits, then the token drawn."""

    def __init__(self, params: SamplingParams, last_n: int = DEFAULT_LAST_N) -> None:
        self.params = params
        self.last_n = max(0, int(last_n))
        self._window: deque[int] = deque()
        self._counts: Counter[int] = Counter()
        # capture()'s scratch, one vocabulary's size each, allocated once per call:
        # exp(logits - max) for the normaliser, and which logits pass the threshold
        self._exp: np.ndarray | None = None
        self._above: np.ndarray | None = None
        self._margin = INITIAL_MARGIN  # how far below the best logit candidates reach
        self._threshold = -math.inf  # the last candidates: every logit >= this, and more

    def accept(self, token: int) -> None:
        """The token the sampler drew (it enters the penalty window)."""
        if self.last_n == 0:
            return
        if len(self._window) >= self.last_n:
            old = self._window.popleft()
            self._counts[old] -= 1
            if self._counts[old] <= 0:
                del self._counts[old]
        self._window.append(token)
        self._counts[token] += 1

    def _penalizes(self) -> bool:
        return bool(self._counts) and float(self.params.repeat_penalty) != 1.0 and self.last_n > 0

    def penalized(self, logits: np.ndarray) -> np.ndarray:
        """The logits after the repeat penalty (the input itself when nothing changes)."""
        if not self._penalizes():
            return logits
        out = np.array(logits, dtype=np.float32, copy=True)
        ids = np.fromiter(self._counts.keys(), dtype=np.int64, count=len(self._counts))
        out[ids] = _penalty(out[ids], self.params.repeat_penalty)
        return out

    def distribution(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates the sampler draws from, best first, and their log-probabilities
        (they sum to 1 in probability)."""
        return self._chain(self.penalized(logits))

    def _chain(self, pen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chain over the whole vocabulary's penalized logits."""
        p = self.params
        n = pen.shape[0]
        if p.temperature > 0 and 0 < p.top_k < n:
            pool = np.argpartition(pen, -p.top_k)[-p.top_k :]
            return self._chain_over(pool, pen[pool])
        return self._chain_over(np.arange(n), pen)

    def _chain_over(self, ids: np.ndarray, pen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The chain over candidates `ids` (penalized logits `pen`), which hold the
        top_k highest penalized logits of the vocabulary (with temperature 0: its
        highest; with top_k off or temperature < 0: all of it)."""
        p = self.params
        if p.temperature == 0:
            best = int(np.argmax(pen))  # the first highest, as the greedy sampler takes
            return ids[best : best + 1], np.zeros(1)
        if p.temperature < 0:
            return _softmax_sorted(ids, pen.astype(np.float64))
        order = np.argsort(-pen, kind="stable")
        if 0 < p.top_k < len(order):
            order = order[: p.top_k]
        ids, vals = ids[order], pen[order].astype(np.float64)
        keep = len(ids)
        if p.top_p < 1.0:
            probs = np.exp(vals - vals[0])
            cum = np.cumsum(probs / probs.sum())
            reached = np.flatnonzero(cum >= p.top_p)
            if len(reached):
                keep = min(keep, int(reached[0]) + 1)
        if p.min_p > 0.0:
            floor = vals[0] + math.log(p.min_p)
            keep = min(keep, max(1, int(np.count_nonzero(vals >= floor))))
        return _softmax_sorted(ids[:keep], vals[:keep] / p.temperature)

    def capture(
        self, logits: np.ndarray, token: int, top_n: int
    ) -> tuple[float, Alternatives, float | None, Alternatives]:
        """One step's record: the token's raw log-probability, the raw top_n, its
        sampled log-probability (None if outside the candidates) and the sampled top_n.

        Cheap enough for every token of a 262k vocabulary: a few vectorised passes over
        the logits (max, the normaliser's exp and sum, a comparison against a threshold
        or two), no full sort or partition, no copy of the vocabulary. The candidates are
        every logit within a margin of the best (the margin adapts from step to step)
        and the penalty window's tokens. The penalty changes only the window's logits,
        so once the candidates hold top_n + top_k + window tokens they hold the raw
        top_n and the penalized top_k, ties included. With top_k off, top_p and min_p
        usually cut within them too; when they do not, the whole vocabulary is sorted."""
        n = logits.shape[0]
        if self._exp is None or self._exp.shape[0] != n:
            self._exp = np.empty(n, dtype=np.float32)
            self._above = np.empty(n, dtype=np.bool_)
        m = logits.max()
        exp = np.subtract(logits, m, out=self._exp)
        np.exp(exp, out=exp)
        z = float(exp.sum())  # exp(0) is in it: >= 1
        log_z = float(m) + math.log(z)
        p = self.params
        window = (
            np.fromiter(self._counts, dtype=np.int64, count=len(self._counts))
            if self._counts
            else _NO_IDS
        )
        # temperature 0 needs the best penalized logit, top_k > 0 the k best
        bounded = p.temperature == 0 or (p.temperature > 0 and 0 < p.top_k < n)
        need = max(top_n, p.top_k if p.temperature > 0 else 1) if bounded else top_n
        pool = self._candidates(logits, float(m), need + len(window), window)
        raw = logits[pool]
        raw_top = pool[np.argsort(-raw, kind="stable")[:top_n]]
        pen = raw
        at = np.searchsorted(pool, window)  # the window is in the (sorted) pool
        if self._penalizes():
            pen = raw.copy()
            pen[at] = _penalty(pen[at], p.repeat_penalty)
        cut = None
        if bounded:
            cut = self._chain_over(pool, pen)
        elif p.temperature > 0:
            # the whole vocabulary's penalized mass (relative to exp(m)): float64 here,
            # as the top_p cut is decided on it
            z_pen = float(exp.sum(dtype=np.float64))
            z_pen += float(np.exp(pen[at] - m, dtype=np.float64).sum())
            z_pen -= float(exp[window].sum(dtype=np.float64))
            cut = self._cut_open(pool, pen, float(m), z_pen)
        ids, lps = cut if cut is not None else self._chain(self.penalized(logits))
        chosen = np.flatnonzero(ids == token)
        return (
            float(logits[token]) - log_z,
            tuple((int(t), float(logits[t]) - log_z) for t in raw_top),
            float(lps[chosen[0]]) if len(chosen) else None,
            tuple((int(t), float(lp)) for t, lp in zip(ids[:top_n], lps[:top_n])),
        )

    def _cut_open(
        self, pool: np.ndarray, pen: np.ndarray, m: float, z_pen: float
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """top_k off, temperature > 0: top_p and min_p over the whole vocabulary, from the
        candidates (penalized logits `pen`) when their cut falls where the candidates are
        all there is: above the threshold (self._threshold), below which every token
        outside them lies. z_pen: sum(exp(penalized logits - m)) over the vocabulary.
        None when the cut falls below the threshold."""
        p = self.params
        order = np.argsort(-pen, kind="stable")
        ids, vals = pool[order], pen[order].astype(np.float64)
        known = int(np.count_nonzero(vals >= self._threshold))  # sorted: a prefix
        keep, decided = len(ids), False
        if p.top_p < 1.0:
            cum = np.cumsum(np.exp(vals[:known] - m)) / z_pen
            reached = np.flatnonzero(cum >= p.top_p)
            if len(reached):
                keep, decided = int(reached[0]) + 1, True
        if p.min_p > 0.0:
            floor = vals[0] + math.log(p.min_p)
            if floor >= self._threshold:
                keep, decided = min(keep, max(1, int(np.count_nonzero(vals >= floor)))), True
        if not decided:
            return None
        return _softmax_sorted(ids[:keep], vals[:keep] / p.temperature)

    def _candidates(
        self, logits: np.ndarray, best: float, k: int, window: np.ndarray
    ) -> np.ndarray:
        """Sorted ids of every logit >= best - margin (at least k of them, and not many
        more: each is sorted) and of the window's tokens. The margin starts where the
        last step's ended (steps look alike) and is widened or bisected, one comparison
        pass per try."""
        n = logits.shape[0]
        self._threshold = -math.inf
        if k >= n:
            return np.arange(n)
        above = self._above
        assert above is not None
        enough = max(_SPARE * k, _MIN_POOL)
        low, high = 0.0, math.inf  # margins known to give too few / too many
        margin = self._margin
        for tries in range(1, _MAX_TRIES + 1):
            threshold = np.float32(best - margin)
            np.greater_equal(logits, threshold, out=above)
            found = int(np.count_nonzero(above))
            if k <= found <= enough or (found > enough and tries == _MAX_TRIES):
                break
            if found < k:
                low = margin
            else:
                high = margin
            if tries == _MAX_TRIES:  # still too few
                if high == math.inf:  # NaN or -inf logits: too few are finite
                    self._threshold = math.inf  # nothing is known beyond these
                    return np.union1d(np.argpartition(logits, -k)[-k:], window)
                margin = high  # the narrowest margin seen to hold enough
                threshold = np.float32(best - margin)
                np.greater_equal(logits, threshold, out=above)
                break
            margin = max(2.0 * margin, 0.25) if high == math.inf else (low + high) / 2.0
        self._margin = margin
        self._threshold = float(threshold)
        above[window] = True
        return np.flatnonzero(above)


INITIAL_MARGIN = 8.0
_SPARE = 8  # candidates up to this many times what is needed are fine ...
_MIN_POOL = 512  # ... or up to this many: sorting them costs little
_MAX_TRIES = 16  # 0.25 * 2**15: past any finite spread of real logits
_NO_IDS = np.zeros(0, dtype=np.int64)


def _penalty(v: np.ndarray, repeat_penalty: float) -> np.ndarray:
    """llama.cpp's repeat penalty on float32 logits: divided if positive, else multiplied."""
    rp = np.float32(repeat_penalty)
    return np.where(v <= 0, v * rp, v / rp)


def _softmax_sorted(ids: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) > 1 and not bool(np.all(vals[:-1] >= vals[1:])):
        order = np.argsort(-vals, kind="stable")
        ids, vals = ids[order], vals[order]
    m = float(vals[0]) if len(vals) else 0.0
    log_z = m + float(np.log(np.exp(vals - m).sum()))
    return ids, vals - log_z
