"""Notice changes another process made to the chat database (an import, `chatapp chat`
in a terminal, a second window), so the conversation list shows them.

SQLite's PRAGMA data_version changes when any other connection commits: reading it
costs no I/O beyond the database header, so it is polled on a timer and asked again
when the window is activated. A change only says "look again": the list compares what
it shows with the store and reloads only if they differ (the window's own changes
have already been shown).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)

POLL_MS = 1500


class StoreWatcher(QObject):
    changed = Signal()  # another connection committed since the last check

    def __init__(self, path: Path, parent: QObject | None = None, interval_ms: int = POLL_MS):
        super().__init__(parent)
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._version = self._read()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.check)
        self.timer.start()

    def _read(self) -> int | None:
        try:
            if self._db is None:
                self._db = sqlite3.connect(self._path, timeout=0.2)
            row = self._db.execute("PRAGMA data_version").fetchone()
            return int(row[0])
        except sqlite3.Error as e:  # locked for a moment, or the file is gone: try later
            log.debug("data_version of %s not read: %s", self._path, e)
            return None

    def check(self) -> bool:
        """Emit `changed` if another connection wrote since the last check."""
        version = self._read()
        if version is None or version == self._version:
            return False
        self._version = version
        self.changed.emit()
        return True

    def close(self) -> None:
        self.timer.stop()
        if self._db is not None:
            self._db.close()
            self._db = None
