"""From sampled tokens to chunks of text a person sees, for any token-level Engine.

Decodes UTF-8 incrementally (a multi-byte character can span tokens); stop markers and
reasoning blocks are handled by thinking.AnswerStream, so a marker, or the start of one,
never reaches the shown text and <think>…</think> goes to its own channel. A control
token the model emits mid-answer (e.g. a new turn's start) also ends the turn. Every
token is reported in a Chunk (with its alternatives when asked for), even one whose text
is held back. Measures prompt and generation speed.
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from chatapp.core.backend import Chunk, PreparedPrompt, ReplyStats, TokenAlternative
from chatapp.core.conversation import FinishReason
from chatapp.core.templates import ChatTemplate
from chatapp.core.thinking import ANSWER, THINKING, AnswerStream
from chatapp.core.token_engine import Cancelled, Engine, Sampled, SamplingParams

__all__ = ["ANSWER", "THINKING", "ReplyStats", "ReplyStream"]


class ReplyStream:
    """Iterate to get Chunks; `answer`, `thinking` and `stats` are complete once
    iteration ends. A cancelled stream ends normally with finish_reason CANCELLED, so
    the caller keeps the partial answer."""

    def __init__(
        self,
        engine: Engine,
        prompt: PreparedPrompt | Sequence[int],
        params: SamplingParams,
        cancel: threading.Event,
        stop_markers: Sequence[str] = (),
        think_tags: Sequence[tuple[str, str]] = (),
        *,
        start_inside_thinking: bool = False,
        logprobs: int = 0,
        cache_key: str | None = None,
        forced: Sequence[Sampled] = (),
        prefill: tuple[str, str] = ("", ""),
        verbatim: bool = False,
        grammar: str | None = None,
        keep_special: Sequence[str] = (),
    ) -> None:
        """verbatim: completion mode (no chat template): the text is exactly the
        concatenation of the tokens' bytes, nothing stripped."""
        self.engine = engine
        self.grammar = grammar
        self.keep_special = frozenset(keep_special)
        if not isinstance(prompt, PreparedPrompt):  # bare token ids (tests, benchmarks)
            prompt = PreparedPrompt("", list(prompt), ChatTemplate("tokens", "completion", ""))
        self.prompt: PreparedPrompt = prompt
        self.prompt_tokens = list(prompt.tokens)
        self.params = params
        self.cancel = cancel
        self.logprobs = logprobs
        self.cache_key = cache_key
        self.forced = list(forced)  # branching: the answer starts with these (see _steps)
        self._out = AnswerStream(
            stop_markers, think_tags, start_inside=start_inside_thinking, verbatim=verbatim
        )
        if prefill[0] or prefill[1]:  # Continue: the answer so far, then what comes
            self._out.resume(*prefill)
        self.stats = ReplyStats(prompt_tokens=len(self.prompt_tokens), seed=params.seed)
        self._pieces: dict[int, str] = {}

    @property
    def answer(self) -> str:
        return self._out.answer

    @property
    def thinking(self) -> str:
        return self._out.thinking

    @property
    def text(self) -> str:
        return self.answer

    def _piece(self, token_id: int) -> str:
        text = self._pieces.get(token_id)
        if text is None:
            text = self.engine.token_bytes(token_id).decode("utf-8", errors="replace")
            self._pieces[token_id] = text
        return text

    def _chunks(self, s: Sampled, pieces: list[tuple[str, str]], data: bytes) -> Iterator[Chunk]:
        top = tuple(TokenAlternative(t, self._piece(t), lp) for t, lp in s.top)
        stop = tuple(TokenAlternative(t, self._piece(t), lp) for t, lp in s.sampled_top)
        channel, text = pieces[0] if pieces else (ANSWER, "")
        yield Chunk(text, channel, s.token_id, s.logprob, top, s.sampled_logprob, stop, data)
        for channel, text in pieces[1:]:
            yield Chunk(text, channel)

    def __iter__(self) -> Iterator[Chunk]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        t0 = time.perf_counter()
        t_first: float | None = None
        n = 0
        finish = FinishReason.LENGTH
        try:
            for s, is_forced in self._steps():
                if t_first is None and not is_forced:
                    t_first = time.perf_counter()
                    ev = getattr(self.engine, "last_prompt", None)
                    if ev is not None:
                        self.stats.reused_tokens = ev.reused
                        self.stats.evaluated_tokens = ev.evaluated
                        self.stats.disk_tokens = getattr(ev, "from_disk", 0)
                        self.stats.images_encoded = getattr(ev, "images_encoded", 0)
                n += 1
                if self.engine.is_special(s.token_id) and (
                    not self.keep_special or self._piece(s.token_id) not in self.keep_special
                ):
                    # a control token mid-answer (a new turn's start, an end marker not
                    # flagged end-of-generation) ends the turn; it is never shown
                    finish = FinishReason.STOP
                    break
                data = self.engine.token_bytes(s.token_id)
                pieces = self._out.feed(decoder.decode(data))
                yield from self._chunks(s, pieces, data)
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
        tail = [] if self._out.stopped else self._out.feed(decoder.decode(b"", final=True))
        for channel, text in tail + self._out.finish():
            yield Chunk(text, channel)
        t_end = time.perf_counter()
        if t_first is None:  # nothing generated: the prompt may still have been evaluated
            ev = getattr(self.engine, "last_prompt", None)
            if ev is not None:
                self.stats.reused_tokens = ev.reused
                self.stats.evaluated_tokens = ev.evaluated
                self.stats.disk_tokens = getattr(ev, "from_disk", 0)
                self.stats.images_encoded = getattr(ev, "images_encoded", 0)
        spec = getattr(self.engine, "last_speculation", None)
        if spec is not None:  # engine.speculative.SpecStats
            self.stats.speculative = spec.mode
            self.stats.speculative_note = spec.note
            self.stats.drafted_tokens = spec.drafted
            self.stats.accepted_tokens = spec.accepted
        self.stats.finish_reason = finish
        self.stats.completion_tokens = n
        self.stats.prompt_seconds = (t_first or t_end) - t0
        self.stats.generation_seconds = t_end - (t_first or t_end)

    def _steps(self) -> Iterator[tuple[Sampled, bool]]:
        """The forced tokens (as recorded when they were first generated), then what the
        engine samples after prompt + forced tokens. max_tokens counts both."""
        for s in self.forced:
            yield s, True
        params = self.params
        if self.forced and params.max_tokens is not None:
            left = params.max_tokens - len(self.forced)
            if left <= 0:
                return
            params = replace(params, max_tokens=left)
        # only a constrained stream passes a grammar: an engine without one still works
        extra = {"grammar": self.grammar} if self.grammar else {}
        for s in self.engine.generate(
            self.prompt_tokens + [s.token_id for s in self.forced],
            params,
            self.cancel,
            logprobs=self.logprobs,
            cache_key=self.cache_key,
            **extra,
        ):
            yield s, False

    def _natural_finish(self, n: int) -> FinishReason:
        if self.params.max_tokens is not None and n >= self.params.max_tokens:
            return FinishReason.LENGTH
        n_ctx = getattr(getattr(self.engine, "info", None), "n_ctx", 0)
        if n_ctx and len(self.prompt_tokens) + n + 1 >= n_ctx:
            return FinishReason.LENGTH
        return FinishReason.STOP
