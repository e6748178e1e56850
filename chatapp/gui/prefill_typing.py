"""Prefill while typing: when a chat is opened, and while the user types (debounced), the
window asks the chat service to evaluate the prompt the next send will have
(ChatService.prefill, a background job on the inference thread that a send preempts
within one batch). What is sent does not change; the first token after Enter comes sooner.
Settings > Speed turns it off (settings.prefill_while_typing).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

DEBOUNCE_MS = 300  # a pause in typing this long asks for a prefill


class PrefillTyping(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.prefill)
        window.input.textChanged.connect(self._timer.start)
        session = window.session
        session.conversation_selected.connect(lambda _cid: self._timer.start())
        session.model_loaded.connect(lambda _loaded: self._timer.start())

    def prefill(self) -> None:
        session = self.window.session
        if not self.window.settings.prefill_while_typing:  # Settings > Speed
            return
        if session.busy or session.model is None or not session.conversation_id:
            return
        draft = self.window.input.toPlainText()
        try:
            fut = session.service.prefill(session.conversation_id, draft)
        except RuntimeError as e:  # the service is shutting down
            log.debug("no prefill: %s", e)
            return
        fut.add_done_callback(_logged)


def _logged(fut: Future[int]) -> None:
    """A prefill is an optimisation: its failure is logged, never shown."""
    e = fut.exception()
    if e is not None:
        log.debug("prefill failed: %s", e)


def install(window: MainWindow) -> PrefillTyping:
    return PrefillTyping(window)
