"""The Python tool: the model's code in a separate, limited process.

The child (sandbox_child.py) runs in `python -I -B -u` (unbuffered: what it printed
before a limit stopped it is not lost), in a fresh network namespace when
`unshare -rn` works on this machine (else sockets are refused by its audit hook only),
with RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE and RLIMIT_NPROC lowered, its working folder the
scratch folder, and file access outside that folder refused. The parent enforces the
wall-clock limit, the output limit and cancellation by killing the child's process group.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")


@dataclass(frozen=True)
class PythonLimits:
    cpu_seconds: int = 10
    memory_mb: int = 512
    output_bytes: int = 64_000  # stdout and stderr together; the child is killed past it
    file_mb: int = 16  # the largest file it may write (RLIMIT_FSIZE)


@dataclass(frozen=True)
class PythonRun:
    output: str
    ok: bool
    truncated: bool
    note: str  # why it stopped when it did not finish by itself, "" otherwise


@functools.lru_cache(maxsize=1)
def network_isolation() -> str:
    """ "namespace" when `unshare -rn` gives the child no network at all, else "audit-hook"."""
    exe = shutil.which("unshare")
    if exe is None or not sys.platform.startswith("linux"):
        return "audit-hook"
    try:
        r = subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "audit-hook"
    return "namespace" if r.returncode == 0 else "audit-hook"


def run_python(
    code: str,
    scratch: Path,
    limits: PythonLimits,
    *,
    timeout: float,
    cancel: threading.Event,
    closing: threading.Event | None = None,
) -> PythonRun:
    scratch.mkdir(parents=True, exist_ok=True)
    limits_json = json.dumps(
        {
            "cpu_seconds": limits.cpu_seconds,
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            "file_bytes": limits.file_mb * 1024 * 1024,
        }
    )
    argv = [sys.executable, "-I", "-B", "-u", str(CHILD), str(scratch), limits_json]
    if network_isolation() == "namespace":
        argv = [shutil.which("unshare") or "unshare", "-rn", *argv]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "TMPDIR": str(scratch),
        "LANG": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=scratch,
        env=env,
        start_new_session=True,  # its own process group: one kill stops all of it
    )
    chunks: list[bytes] = []
    over = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        total = 0
        while True:
            data = proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if not data:
                return
            room = limits.output_bytes - total
            chunks.append(data[: max(room, 0)])
            total += len(data)
            if total > limits.output_bytes:
                over.set()
                _kill(proc)
                return

    t = threading.Thread(target=reader, name="python-tool-output", daemon=True)
    t.start()
    try:
        assert proc.stdin is not None
        proc.stdin.write(code.encode("utf-8", "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass
    note = ""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if cancel.is_set() or (closing is not None and closing.is_set()):
            note = "cancelled"
            _kill(proc)
            break
        if time.monotonic() >= deadline:
            note = f"stopped: ran longer than the {timeout:g} s time limit"
            _kill(proc)
            break
        if over.is_set():
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(0.05)
    proc.wait()
    t.join(5)
    if proc.stdout is not None:
        proc.stdout.close()
    rc = proc.returncode
    if over.is_set():
        note = f"stopped: printed more than {limits.output_bytes} bytes (output limit)"
    elif not note and rc == -signal.SIGXCPU:
        note = f"stopped: used its {limits.cpu_seconds} s of CPU time (CPU limit)"
    elif not note and rc == -signal.SIGKILL:
        note = "killed (out of memory or another limit)"
    elif not note and rc == -signal.SIGXFSZ:
        note = f"stopped: wrote a file larger than {limits.file_mb} MB (file size limit)"
    elif not note and rc is not None and rc < 0:
        note = f"killed by signal {signal.Signals(-rc).name}"
    output = b"".join(chunks).decode("utf-8", "replace")
    return PythonRun(output=output, ok=rc == 0 and not note, truncated=over.is_set(), note=note)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def describe_result(run: PythonRun) -> str:
    text = run.output.rstrip("\n")
    if run.note:
        text = f"{text}\n[{run.note}]" if text else f"[{run.note}]"
    elif not run.ok:
        text = text or "[the code failed without output]"
    return text if text else "[no output: print() what you want to see]"
