"""From token ids to the text a person sees, for any Engine.

Decodes UTF-8 incrementally (a multi-byte character can span tokens), stops at the
template's end-of-turn markers and never lets a marker, or the start of one, reach the
shown text; a control token the model emits mid-answer (e.g. a new turn's start) also
ends the turn. Measures prompt and generation speed.
"""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

from chatapp.core.conversation import FinishReason
from chatapp.core.engine import Cancelled, Engine, SamplingParams


@dataclass
class ReplyStats:
    finish_reason: FinishReason = FinishReason.STOP
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        if self.completion_tokens < 2 or self.generation_seconds <= 0:
            return 0.0
        # the first token's time belongs to prompt evaluation
        return (self.completion_tokens - 1) / self.generation_seconds

    @property
    def context_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class ReplyStream:
    """Iterate to get text deltas; `stats` is complete once iteration ends.

    A cancelled stream ends normally with finish_reason CANCELLED, so the caller keeps
    the partial answer."""

    def __init__(
        self,
        engine: Engine,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        stop_markers: Sequence[str] = (),
    ) -> None:
        self.engine = engine
        self.prompt_tokens = list(prompt_tokens)
        self.params = params
        self.cancel = cancel
        self.stop_markers = tuple(m for m in stop_markers if m)
        self.stats = ReplyStats(prompt_tokens=len(self.prompt_tokens))
        self.text = ""

    def _held_back(self, text: str) -> int:
        """How many trailing chars could be the start of a stop marker."""
        keep = 0
        for m in self.stop_markers:
            for k in range(min(len(m) - 1, len(text)), 0, -1):
                if text.endswith(m[:k]):
                    keep = max(keep, k)
                    break
        return keep

    def __iter__(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""  # decoded but not yet shown (could be the start of a stop marker)
        t0 = time.perf_counter()
        t_first: float | None = None
        n = 0
        finish = FinishReason.LENGTH
        try:
            for token in self.engine.generate(self.prompt_tokens, self.params, self.cancel):
                if t_first is None:
                    t_first = time.perf_counter()
                n += 1
                if self.engine.is_special(token):
                    # a control token mid-answer (a new turn's start, an end marker that
                    # is not flagged end-of-generation) ends the turn; it is never shown
                    finish = FinishReason.STOP
                    break
                pending += decoder.decode(self.engine.token_bytes(token))
                cut = self._find_stop(pending)
                if cut is not None:
                    pending = pending[:cut]
                    finish = FinishReason.STOP
                    break
                hold = self._held_back(pending)
                out = pending[: len(pending) - hold] if hold else pending
                pending = pending[len(out) :]
                if out:
                    self.text += out
                    yield out
                if self.cancel.is_set():
                    finish = FinishReason.CANCELLED
                    break
            else:
                # generate() ended by itself: end-of-generation token (STOP) or a limit
                finish = self._natural_finish(n)
        except Cancelled:
            finish = FinishReason.CANCELLED
        tail = pending + (decoder.decode(b"", final=True) if finish is not FinishReason.STOP else "")
        cut = self._find_stop(tail)
        if cut is not None:
            tail = tail[:cut]
        if tail:
            self.text += tail
            yield tail
        t_end = time.perf_counter()
        self.stats.finish_reason = finish
        self.stats.completion_tokens = n
        self.stats.prompt_seconds = (t_first or t_end) - t0
        self.stats.generation_seconds = t_end - (t_first or t_end)

    def _natural_finish(self, n: int) -> FinishReason:
        if self.params.max_tokens is not None and n >= self.params.max_tokens:
            return FinishReason.LENGTH
        n_ctx = getattr(getattr(self.engine, "info", None), "n_ctx", 0)
        if n_ctx and len(self.prompt_tokens) + n + 1 >= n_ctx:
            return FinishReason.LENGTH
        return FinishReason.STOP

    def _find_stop(self, text: str) -> int | None:
        idx = [text.find(m) for m in self.stop_markers]
        found = [i for i in idx if i >= 0]
        return min(found) if found else None
