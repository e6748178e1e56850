"""SerialExecutor's background jobs: they run only when no ordinary job waits, and one
that is running gives way (returns early) once an ordinary job arrives."""

from __future__ import annotations

import threading

from chatapp.service.executor import SerialExecutor


def test_background_job_runs_after_waiting_jobs_and_yields_to_a_new_one() -> None:
    ex = SerialExecutor("test")
    order: list[str] = []
    gate = threading.Event()
    started = threading.Event()
    try:
        ex.submit(gate.wait)  # holds the thread while the queue fills
        bg = ex.submit_background(lambda: order.append("background"))
        ex.submit(lambda: order.append("send 1"))
        gate.set()
        bg.result(10)
        assert order == ["send 1", "background"]  # submitted later, ran first

        steps: list[int] = []

        def settle() -> None:  # gives way between its steps, as engine.settle does
            started.set()
            for i in range(10_000):
                if ex.preempted():
                    return
                steps.append(i)
                threading.Event().wait(0.001)

        long = ex.submit_background(settle)
        started.wait(10)
        ex.submit(lambda: order.append("send 2")).result(10)
        long.result(10)
        assert order[-1] == "send 2"
        assert 0 < len(steps) < 10_000  # stopped early for the send
        assert ex.pending() == 0
    finally:
        gate.set()
        ex.shutdown(5)


def test_background_jobs_left_at_shutdown_are_cancelled() -> None:
    ex = SerialExecutor("test")
    gate = threading.Event()
    ex.submit(gate.wait)
    bg = ex.submit_background(lambda: None)
    ex.shutdown(0)
    gate.set()
    ex.thread.join(5)
    assert bg.cancelled()
