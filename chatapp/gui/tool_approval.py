"""Asking the user before a tool runs: the approval card below the messages.

The chat service calls a turn's approve callback on its inference thread and waits for
the answer. ApprovalBroker.approve hands the question to the GUI thread (a queued
signal) and waits on a Future there, never the reverse: the window stays responsive
while the card waits. Stop ends the wait (the call is not run and the card goes away);
so does closing the window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chatapp.gui.chatview.toolcards import arguments_text, source_of

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often a waiting approval looks for Stop

ONCE, CHAT, DENY = "once", "chat", "deny"


@dataclass(eq=False)
class Pending:
    """One call waiting for the user's answer."""

    call: Any  # core.toolcalls.ToolCall
    conversation_id: str | None
    future: Future[str] = field(default_factory=Future)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def decide(self, answer: str) -> bool:
        """Give the answer (ONCE, CHAT or DENY); False if it was already given."""
        with self._lock:
            if self.future.done():
                return False
            self.future.set_result(answer)
            return True


class ApprovalBroker(QObject):
    """The approve callback of the window's turns, and the queue the card shows."""

    asked = Signal(object)  # Pending, on the GUI thread
    withdrawn = Signal(object)  # Pending: Stop came first (or the window closed)
    decided = Signal(object, str)  # Pending, its answer
    _ask = Signal(object)
    _withdraw = Signal(object)

    def __init__(
        self,
        stop_requested: Callable[[], bool],
        on_allow_for_chat: Callable[[Pending], None] | None = None,
    ) -> None:
        super().__init__()
        self._stop_requested = stop_requested
        self._on_allow_for_chat = on_allow_for_chat
        self.pending: list[Pending] = []
        # tools allowed for the rest of a chat's turn in flight ("Allow for this chat"
        # is saved for later turns; this covers the calls still to come in this one)
        self._allowed: set[tuple[str | None, str]] = set()
        self._allowed_lock = threading.Lock()
        # bound methods of this GUI-thread object: emitted from the inference thread,
        # the calls are queued to the GUI thread
        self._ask.connect(self._on_ask)
        self._withdraw.connect(self._on_withdraw)

    def approver(self, conversation_id: str | None) -> Callable[[Any], bool]:
        """The approve callback of one turn in `conversation_id`."""

        def approve(call: Any) -> bool:
            return self.approve(call, conversation_id)

        return approve

    def approve(self, call: Any, conversation_id: str | None) -> bool:
        """On the inference thread: ask, and wait for the answer or for Stop."""
        with self._allowed_lock:
            if (conversation_id, call.name) in self._allowed:
                return True
        pending = Pending(call, conversation_id)
        self._ask.emit(pending)
        while True:
            try:
                answer = pending.future.result(timeout=POLL_S)
                break
            except FutureTimeout:
                if self._stop_requested() and pending.decide(DENY):
                    self._withdraw.emit(pending)
                    return False
        return answer in (ONCE, CHAT)

    def answer(self, pending: Pending, answer: str) -> None:
        """On the GUI thread: the user's answer to a card."""
        if not pending.decide(answer):
            return
        if answer == CHAT:
            with self._allowed_lock:
                self._allowed.add((pending.conversation_id, pending.call.name))
            if self._on_allow_for_chat is not None:
                self._on_allow_for_chat(pending)
        self._drop(pending)
        self.decided.emit(pending, answer)

    def turn_ended(self) -> None:
        """The turn is over: what it was allowed is saved (or was only once)."""
        with self._allowed_lock:
            self._allowed.clear()
        for p in list(self.pending):
            if p.decide(DENY):
                log.info("an approval of %s outlived its turn", p.call.name)
            self._drop(p)
            self.withdrawn.emit(p)

    def _on_ask(self, pending: Pending) -> None:
        if pending.future.done():  # Stop came before the question reached the window
            return
        self.pending.append(pending)
        self.asked.emit(pending)

    def _on_withdraw(self, pending: Pending) -> None:
        self._drop(pending)
        self.withdrawn.emit(pending)

    def _drop(self, pending: Pending) -> None:
        if pending in self.pending:
            self.pending.remove(pending)


class ApprovalCard(QFrame):
    """The first waiting call: the tool, where it comes from, the exact arguments, and
    Allow once / Allow for this chat / Deny. Hidden while nothing waits."""

    def __init__(self, broker: ApprovalBroker, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.broker = broker
        self.setObjectName("tool_approval")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(self.palette().ColorRole.AlternateBase)
        self.setAccessibleName(self.tr("A tool call waits for your approval"))
        lay = QVBoxLayout(self)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setObjectName("tool_approval_title")
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.source = QLabel()
        self.source.setWordWrap(True)
        self.arguments = QPlainTextEdit()
        self.arguments.setObjectName("tool_approval_arguments")
        self.arguments.setReadOnly(True)
        self.arguments.setAccessibleName(self.tr("The call's arguments"))
        self.arguments.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        buttons = QHBoxLayout()
        self.allow_once = QPushButton(self.tr("Allow once"))
        self.allow_chat = QPushButton(self.tr("Allow for this chat"))
        self.deny = QPushButton(self.tr("Deny"))
        self.allow_once.setToolTip(self.tr("Run this call; ask again next time"))
        self.allow_chat.setToolTip(
            self.tr("Run this call and every later call of this tool in this chat")
        )
        self.deny.setToolTip(self.tr("Do not run it; the model is told you denied it"))
        for b in (self.allow_once, self.allow_chat, self.deny):
            buttons.addWidget(b)
        buttons.addStretch(1)
        self.waiting = QLabel()
        buttons.addWidget(self.waiting)
        lay.addWidget(self.title)
        lay.addWidget(self.source)
        lay.addWidget(self.arguments)
        lay.addLayout(buttons)
        self.allow_once.clicked.connect(lambda: self._answer(ONCE))
        self.allow_chat.clicked.connect(lambda: self._answer(CHAT))
        self.deny.clicked.connect(lambda: self._answer(DENY))
        broker.asked.connect(self._refresh)
        broker.withdrawn.connect(self._refresh)
        broker.decided.connect(self._refresh)
        self.current: Pending | None = None
        self.hide()

    def _answer(self, answer: str) -> None:
        if self.current is not None:
            self.broker.answer(self.current, answer)

    def _refresh(self, *_args: object) -> None:
        waiting = self.broker.pending
        self.current = waiting[0] if waiting else None
        if self.current is None:
            self.hide()
            return
        call = self.current.call
        self.title.setText(self.tr("Run the tool “{name}”?").format(name=call.name))
        self.source.setText(self.tr("From: {source}").format(source=source_of(call.name)))
        text = arguments_text(call.as_json())
        self.arguments.setPlainText(text)
        # as tall as the arguments (wrapped lines estimated), 3 to 8 lines; more scrolls
        em = self.arguments.fontMetrics()
        per_line = max(20, self.arguments.viewport().width() // max(1, em.averageCharWidth()))
        lines = sum(1 + len(line) // per_line for line in text.split("\n"))
        margins = 2 * (self.arguments.frameWidth() + self.arguments.document().documentMargin())
        self.arguments.setFixedHeight(
            round((min(8, max(3, lines)) + 0.5) * em.lineSpacing() + margins)
        )
        self.waiting.setText(
            self.tr("{n} more waiting").format(n=len(waiting) - 1) if len(waiting) > 1 else ""
        )
        # shown without taking the focus: a key typed elsewhere must never answer it
        self.show()


__all__ = ["CHAT", "DENY", "ONCE", "ApprovalBroker", "ApprovalCard", "Pending"]
