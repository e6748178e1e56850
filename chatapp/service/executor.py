"""A serial executor: one long-lived thread runs submitted jobs in arrival order.

The chat service runs the model on one (the inference thread: nothing else touches the
model) and its database writes on another. Jobs are plain callables; submit() returns a
concurrent.futures.Future. `idle` is called whenever the queue has been empty for
`idle_interval` seconds (the store thread flushes streaming answers there).

Background jobs (submit_background) run only when no ordinary job waits, and a running one
can give way: it polls preempted() and returns early (the inference thread settles an
answer's KV cache this way while the user reads; a send goes first).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_STOP = object()
_WAKE = object()  # a background job arrived: look at the background queue


class ExecutorClosed(RuntimeError):
    pass


class SerialExecutor:
    def __init__(
        self,
        name: str,
        *,
        setup: Callable[[], None] | None = None,
        teardown: Callable[[], None] | None = None,
        idle: Callable[[], None] | None = None,
        idle_interval: float = 0.1,
    ) -> None:
        self.name = name
        self._queue: queue.Queue[Any] = queue.Queue()
        self._background: collections.deque[Any] = collections.deque()
        self._setup, self._teardown, self._idle = setup, teardown, idle
        self._idle_interval = idle_interval
        self._closed = False
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._setup_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._setup_error is not None:
            self._thread.join()
            raise self._setup_error

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise ExecutorClosed(f"{self.name} is shut down")
            self._queue.put((fut, fn, args, kwargs))
        return fut

    def submit_background(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """Run fn when no ordinary job is waiting; fn should poll preempted()."""
        fut: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise ExecutorClosed(f"{self.name} is shut down")
            self._background.append((fut, fn, args, kwargs))
            self._queue.put(_WAKE)
        return fut

    def preempted(self) -> bool:
        """Whether an ordinary job waits (a background job should then return)."""
        with self._queue.mutex:
            return any(item is not _WAKE for item in self._queue.queue)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn on the thread and wait for it (directly, when already on the thread)."""
        if self.in_thread():
            return fn(*args, **kwargs)
        return self.submit(fn, *args, **kwargs).result()

    def pending(self) -> int:
        with self._queue.mutex:
            return sum(1 for item in self._queue.queue if item is not _WAKE)

    def shutdown(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if not self.in_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            if self._setup:
                self._setup()
        except BaseException as e:  # reported to the constructor's caller  # noqa: BLE001
            self._setup_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                try:
                    item = self._next()
                except queue.Empty:
                    self._run_idle()
                    continue
                if item is _STOP:
                    break
                if item is _WAKE:
                    continue
                fut, fn, args, kwargs = item
                if not fut.set_running_or_notify_cancel():
                    continue
                try:
                    result = fn(*args, **kwargs)
                except BaseException as e:  # a boundary: delivered to the caller's future  # noqa: BLE001
                    fut.set_exception(e)
                else:
                    fut.set_result(result)
                if self._idle and self._queue.empty():
                    self._run_idle()
        finally:
            with self._lock:
                for fut, *_ in self._background:
                    fut.cancel()
                self._background.clear()
            self._run_idle()
            if self._teardown:
                try:
                    self._teardown()
                except Exception:
                    log.exception("%s: teardown failed", self.name)

    def _next(self) -> Any:
        """An ordinary job if one waits, else a background job, else wait."""
        with self._queue.mutex:
            waiting = any(item is not _WAKE for item in self._queue.queue)
        if not waiting:
            with self._lock:
                if self._background:
                    return self._background.popleft()
        return self._queue.get(timeout=self._idle_interval if self._idle else None)

    def _run_idle(self) -> None:
        if self._idle is None:
            return
        try:
            self._idle()
        except Exception:
            log.exception("%s: idle job failed", self.name)
