"""The template worker: a child process that parses and renders untrusted chat templates.

A template comes inside a model file downloaded from strangers. The Jinja sandbox stops
it from reaching anything, and chatapp.core.templates.sandbox counts its steps and sizes,
but a single C call can still run for minutes or allocate gigabytes
(`x|tojson(indent=999999999)`, `[s] * 3999999`, a 10 MB template to parse). So every
parse and render happens in this child process, where limits hold whatever the code does:

- an address-space limit (RLIMIT_AS, MEMORY_LIMIT): allocating past it fails;
- a wall-clock deadline kept by the parent: a worker that has not answered in time is
  killed (SIGKILL) and the next request starts a fresh one;
- a CPU-time limit (RLIMIT_CPU) renewed for each request, so a worker whose parent died
  mid-render cannot spin on;
- Ctrl-C in the terminal is left to the parent (the child ignores SIGINT).

The worker is started lazily on first use and then kept: a render costs one round trip
over a pipe. It runs as `python -m chatapp --template-worker` (a frozen build runs its own
executable with `--template-worker`, handled first thing in chatapp.__main__).

Protocol: frames of an 8-byte little-endian length and UTF-8 JSON ("surrogatepass", so a
lone surrogate in the data travels unchanged and is judged by the sandbox, not the pipe).
The worker says {"ready": true} once, then answers each request with {"text": ...} or
{"error": {"kind": "refused" | "error", "message": ..., "lineno": ...}}.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from chatapp.core.errors import TemplateError

log = logging.getLogger(__name__)

MEMORY_LIMIT = 1024 * 1024 * 1024  # bytes of address space for the worker
GRACE_S = 1.0  # past the render's own deadline before the worker is killed
START_TIMEOUT_S = 60.0  # a cold start on a slow disk (a frozen build unpacks itself)
MAX_FRAME = 256 * 1024 * 1024  # no honest answer is larger: the output is capped at 4M chars
MAX_IDLE_WORKERS = 2
_HEADER = struct.Struct("<Q")


class _WorkerGone(Exception):
    """The worker process died or could not be reached before answering."""

    def __init__(self, sent: bool = True) -> None:
        super().__init__()
        self.sent = sent  # False: it was gone before it got the request


# --- framing --------------------------------------------------------------------------


def _encode(obj: Any) -> bytes:
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return _HEADER.pack(len(data)) + data


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    chunks: list[bytes] = []
    while n > 0:
        chunk = stream.read(min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> Any:
    (n,) = _HEADER.unpack(_read_exact(stream, _HEADER.size))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    return json.loads(_read_exact(stream, n).decode("utf-8", "surrogatepass"))


# --- the child ------------------------------------------------------------------------


def _set_limits(memory: int) -> None:
    try:
        import resource
    except ImportError:  # Windows: only the parent's deadline holds
        return
    for which, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CORE, 0)):
        try:
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, hard))
        except (ValueError, OSError):  # e.g. macOS does not enforce RLIMIT_AS
            pass


def _renew_cpu_limit(seconds: float) -> None:
    """Allow this request `seconds` of CPU from now (a backstop for an orphaned worker)."""
    try:
        import resource
    except ImportError:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    spent = used.ru_utime + used.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(spent + seconds) + 2
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    from chatapp.core.templates import sandbox

    limit = float(request.get("time_limit") or 3.0)
    _renew_cpu_limit(limit + 2 * GRACE_S)
    try:
        if request["op"] == "check":
            sandbox.check_syntax_here(request["text"])
            return {"text": ""}
        return {"text": sandbox.render_here(request["text"], request["context"], limit)}
    except sandbox.TemplateRefused as e:
        kind = "refused"
        err: TemplateError = e
    except TemplateError as e:
        kind, err = "error", e
    return {"error": {"kind": kind, "message": err.message, "lineno": getattr(err, "lineno", None)}}


def _error(message: str) -> dict[str, Any]:
    return {"error": {"kind": "error", "message": message, "lineno": None}}


def main(argv: list[str] | None = None) -> int:
    """The worker's loop: read a request, answer it, until stdin closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    memory = int(args[args.index("--memory") + 1]) if "--memory" in args else MEMORY_LIMIT
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames go to a private copy of stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    inp = sys.stdin.buffer
    import chatapp.core.templates.sandbox  # noqa: F401 - imported before "ready"

    _set_limits(memory)
    out.write(_encode({"ready": True}))
    out.flush()
    while True:
        try:
            request = _read_frame(inp)
        except (EOFError, ValueError, OSError):
            return 0
        try:
            reply = _handle(request)
        except MemoryError:
            # The heap may be in no state to go on: answer, then let the parent start anew.
            reply = {"error": {"kind": "memory", "message": "", "lineno": None}}
            out.write(_encode(reply))
            out.flush()
            return 3
        except RecursionError:
            reply = _error("The chat template is nested too deeply.")
        except Exception as e:  # noqa: BLE001 - any failure is the template's, in one line
            reply = _error(f"The chat template failed: {type(e).__name__}.")
        out.write(_encode(reply))
        out.flush()


# --- the parent -----------------------------------------------------------------------


def _command() -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if getattr(sys, "frozen", False):
        return [sys.executable, "--template-worker"], env
    # the child must load this very chatapp, wherever the parent was started from
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return [sys.executable, "-m", "chatapp", "--template-worker"], env


@dataclass
class _Reply:
    value: Any = None
    gone: bool = False


class _Worker:
    """One worker process and the thread that reads its answers."""

    def __init__(self) -> None:
        cmd, env = _command()
        try:
            self.proc = subprocess.Popen(
                [*cmd, "--memory", str(MEMORY_LIMIT)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                # its own process group: a terminal's Ctrl-C goes to the parent alone
                start_new_session=sys.platform != "win32",
            )
        except OSError as e:
            raise TemplateError(
                f"The template renderer could not start ({e.strerror or e})."
            ) from e
        self.replies: queue.Queue[_Reply] = queue.Queue()
        self.stderr_tail: list[str] = []
        threading.Thread(target=self._read_replies, name="template-worker-out", daemon=True).start()
        self._err_reader = threading.Thread(
            target=self._read_stderr, name="template-worker-err", daemon=True
        )
        self._err_reader.start()
        try:
            ready = self._wait(START_TIMEOUT_S)
        except (_WorkerGone, TimeoutError):
            ready = None
        except BaseException:  # Ctrl-C while it starts
            self.kill()
            raise
        if not (isinstance(ready, dict) and ready.get("ready")):
            try:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._err_reader.join(timeout=5)  # its last words say why
            self.kill()
            detail = self.stderr_tail[-1] if self.stderr_tail else "no answer"
            raise TemplateError(f"The template renderer could not start ({detail}).")
        log.debug("template worker %d started", self.proc.pid)

    def _read_replies(self) -> None:
        assert self.proc.stdout is not None
        while True:
            try:
                self.replies.put(_Reply(_read_frame(self.proc.stdout)))
            except (EOFError, ValueError, OSError):
                self.replies.put(_Reply(gone=True))
                return

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                log.debug("template worker: %s", line[:500])
                self.stderr_tail = [*self.stderr_tail[-4:], line[:500]]

    def _wait(self, timeout: float) -> Any:
        try:
            reply = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if reply.gone:
            raise _WorkerGone
        return reply.value

    def ask(self, frame: bytes, timeout: float) -> Any:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(frame)
            self.proc.stdin.flush()
        except OSError as e:
            raise _WorkerGone(sent=False) from e
        return self._wait(timeout)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def close(self) -> None:
        """Let it end on its own (stdin closed), killing it if it does not."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
            self.proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class _Pool:
    """Idle workers to reuse; a caller that finds none idle starts one, so a render on
    the inference thread and a live preview on the GUI thread never wait for each other."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self.started = 0  # workers started so far (for tests and the log)
        atexit.register(self.shutdown)

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    return w
                w.kill()
        w = _Worker()
        with self._lock:
            self.started += 1
        return w

    def _give(self, w: _Worker) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_WORKERS and w.alive():
                self._idle.append(w)
                return
        w.close()

    def shutdown(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for w in idle:
            w.close()

    def idle_pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._idle]

    def request(self, request: dict[str, Any], time_limit: float) -> dict[str, Any]:
        """Send one request; the answer, or a TemplateError if the worker overran or died.
        A worker that was gone before it read the request, or was killed from outside, is
        replaced once; one that crashed or overran on the request is not retried."""
        try:
            frame = _encode(request)
        except (TypeError, ValueError, RecursionError) as e:
            raise TemplateError(
                f"The data for the chat template cannot be passed to it ({type(e).__name__})."
            ) from None
        if len(frame) > MAX_FRAME:
            raise TemplateError(
                f"The conversation is too large to render ({len(frame) / 1e6:.0f} MB of data)."
            )
        for attempt in (1, 2):
            w = self._take()
            try:
                reply = w.ask(frame, time_limit + GRACE_S)
            except TimeoutError:
                w.kill()
                log.warning("template worker %d killed after %.1f s", w.proc.pid, time_limit)
                raise TemplateError(
                    f"The chat template was stopped: it took longer than {time_limit:g} s."
                ) from None
            except _WorkerGone as gone:
                w.kill()
                if attempt == 1 and (not gone.sent or _ended_from_outside(w.proc.returncode)):
                    continue
                raise TemplateError(_death_message(w.proc.returncode, time_limit)) from None
            except BaseException:  # Ctrl-C while waiting: the worker's state is unknown
                w.kill()
                raise
            if not isinstance(reply, dict):
                w.kill()
                raise TemplateError("The template renderer gave a malformed answer.")
            error = reply.get("error")
            if isinstance(error, dict) and error.get("kind") == "memory":
                w.kill()
                raise TemplateError(_memory_message())
            self._give(w)
            return reply
        raise AssertionError("unreachable")


def _ended_from_outside(code: int | None) -> bool:
    """Killed or terminated by someone else (often between two renders, so the request
    only reached a dying process): worth one retry on a fresh worker. Limits end a
    worker otherwise (SIGXCPU, an abort, a reply about memory)."""
    ends = {getattr(signal, name, None) for name in ("SIGKILL", "SIGTERM")} - {None}
    return code is not None and -code in ends


def _memory_message() -> str:
    return (
        "The chat template was stopped: it needed more than "
        f"{MEMORY_LIMIT // (1024 * 1024)} MB of memory."
    )


def _death_message(code: int | None, time_limit: float) -> str:
    signals = {getattr(signal, name, None): name for name in ("SIGXCPU", "SIGKILL", "SIGABRT")}
    name = signals.get(-code) if code is not None and code < 0 else None
    if name == "SIGXCPU":
        return f"The chat template was stopped: it took longer than {time_limit:g} s."
    if code == 3 or name in ("SIGKILL", "SIGABRT"):
        # out of memory inside C code ends in an abort, or the kernel's OOM kill
        return _memory_message()
    return f"The chat template crashed the template renderer (exit code {code})."


_POOL = _Pool()


def request(request: dict[str, Any], time_limit: float) -> dict[str, Any]:
    return _POOL.request(request, time_limit)


def workers_started() -> int:
    return _POOL.started


def idle_worker_pids() -> list[int]:
    return _POOL.idle_pids()


def shutdown() -> None:
    _POOL.shutdown()
