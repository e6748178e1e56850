"""The chat service's database thread: its own Store connection, every write the service
makes, and time-based saving of streaming answers.

A streaming answer is watched through the lists its pieces are appended to
(stream_watch(): nothing to do per token); the thread writes it at most every
SAVE_INTERVAL, also when no new text comes (a piece followed by a pause is saved all the
same), so a killed process loses at most about half a second of shown text. The inference thread never waits on the disk
while tokens stream, and the GUI thread never writes during a turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from chatapp.core.store import Store
from chatapp.service.executor import SerialExecutor

log = logging.getLogger(__name__)

SAVE_INTERVAL = 0.4  # plus the idle tick below: at most about 0.5 s of text unsaved
IDLE_TICK = 0.1

T = TypeVar("T")


@dataclass
class _Pending:
    answer: list[str]  # appended to by the inference thread
    thinking: list[str]
    saved_parts: int = 0
    saved_at: float = 0.0

    @property
    def dirty(self) -> bool:
        return len(self.answer) + len(self.thinking) != self.saved_parts


class StoreThread:
    def __init__(self, path: Path, store_factory: Callable[[Path], Store] = Store) -> None:
        self.path = Path(path)
        self._factory = store_factory
        self._store: Store | None = None
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._errors: dict[str, BaseException] = {}
        self.saves = 0  # streaming saves written (tests and diagnostics)
        self._exec = SerialExecutor(
            "chat-store",
            setup=self._open,
            teardown=self._close,
            idle=self._flush_due,
            idle_interval=IDLE_TICK,
        )

    def _open(self) -> None:
        self._store = self._factory(self.path)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- jobs -------------------------------------------------------------------------

    def submit(self, fn: Callable[[Store], T]) -> Future[T]:
        return self._exec.submit(lambda: fn(self._require()))

    def call(self, fn: Callable[[Store], T]) -> T:
        return self._exec.call(lambda: fn(self._require()))

    def _require(self) -> Store:
        assert self._store is not None, "store thread not running"
        return self._store

    # -- streaming saves ----------------------------------------------------------------

    def stream_watch(self, message_id: str, answer: list[str], thinking: list[str]) -> None:
        """Save the text in these growing lists of pieces until stream_end()."""
        with self._lock:
            self._pending[message_id] = _Pending(answer, thinking, saved_at=time.monotonic())

    def stream_error(self, message_id: str) -> BaseException | None:
        with self._lock:
            return self._errors.get(message_id)

    def stream_end(self, message_id: str) -> None:
        """The answer's final write follows (through call()); stop saving it."""
        with self._lock:
            self._pending.pop(message_id, None)
            self._errors.pop(message_id, None)

    def _flush_due(self, *, force: bool = False) -> None:
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        due = []
        with self._lock:
            for mid, p in self._pending.items():
                if p.dirty and (force or now - p.saved_at >= SAVE_INTERVAL):
                    # join under the GIL: the lists only ever grow by appends
                    parts = len(p.answer) + len(p.thinking)
                    due.append((mid, "".join(p.answer), "".join(p.thinking)))
                    p.saved_parts, p.saved_at = parts, now
        for mid, content, thinking in due:
            try:
                store.update_message(mid, content=content, thinking=thinking)
                self.saves += 1
            except Exception as e:  # a full disk, a locked or damaged database  # noqa: BLE001
                log.warning("saving the streaming answer %s failed: %s", mid, e)
                with self._lock:
                    self._errors[mid] = e
                    if mid in self._pending:
                        self._pending[mid].saved_parts = -1  # still unsaved

    def flush(self) -> None:
        """Write every pending streaming text now (used before the final write)."""
        self._exec.call(lambda: self._flush_due(force=True))

    def shutdown(self) -> None:
        try:
            self.flush()
        except Exception:
            log.exception("final flush failed")
        self._exec.shutdown()
