"""The window's thin adapter over the chat service: service events in, Qt signals out.

The service delivers events on its own threads; emitting a signal of this GUI-thread
object from there queues the call to the GUI thread (Qt's automatic connection), so the
window only ever sees plain data on its own thread. Streamed text is coalesced here: the
window gets at most one update per EMIT_INTERVAL however fast tokens come.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from PySide6.QtCore import QObject, Signal

from chatapp.service.events import (
    ConversationsChanged,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ModelUnloaded,
    StoreWaiting,
    TurnChunk,
    TurnFailed,
    TurnFinished,
    TurnFitting,
    TurnPrompt,
    TurnStarted,
    TurnToolCall,
    TurnToolResult,
)

# seconds between coalesced text updates: the view lays text out at most every 120 ms
# anyway (chatview.view.RENDER_INTERVAL_MS); each update wakes the GUI thread, whose CPU
# time is taken from the model's threads (bench/stream_speed.py)
EMIT_INTERVAL = 0.1


class ServiceBridge(QObject):
    model_loading = Signal(object)  # ModelRef
    model_loaded = Signal(object)  # LoadedModel
    model_failed = Signal(object, str)  # ModelRef, message
    model_unloaded = Signal()
    store_waiting = Signal(str, bool)  # message, the wait is over
    conversations_edited = Signal(object)  # ConversationsChanged
    turn_started = Signal(object)  # TurnStarted
    turn_fitting = Signal(object)  # TurnFitting: leaving out old turns, with progress
    turn_prompt = Signal(object)  # TurnPrompt
    turn_delta = Signal(str, str, str, str)  # turn id, message id, answer added, thinking added
    # turn id, message id, the chunks with a token since the last update (sent just before
    # the matching turn_delta): the token and probability views follow the stream with these
    turn_tokens = Signal(str, str, object)
    turn_tool_call = Signal(object)  # TurnToolCall: the model called a tool
    turn_tool_result = Signal(object)  # TurnToolResult: its result, saved
    turn_finished = Signal(object)  # TurnFinished
    turn_failed = Signal(object)  # TurnFailed
    # Connect these only to methods of GUI-thread QObjects (never to lambdas), so that
    # Qt queues the calls to the GUI thread.
    _deliver = Signal(object, object)  # (callback, value): a future's result, on the GUI thread

    def __init__(self) -> None:
        super().__init__()
        # a bound method of this GUI-thread object: the call is queued to the GUI thread
        # (a lambda would run on whichever thread emitted)
        self._deliver.connect(self._on_deliver)

    def _on_deliver(self, fn: Callable[[Any], None], value: Any) -> None:
        fn(value)

    # model events: subscribe(bridge.on_service_event)
    def on_service_event(self, event: Any) -> None:
        if isinstance(event, ModelLoading):
            self.model_loading.emit(event.ref)
        elif isinstance(event, ModelLoaded):
            self.model_loaded.emit(event.model)
        elif isinstance(event, ModelLoadFailed):
            self.model_failed.emit(event.ref, event.message)
        elif isinstance(event, ModelUnloaded):
            self.model_unloaded.emit()
        elif isinstance(event, StoreWaiting):
            self.store_waiting.emit(event.message, event.done)
        elif isinstance(event, ConversationsChanged):
            self.conversations_edited.emit(event)

    def turn_listener(self) -> Callable[[Any], None]:
        """A listener for one turn: chunks are coalesced into turn_delta signals."""
        lock = threading.Lock()
        answer: list[str] = []
        thinking: list[str] = []
        tokens: list[Any] = []
        last = [0.0]

        def flush(turn_id: str, message_id: str) -> None:
            with lock:
                if not answer and not thinking and not tokens:
                    return
                a, t = "".join(answer), "".join(thinking)
                toks = tokens[:]
                answer.clear()
                thinking.clear()
                tokens.clear()
            if toks:
                self.turn_tokens.emit(turn_id, message_id, toks)
            if a or t:
                self.turn_delta.emit(turn_id, message_id, a, t)

        def listener(event: Any) -> None:
            if isinstance(event, TurnChunk):
                text = event.chunk.text
                with lock:
                    if text and event.chunk.channel != "tool_call":  # a call is not answer text
                        (thinking if event.chunk.channel == "thinking" else answer).append(text)
                    if event.chunk.token_id is not None:
                        tokens.append(event.chunk)
                now = time.monotonic()
                if now - last[0] >= EMIT_INTERVAL:
                    last[0] = now
                    flush(event.turn_id, event.message_id)
            elif isinstance(event, TurnStarted):
                self.turn_started.emit(event)
            elif isinstance(event, TurnFitting):
                self.turn_fitting.emit(event)
            elif isinstance(event, TurnPrompt):
                self.turn_prompt.emit(event)
            elif isinstance(event, TurnToolCall):
                flush(event.turn_id, event.message_id)  # the text before the call first
                self.turn_tool_call.emit(event)
            elif isinstance(event, TurnToolResult):
                self.turn_tool_result.emit(event)
            elif isinstance(event, TurnFinished):
                flush(event.turn_id, event.message.id)
                self.turn_finished.emit(event)
            elif isinstance(event, TurnFailed):
                if event.message_id:
                    flush(event.turn_id, event.message_id)
                self.turn_failed.emit(event)

        return listener

    def when_done(
        self,
        future: Future[Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """Call on_done(result) or on_error(exception) on the GUI thread."""

        def done(f: Future[Any]) -> None:
            e = f.exception()
            if e is not None:
                if on_error is not None:
                    self._deliver.emit(on_error, e)
            else:
                self._deliver.emit(on_done, f.result())

        future.add_done_callback(done)
