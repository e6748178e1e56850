"""From token ids to the text a person sees, for any Engine.

Decodes UTF-8 incrementally (a multi-byte character can span tokens); stop markers and
reasoning blocks are handled by thinking.AnswerStream, so a marker, or the start of one,
never reaches the shown text and <think>…</think> goes to its own channel. A control
token the model emits mid-answer (e.g. a new turn's start) also ends the turn.
Measures prompt and generation speed.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from chatapp.core.conversation import FinishReason
from chatapp.core.engine import Cancelled, Engine, SamplingParams
from chatapp.core.thinking import ANSWER, THINKING, AnswerStream

__all__ = ["ANSWER", "THINKING", "ReplyStats", "ReplyStream"]


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
    """Iterate to get (channel, text) pieces, channel ANSWER or THINKING; `answer`,
    `thinking` and `stats` are complete once iteration ends.

    A cancelled stream ends normally with finish_reason CANCELLED, so the caller keeps
    the partial answer."""

    def __init__(
        self,
        engine: Engine,
        prompt_tokens: Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        stop_markers: Sequence[str] = (),
        think_tags: Sequence[tuple[str, str]] = (),
        *,
        start_inside_thinking: bool = False,
    ) -> None:
        self.engine = engine
        self.prompt_tokens = list(prompt_tokens)
        self.params = params
        self.cancel = cancel
        self._out = AnswerStream(stop_markers, think_tags, start_inside=start_inside_thinking)
        self.stats = ReplyStats(prompt_tokens=len(self.prompt_tokens))

    @property
    def answer(self) -> str:
        return self._out.answer

    @property
    def thinking(self) -> str:
        return self._out.thinking

    @property
    def text(self) -> str:
        return self.answer

    def __iter__(self) -> Iterator[tuple[str, str]]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
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
                    # a control token mid-answer (a new turn's start, an end marker not
                    # flagged end-of-generation) ends the turn; it is never shown
                    finish = FinishReason.STOP
                    break
                yield from self._out.feed(decoder.decode(self.engine.token_bytes(token)))
                if self._out.stopped:
                    finish = FinishReason.STOP
                    break
                if self.cancel.is_set():
                    finish = FinishReason.CANCELLED
                    break
            else:
                # generate() ended by itself: end-of-generation token (STOP) or a limit
                finish = self._natural_finish(n)
        except Cancelled:
            finish = FinishReason.CANCELLED
        if not self._out.stopped:
            yield from self._out.feed(decoder.decode(b"", final=True))
        yield from self._out.finish()
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
