"""Route llama.cpp's log into Python logging (and so our log file), never the terminal.

llama-cpp-python's verbose=False silences the whole process's stdout/stderr while a
model loads; instead we install our own llama_log_set callback, once, process-wide.
The last lines are kept so a failed load can say what llama.cpp complained about.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading

import llama_cpp

log = logging.getLogger("llama.cpp")

_LEVELS = {0: logging.CRITICAL, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR, 4: logging.DEBUG}
_lock = threading.Lock()
_partial: list[str] = []
_last_level = logging.INFO
recent: collections.deque[tuple[int, str]] = collections.deque(maxlen=200)


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level
    try:
        msg = text.decode("utf-8", errors="replace") if text else ""
        with _lock:
            lvl = _last_level if level == 5 else _LEVELS.get(level, logging.INFO)
            _last_level = lvl
            _partial.append(msg)
            if not msg.endswith("\n"):
                return
            line = "".join(_partial).rstrip("\n")
            _partial.clear()
        if line.strip():
            recent.append((lvl, line))
            # llama.cpp is chatty at INFO; keep it at DEBUG unless it's a warning or worse
            log.log(lvl if lvl >= logging.WARNING else logging.DEBUG, "%s", line)
    except Exception:  # a callback from C must never raise
        pass


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


def recent_errors(limit: int = 3) -> list[str]:
    errs = [line for lvl, line in recent if lvl >= logging.ERROR]
    return errs[-limit:]


def mark() -> int:
    """A position in the log, to ask later what was logged since."""
    return len(recent)
