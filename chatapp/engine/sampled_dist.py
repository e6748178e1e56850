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
chain built through the C API) on real SmolLM2 logits.
"""

from __future__ import annotations

import math
from collections import Counter, deque

import numpy as np

from chatapp.core.engine import SamplingParams

DEFAULT_LAST_N = 64

Alternatives = tuple[tuple[int, float], ...]


class SampledDistribution:
    """Follows one generate() call: feed it each step's logits, then the token drawn."""

    def __init__(self, params: SamplingParams, last_n: int = DEFAULT_LAST_N) -> None:
        self.params = params
        self.last_n = max(0, int(last_n))
        self._window: deque[int] = deque()
        self._counts: Counter[int] = Counter()

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

    def penalized(self, logits: np.ndarray) -> np.ndarray:
        """The logits after the repeat penalty (the input itself when nothing changes)."""
        rp = float(self.params.repeat_penalty)
        if not self._counts or rp == 1.0 or self.last_n == 0:
            return logits
        out = np.array(logits, dtype=np.float32, copy=True)
        ids = np.fromiter(self._counts.keys(), dtype=np.int64, count=len(self._counts))
        v = out[ids]
        out[ids] = np.where(v <= 0, v * np.float32(rp), v / np.float32(rp))
        return out

    def distribution(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The candidates the sampler draws from, best first, and their log-probabilities
        (they sum to 1 in probability)."""
        return self._chain(self.penalized(logits), None)

    def _chain(self, pen: np.ndarray, best: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """best: indices holding at least the top_k highest penalized logits, if known."""
        p = self.params
        if p.temperature == 0:
            return np.array([int(np.argmax(pen))]), np.zeros(1)
        if p.temperature < 0:
            return _softmax_sorted(np.arange(pen.shape[0]), pen.astype(np.float64))
        n = pen.shape[0]
        if 0 < p.top_k < n:
            pool = best if best is not None else np.argpartition(pen, -p.top_k)[-p.top_k :]
            ids = pool[np.argsort(-pen[pool], kind="stable")[: p.top_k]]
        else:
            ids = np.arange(n)
        vals = pen[ids].astype(np.float64)
        order = np.argsort(-vals, kind="stable")
        ids, vals = ids[order], vals[order]
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

        One partial sort serves both: the penalty only lowers the logits of the tokens
        in its window, so the raw top_n lies within the penalized top (top_n + window)
        together with the window's tokens, and that set also holds the top_k."""
        pen = self.penalized(logits)
        m = float(logits.max())
        buf = np.subtract(logits, np.float32(m))
        np.exp(buf, out=buf)
        log_z = m + math.log(float(buf.sum(dtype=np.float64)))
        k = max(top_n, max(0, self.params.top_k)) + len(self._counts)
        k = min(k, logits.shape[0])
        pool = np.argpartition(pen, -k)[-k:]
        if self._counts:
            pool = np.union1d(pool, np.fromiter(self._counts, dtype=np.int64))
        raw_top = pool[np.argsort(-logits[pool], kind="stable")[:top_n]]
        ids, lps = self._chain(pen, pool)
        chosen = np.flatnonzero(ids == token)
        return (
            float(logits[token]) - log_z,
            tuple((int(t), float(logits[t]) - log_z) for t in raw_top),
            float(lps[chosen[0]]) if len(chosen) else None,
            tuple((int(t), float(lp)) for t, lp in zip(ids[:top_n], lps[:top_n])),
        )


def _softmax_sorted(ids: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(ids) > 1 and not bool(np.all(vals[:-1] >= vals[1:])):
        order = np.argsort(-vals, kind="stable")
        ids, vals = ids[order], vals[order]
    m = float(vals[0]) if len(vals) else 0.0
    log_z = m + float(np.log(np.exp(vals - m).sum()))
    return ids, vals - log_z
