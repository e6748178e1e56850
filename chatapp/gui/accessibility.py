"""Accessible names and descriptions for the main window's controls.

Screen readers announce a control by its accessible name. Buttons with text have one from
Qt already; lists, text boxes and symbol-only buttons need theirs set. Widgets are looked
up by the window's attribute names, so a missing one (a layout being reworked) is skipped.
tests/gui/test_accessibility.py walks every window and dialog and fails on a control
without a name.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QToolButton, QWidget

NAMES: dict[str, tuple[str, str]] = {
    "new_button": ("New chat", "Start a new, empty chat"),
    "conversation_view": (
        "Conversations",
        "Your chats, most recent first. Arrow keys choose one; Delete deletes it.",
    ),
    "open_button": ("Open model", "Open a .gguf model file"),
    "model_progress": ("Loading the model", ""),
    "message_view": ("Conversation", "The messages of the open chat"),
    "input": ("Message", "Type a message: Enter sends it, Shift+Enter starts a new line"),
    "send_button": ("Send", "Send the message (Enter)"),
    "stop_button": ("Stop", "Stop the answer; what came so far is kept (Esc)"),
    "regenerate_button": (
        "Regenerate",
        "A new answer to your last message; the old one is kept as a branch (Ctrl+R)",
    ),
    "model_label": ("Model", ""),
}


def name_widgets(window: Any) -> None:
    for attr, (name, description) in NAMES.items():
        widget = getattr(window, attr, None)
        if isinstance(widget, QWidget):
            if not widget.accessibleName():
                widget.setAccessibleName(name)
            if description and not widget.accessibleDescription():
                widget.setAccessibleDescription(description)
    bar = getattr(window, "message_bar", None)
    if isinstance(bar, QWidget):
        bar.setAccessibleName("Message from chatapp")
        for button in bar.findChildren(QToolButton):
            if not button.accessibleName():
                button.setAccessibleName("Close this message")
                button.setToolTip("Close this message")


def install(window: Any) -> None:
    name_widgets(window)
