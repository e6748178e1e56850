"""Atomic file writes: a temp file in the same folder, fsync, then os.replace.

A file the user asked for (an export) is created like any file they write: mode 0666
less their umask (0644 under umask 022). The app's own files (settings, caches) stay
private to the user (0600)."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import tempfile
from pathlib import Path

from chatapp.core.errors import DiskFullError, UserError

USER_FILE = 0o666  # what the umask is applied to, as for any file a program creates


def _open_temp(p: Path, mode: int | None) -> tuple[int, str]:
    if mode is None:
        return tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(p.parent / f".{p.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp  # the kernel applies the umask
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(p.parent))


def write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` all at once or not at all. mode: None for a private file
    (0600), else the mode before the umask (USER_FILE for what the user exports).
    Any failure is one UserError line (DiskFullError for a full disk)."""
    p = Path(path)
    tmp: str | None = None
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(p, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"The disk is full: could not write {p}.") from e
        raise UserError(f"Could not write {p}: {e.strerror or e}") from e


def write_text(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), mode=mode)
