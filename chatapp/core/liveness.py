"""Is the process that wrote a row still running?

Streaming answers and unfinished imports record who is writing them (pid, host, and on
Linux the process's start time, so a recycled pid is not mistaken for the writer). A
start of chatapp recovers only rows whose writer is gone; another window or a CLI chat
streaming right now is left alone.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from functools import lru_cache

# A writer on another host (a database on a shared folder) is judged by its heartbeat.
STALE_AFTER = 30 * 60.0


@dataclass(frozen=True)
class Owner:
    pid: int
    host: str
    started: str  # the process's start time where the system tells it, else ""


def _proc_started(pid: int) -> str:
    """Linux: field 22 of /proc/PID/stat (start time in clock ticks after boot)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return ""
    # the command name (field 2) is in parentheses and may hold spaces
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


@lru_cache(maxsize=1)
def _host() -> str:
    return socket.gethostname()


def me() -> Owner:
    pid = os.getpid()
    return Owner(pid, _host(), _proc_started(pid))


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - Windows only
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def is_alive(owner: Owner, heartbeat: float, now: float) -> bool:
    """Whether the writer may still be at work: its process runs (the very process, where
    its start time is known; else one that wrote within STALE_AFTER), or, on another
    host, it wrote within STALE_AFTER."""
    if owner.host != _host():
        return now - heartbeat < STALE_AFTER
    if not _pid_running(owner.pid):
        return False
    if owner.started:
        return _proc_started(owner.pid) == owner.started
    return now - heartbeat < STALE_AFTER  # the pid may have been recycled
