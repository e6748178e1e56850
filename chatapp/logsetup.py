"""Logging: a rotating log file in the user log dir; stderr only with --verbose."""

from __future__ import annotations

import logging
import logging.handlers
import os

from chatapp.paths import app_paths

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(*, verbose: bool = False) -> None:
    root = logging.getLogger()
    if getattr(root, "_chatapp_configured", False):
        return
    root.setLevel(logging.DEBUG)
    paths = app_paths().ensure()
    try:
        fh = logging.handlers.RotatingFileHandler(
            paths.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
        fh.setLevel(logging.DEBUG if os.environ.get("CHATAPP_DEBUG") else logging.INFO)
        fh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(fh)
    except OSError:
        pass  # a read-only home must not stop the app
    if verbose:
        sh = logging.StreamHandler()
        sh.setLevel(logging.DEBUG)
        sh.setFormatter(logging.Formatter(_FORMAT))
        root.addHandler(sh)
    root._chatapp_configured = True  # type: ignore[attr-defined]
