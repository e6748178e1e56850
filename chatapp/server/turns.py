"""One API request as a service turn, seen from asyncio.

The service delivers a turn's events on its inference thread; the listener here moves
them onto the server's event loop, one wake-up per batch of events (a loop that fell
behind sends the tokens that waited as one piece). `ApiTurn.deltas()` yields the reply in
pieces with their tokens' log-probabilities, ending the turn at the request's stop
sequences (the text from a stop sequence on is never sent). Leaving the iteration early (a client that
went away) cancels the turn, which the service ends within one token.

The server sends at most one piece every `min_interval` (ServerConfig.stream_interval_ms,
20 ms by default: 50 updates a second). A client's own parsing of each server-sent event
costs it about 0.85 ms (the official openai client); on a small machine that CPU comes
out of the model's, so a fast model's tokens are sent a few at a time rather than one
event each. The first piece is never held back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from chatapp.core.backend import Chunk, ReplyStats
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import FailureKind
from chatapp.core.templates import partial_stop_len
from chatapp.core.thinking import THINKING
from chatapp.service import ChatService, TurnHandle
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnToolCall
from chatapp.service.tool_loop import TOOL_CALL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    raw: bytes
    top: tuple[tuple[str, float, bytes], ...] = ()


@dataclass
class Delta:
    channel: str  # "answer" or "thinking"
    text: str
    tokens: list[TokenLogprob] = field(default_factory=list)
    call: Any = None  # channel "tool_call": the call (core.toolcalls.ToolCall)
    index: int = 0  # its place among the turn's calls


class TurnError(Exception):
    """The turn failed: the service's one line and the failure's kind."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.INTERNAL) -> None:
        super().__init__(message)
        self.kind = kind


class _StopFilter:
    """Holds back answer text that may begin a stop sequence; finds the first one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if not self.stops:
            return text
        self.pending += text
        hits = [i for s in self.stops if (i := self.pending.find(s)) >= 0]
        if hits:
            out, self.pending, self.stopped = self.pending[: min(hits)], "", True
            return out
        keep = partial_stop_len(self.pending, self.stops)
        out = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


class ApiTurn:
    def __init__(
        self,
        service: ChatService,
        *,
        stops: tuple[str, ...] = (),
        vocab: dict[int, bytes] | None = None,
        min_interval: float = 0.0,
    ) -> None:
        self.service = service
        # seconds between two pieces sent: tokens that come faster are sent together
        # (0: every token as soon as the reader takes it)
        self.min_interval = min_interval
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._inbox: list[Any] = []
        self._flush_pending = False
        self.handle: TurnHandle | None = None
        self.vocab = vocab or {}
        self._stop = _StopFilter(stops)
        self.stats: ReplyStats | None = None
        self.finished: TurnFinished | None = None
        self.finish_reason = "stop"
        self.calls: list[Any] = []  # the model's tool calls (the client runs them)

    def listener(self, event: Any) -> None:
        """On the inference thread: hand the event to the server's loop. One wake-up
        carries every event that arrived before the loop ran it, so a loop that is
        behind catches up in one step instead of one wake-up per token."""
        with self._lock:
            self._inbox.append(event)
            if self._flush_pending:
                return
            self._flush_pending = True
        self.loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            batch = list(self._inbox)
            self._inbox.clear()
            self._flush_pending = False
        self.queue.put_nowait(batch)

    async def _arrived(self) -> list[Any]:
        """Every event that has arrived (waits for at least one)."""
        events: list[Any] = await self.queue.get()
        while not self.queue.empty():
            events += self.queue.get_nowait()
        return events

    def _token(self, chunk: Chunk) -> TokenLogprob | None:
        if chunk.token_id is None or chunk.logprob is None:
            return None
        raw = self.vocab.get(chunk.token_id, chunk.text.encode())
        top = tuple(
            (
                self.vocab.get(a.token_id, a.text.encode()).decode("utf-8", "replace"),
                a.logprob,
                self.vocab.get(a.token_id, a.text.encode()),
            )
            for a in chunk.top
        )
        return TokenLogprob(raw.decode("utf-8", "replace"), chunk.logprob, raw, top)

    async def deltas(self) -> AsyncIterator[Delta]:
        """The reply's pieces; afterwards stats and finish_reason are set. Raises
        TurnError if the turn failed.

        One piece per token while the reader keeps up. Tokens that arrived together
        (the reader was behind the model) come as one piece: their text joined, their
        log-probabilities listed, as OpenAI's chunks allow."""
        assert self.handle is not None
        pending: list[TokenLogprob] = []  # tokens whose text the stop filter holds back
        sent = 0.0  # when the last pieces went out (loop time); the first is never held
        try:
            while True:
                ready: list[Delta] = []
                failed: TurnFailed | None = None
                if sent and self.min_interval > 0:
                    wait = sent + self.min_interval - self.loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                for event in await self._arrived():
                    if isinstance(event, TurnToolCall):
                        if self._stop.stopped:
                            continue
                        ready.append(Delta(TOOL_CALL, "", [], event.call, len(self.calls)))
                        self.calls.append(event.call)
                    elif isinstance(event, TurnChunk):
                        if event.chunk.channel == TOOL_CALL:
                            continue  # the call comes whole, as TurnToolCall
                        if self._stop.stopped:
                            continue  # the one token the model may add after the cancel
                        chunk = event.chunk
                        tok = self._token(chunk)
                        if tok is not None:
                            pending.append(tok)
                        if chunk.channel == THINKING:
                            if chunk.text:
                                _join(ready, Delta(THINKING, chunk.text, pending))
                                pending = []
                            continue
                        text = self._stop.feed(chunk.text)
                        if self._stop.stopped:
                            self.handle.cancel()
                        if text or (self._stop.stopped and pending):
                            _join(ready, Delta("answer", text, pending))
                            pending = []
                    elif isinstance(event, TurnFinished):
                        self.finished = event
                        self.stats = event.stats
                        rest = "" if self._stop.stopped else self._stop.flush()
                        if rest or pending:
                            _join(ready, Delta("answer", rest, pending))
                        self.finish_reason = _finish_reason(event.stats, self._stop.stopped)
                        if self.calls and not self._stop.stopped:
                            self.finish_reason = "tool_calls"
                        break
                    elif isinstance(event, TurnFailed):
                        failed = event
                        break
                for d in ready:
                    yield d
                if ready:
                    sent = self.loop.time()
                if failed is not None:
                    raise TurnError(failed.error, failed.kind)
                if self.finished is not None:
                    return
        finally:
            if self.handle is not None and not self.handle.done:
                self.handle.cancel()  # the client went away (or the server is stopping)


def tool_call_delta(call: Any, index: int) -> dict[str, Any]:
    """A call as one streamed delta: OpenAI's shape (index, id, name, arguments)."""
    return {"index": index, **call.openai()}


def _join(ready: list[Delta], d: Delta) -> None:
    """Append d, joined to the last piece if it is of the same channel."""
    if ready and ready[-1].channel == d.channel and d.channel != TOOL_CALL:
        ready[-1].text += d.text
        ready[-1].tokens.extend(d.tokens)
    else:
        ready.append(d)


def _finish_reason(stats: ReplyStats, stopped: bool) -> str:
    if stopped:
        return "stop"
    if stats.finish_reason is FinishReason.LENGTH:
        return "length"
    return "stop"


def usage(stats: ReplyStats | None) -> dict[str, int]:
    p = stats.prompt_tokens if stats else 0
    c = stats.completion_tokens if stats else 0
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def chat_logprobs(tokens: list[TokenLogprob]) -> list[dict[str, Any]]:
    return [
        {
            "token": t.token,
            "logprob": t.logprob,
            "bytes": list(t.raw),
            "top_logprobs": [
                {"token": text, "logprob": lp, "bytes": list(raw)} for text, lp, raw in t.top
            ],
        }
        for t in tokens
    ]


def completion_logprobs(tokens: list[TokenLogprob], offset: int) -> dict[str, Any]:
    offsets, pos = [], offset
    for t in tokens:
        offsets.append(pos)
        pos += len(t.token)
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{text: lp for text, lp, _ in t.top} for t in tokens],
        "text_offset": offsets,
    }
