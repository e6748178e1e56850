"""Logging: a rotating log file in the user log dir; stderr only with --verbose.

The file rotates at MAX_BYTES into chatapp.log.1 ... .BACKUP_COUNT, so the log never
takes more than about (BACKUP_COUNT + 1) * MAX_BYTES of disk.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
from pathlib import Path

from chatapp.paths import app_paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 2_000_000
BACKUP_COUNT = 3


class _RotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Several chatapp processes (the window, a CLI command, the PDF worker) may share the
    file. Where one cannot rename it because another holds it open (Windows), it keeps
    writing to the current file instead of printing a logging error on the terminal."""

    def rotate(self, source: str, dest: str) -> None:
        with contextlib.suppress(OSError):
            super().rotate(source, dest)


def file_handler(
    path: Path, *, max_bytes: int = MAX_BYTES, backup_count: int = BACKUP_COUNT
) -> logging.Handler:
    handler = _RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    handler.setLevel(logging.DEBUG if os.environ.get("CHATAPP_DEBUG") else logging.INFO)
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


def setup_logging(*, verbose: bool = False) -> None:
    root = logging.getLogger()
    if getattr(root, "_chatapp_configured", False):
        return
    root.setLevel(logging.DEBUG)
    with contextlib.suppress(OSError):  # a read-only home must not stop the app
        root.addHandler(file_handler(app_paths().ensure().log_file))
    if verbose:
        sh = logging.StreamHandler()
        sh.setLevel(logging.DEBUG)
        sh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(sh)
    root._chatapp_configured = True  # type: ignore[attr-defined]
