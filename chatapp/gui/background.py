"""Run one-shot jobs (exports, imports, scans) on a thread pool; results come back on the
GUI thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn = fn
        self.relay = relay

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as e:  # delivered to on_error on the GUI thread  # noqa: BLE001
            self.relay.failed.emit(e)
        else:
            self.relay.done.emit(result)


class BackgroundRunner:
    def __init__(self) -> None:
        self.pool = QThreadPool()
        self.pool.setMaxThreadCount(2)
        self._relays: set[_Relay] = set()

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        relay = _Relay()  # lives on the GUI thread: its signals are delivered there
        self._relays.add(relay)

        def finish_ok(result: Any) -> None:
            self._relays.discard(relay)
            on_done(result)

        def finish_err(exc: Exception) -> None:
            self._relays.discard(relay)
            if not hasattr(exc, "message"):
                log.error("background job failed", exc_info=exc)
            on_error(exc)

        relay.done.connect(finish_ok)
        relay.failed.connect(finish_err)
        self.pool.start(_Job(fn, relay))

    def wait(self, msecs: int = 30000) -> bool:
        return self.pool.waitForDone(msecs)
