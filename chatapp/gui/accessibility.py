"""Accessible names and descriptions for the main window's controls.

Screen readers announce a control by its accessible name. Buttons with text have one from
Qt already; lists, text boxes and symbol-only buttons need theirs set. Widgets are looked
up by the window's attribute names, so a missing one (a layout being reworked) is skipped.
tests/gui/test_accessibility.py walks every window and dialog and fails on a control
without a name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QToolButton, QWidget

from chatapp.gui.i18n import QT_TRANSLATE_NOOP

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

# marked for lupdate here, translated when set (context "Accessibility")
NAMES: dict[str, tuple[str, str]] = {
    "new_button": (
        QT_TRANSLATE_NOOP("Accessibility", "New chat"),
        QT_TRANSLATE_NOOP("Accessibility", "Start a new, empty chat"),
    ),
    "conversation_view": (
        QT_TRANSLATE_NOOP("Accessibility", "Conversations"),
        QT_TRANSLATE_NOOP(
            "Accessibility",
            "Your chats, most recent first. Arrow keys choose one; Delete deletes it.",
        ),
    ),
    "open_button": (
        QT_TRANSLATE_NOOP("Accessibility", "Open model"),
        QT_TRANSLATE_NOOP("Accessibility", "Open a .gguf model file"),
    ),
    "model_progress": (QT_TRANSLATE_NOOP("Accessibility", "Loading the model"), ""),
    "message_view": (
        QT_TRANSLATE_NOOP("Accessibility", "Conversation"),
        QT_TRANSLATE_NOOP("Accessibility", "The messages of the open chat"),
    ),
    "input": (
        QT_TRANSLATE_NOOP("Accessibility", "Message"),
        QT_TRANSLATE_NOOP(
            "Accessibility", "Type a message: Enter sends it, Shift+Enter starts a new line"
        ),
    ),
    "send_button": (
        QT_TRANSLATE_NOOP("Accessibility", "Send"),
        QT_TRANSLATE_NOOP("Accessibility", "Send the message (Enter)"),
    ),
    "stop_button": (
        QT_TRANSLATE_NOOP("Accessibility", "Stop"),
        QT_TRANSLATE_NOOP("Accessibility", "Stop the answer; what came so far is kept (Esc)"),
    ),
    "regenerate_button": (
        QT_TRANSLATE_NOOP("Accessibility", "Regenerate"),
        QT_TRANSLATE_NOOP(
            "Accessibility",
            "A new answer to your last message; the old one is kept as a branch (Ctrl+R)",
        ),
    ),
    "model_label": (QT_TRANSLATE_NOOP("Accessibility", "Model"), ""),
}


def name_widgets(window: MainWindow) -> None:
    for attr, (name, description) in NAMES.items():
        widget = getattr(window, attr, None)
        if isinstance(widget, QWidget):
            if not widget.accessibleName():
                widget.setAccessibleName(QCoreApplication.translate("Accessibility", name))
            if description and not widget.accessibleDescription():
                widget.setAccessibleDescription(
                    QCoreApplication.translate("Accessibility", description)
                )
    bar = getattr(window, "message_bar", None)
    if isinstance(bar, QWidget):
        bar.setAccessibleName(QCoreApplication.translate("Accessibility", "Message from chatapp"))
        for button in bar.findChildren(QToolButton):
            if not button.accessibleName():
                button.setAccessibleName(
                    QCoreApplication.translate("Accessibility", "Close this message")
                )
                button.setToolTip(QCoreApplication.translate("Accessibility", "Close this message"))


def install(window: MainWindow) -> None:
    name_widgets(window)
