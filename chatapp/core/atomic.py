"""Atomic file writes: a temp file in the same folder, fsync, then os.replace."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from chatapp.core.errors import DiskFullError, UserError


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"The disk is full: could not write {p}.") from e
        raise UserError(f"Could not write {p}: {e.strerror or e}") from e


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
