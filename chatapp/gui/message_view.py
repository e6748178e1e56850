"""The message view: one widget per message of the active branch, in a scroll area.

A streaming answer re-renders only its own widget, and at most every RENDER_INTERVAL_MS
(the worker already coalesces tokens), so a long answer stays smooth.
"""

from __future__ import annotations

import time
from datetime import datetime

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.gui.markdown_html import plain_to_html, to_html

RENDER_INTERVAL_MS = 120
MAX_RENDER_INTERVAL_MS = 400

_ROLE_NAMES = {Role.USER: "You", Role.ASSISTANT: "Assistant", Role.SYSTEM: "System"}
_STYLE = {
    Role.USER: "QFrame#message { background: #e8f0fe; border-radius: 8px; }",
    Role.ASSISTANT: "QFrame#message { background: #ffffff; border: 1px solid #e3e3e3;"
    " border-radius: 8px; }",
    Role.SYSTEM: "QFrame#message { background: #fff8e1; border-radius: 8px; }",
}


def _header(msg: Message) -> str:
    parts = [f"<b>{_ROLE_NAMES.get(msg.role, msg.role.value)}</b>"]
    if msg.role is Role.ASSISTANT and msg.model:
        parts.append(msg.model)
    parts.append(datetime.fromtimestamp(msg.created_at).strftime("%Y-%m-%d %H:%M"))
    if msg.tokens_per_second:
        parts.append(f"{msg.completion_tokens} tokens, {msg.tokens_per_second:.1f} tok/s")
    if msg.finish_reason is FinishReason.CANCELLED:
        parts.append("<i>stopped</i>")
    elif msg.finish_reason is FinishReason.ERROR:
        parts.append("<i>failed</i>")
    elif msg.finish_reason is FinishReason.LENGTH:
        parts.append("<i>cut at the length limit</i>")
    return " · ".join(parts)


class MessageWidget(QFrame):
    def __init__(self, msg: Message, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message")
        self.message_id = msg.id
        self.role = msg.role
        self.setStyleSheet(_STYLE.get(msg.role, ""))
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(4)
        self.header = QLabel()
        self.header.setStyleSheet("color: #5f6368;")
        self.body = QLabel()
        self.body.setObjectName("body")
        self.body.setWordWrap(True)
        self.body.setTextFormat(Qt.TextFormat.RichText)
        self.body.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.LinksAccessibleByMouse
        )
        self.body.setOpenExternalLinks(True)
        self.body.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        # reasoning (<think>…</think>): collapsed by default, stored apart from the answer
        self.thinking_toggle = QToolButton()
        self.thinking_toggle.setCheckable(True)
        self.thinking_toggle.setAutoRaise(True)
        self.thinking_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.thinking_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.thinking_toggle.toggled.connect(self._toggle_thinking)
        self.thinking_body = QLabel()
        self.thinking_body.setWordWrap(True)
        self.thinking_body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.thinking_body.setStyleSheet(
            "color: #5f6368; border-left: 3px solid #dadce0; padding-left: 8px;"
        )
        self.thinking_toggle.hide()
        self.thinking_body.hide()
        lay.addWidget(self.header)
        lay.addWidget(self.thinking_toggle)
        lay.addWidget(self.thinking_body)
        lay.addWidget(self.body)
        self.text = ""
        self.thinking = ""
        self.set_message(msg)

    def set_message(self, msg: Message) -> None:
        self.header.setText(_header(msg))
        self.set_text(msg.content, msg.thinking)

    def set_text(self, text: str, thinking: str = "") -> None:
        self.text = text
        if thinking != self.thinking:
            self.thinking = thinking
            self.thinking_toggle.setVisible(bool(thinking))
            self.thinking_toggle.setText(f"Thinking ({len(thinking.split())} words)")
            if self.thinking_toggle.isChecked():
                self.thinking_body.setText(plain_to_html(thinking))
        if self.role is Role.ASSISTANT:
            placeholder = "<i>thinking…</i>" if thinking else "<i>…</i>"
            self.body.setText(to_html(text) if text else placeholder)
        else:
            self.body.setText(plain_to_html(text))

    def _toggle_thinking(self, shown: bool) -> None:
        self.thinking_toggle.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        if shown:
            self.thinking_body.setText(plain_to_html(self.thinking))
        self.thinking_body.setVisible(shown)


class MessageView(QScrollArea):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._inner = QWidget()
        self._inner.setObjectName("messages")
        self._layout = QVBoxLayout(self._inner)
        self._layout.setContentsMargins(16, 16, 16, 16)
        self._layout.setSpacing(10)
        self._placeholder = QLabel()
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("color: #80868b; font-size: 15px;")
        self._placeholder.setWordWrap(True)
        self._layout.addWidget(self._placeholder)
        self._layout.addStretch(1)
        self.setWidget(self._inner)
        self._widgets: dict[str, MessageWidget] = {}
        self._pending: dict[str, tuple[str, str]] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        self.render_count = 0  # renders of streaming text (for tests and benchmarks)
        self.render_seconds = 0.0
        self.set_placeholder("Open a model (File → Open model…) and say hello.")

    def set_placeholder(self, text: str) -> None:
        self._placeholder.setText(text)
        self._placeholder.setVisible(not self._widgets)

    def widgets(self) -> list[MessageWidget]:
        return list(self._widgets.values())

    def widget_for(self, message_id: str) -> MessageWidget | None:
        return self._widgets.get(message_id)

    def clear(self) -> None:
        for w in self._widgets.values():
            self._layout.removeWidget(w)
            w.deleteLater()
        self._widgets.clear()
        self._pending.clear()
        self._placeholder.setVisible(True)

    def show_thread(self, messages: list[Message]) -> None:
        self.clear()
        for m in messages:
            self.add_message(m, scroll=False)
        QTimer.singleShot(0, self, self.scroll_to_bottom)

    def add_message(self, msg: Message, *, scroll: bool = True) -> MessageWidget:
        w = MessageWidget(msg)
        self._layout.insertWidget(self._layout.count() - 1, w)
        self._widgets[msg.id] = w
        self._placeholder.setVisible(False)
        if scroll:
            QTimer.singleShot(0, self, self.scroll_to_bottom)
        return w

    def update_text(self, message_id: str, text: str, thinking: str = "") -> None:
        """Coalesced: the widget re-renders at most every RENDER_INTERVAL_MS."""
        self._pending[message_id] = (text, thinking)
        if not self._timer.isActive():
            # Qt lays out the whole message again on each update, so a long answer is
            # refreshed less often: the GUI's share of the CPU stays small and the model
            # (which wants every core) keeps its speed.
            size = len(text) + len(thinking)
            self._timer.start(min(MAX_RENDER_INTERVAL_MS, RENDER_INTERVAL_MS + size // 25))

    def finish(self, msg: Message) -> None:
        self._pending.pop(msg.id, None)
        w = self._widgets.get(msg.id)
        if w is None:
            w = self.add_message(msg)
        else:
            w.set_message(msg)
        QTimer.singleShot(0, self, self.scroll_to_bottom)

    def _flush(self) -> None:
        sb = self.verticalScrollBar()
        at_bottom = sb.value() >= sb.maximum() - 40
        t0 = time.perf_counter()
        for mid, (text, thinking) in self._pending.items():
            w = self._widgets.get(mid)
            if w is not None:
                w.set_text(text, thinking)
        self._pending.clear()
        self.render_count += 1
        self.render_seconds += time.perf_counter() - t0
        if at_bottom:
            QTimer.singleShot(0, self, self.scroll_to_bottom)

    def scroll_to_bottom(self) -> None:
        sb = self.verticalScrollBar()
        sb.setValue(sb.maximum())
