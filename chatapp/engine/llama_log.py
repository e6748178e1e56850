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

# ggml_log_level: NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5 (continues the last line)
_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_lock = threading.Lock()
_partial: list[str] = []
_last_level = logging.INFO
_seq = 0
recent: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=200)  # warnings+


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    global _last_level, _seq
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
            if lvl >= logging.WARNING:
                _seq += 1
                recent.append((_seq, lvl, line))
            # llama.cpp is chatty at INFO; keep it at DEBUG unless it's a warning or worse
            log.log(lvl if lvl >= logging.WARNING else logging.DEBUG, "%s", line)
    except Exception:  # a callback from C must never raise  # noqa: BLE001
        pass


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        _installed = True


def mark() -> int:
    """A position in the log, to ask later what was logged since."""
    return _seq


def errors_since(position: int) -> list[str]:
    return [line for seq, lvl, line in list(recent) if seq > position and lvl >= logging.ERROR]
