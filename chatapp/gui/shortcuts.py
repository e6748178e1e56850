"""Keyboard: the shortcuts of the main window, a help sheet (F1 or Ctrl+/), the focus order.

Every shortcut belongs to a QAction that sits in a menu, so the menu shows its key and the
help sheet (built from the menus when it opens) lists everything, including what other
extensions add. Actions other parts of the app fill in later exist here already:
`window.search_action` (Ctrl+F) is created disabled for the conversation search to
connect and enable.
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from chatapp.gui.i18n import QT_TRANSLATE_NOOP

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

# Keys handled by widgets rather than actions, shown at the end of the help sheet
# (translated there: ShortcutSheet's self.tr).
WIDGET_KEYS = (
    (
        QT_TRANSLATE_NOOP("ShortcutSheet", "Message box"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Enter"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Send the message"),
    ),
    (
        QT_TRANSLATE_NOOP("ShortcutSheet", "Message box"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Shift+Enter"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Start a new line"),
    ),
    (
        QT_TRANSLATE_NOOP("ShortcutSheet", "Conversation list"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Delete"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Delete the selected chats (Undo brings them back)"),
    ),
    (
        QT_TRANSLATE_NOOP("ShortcutSheet", "Anywhere"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Tab / Shift+Tab"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Move to the next / previous control"),
    ),
    (
        QT_TRANSLATE_NOOP("ShortcutSheet", "Menus"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Alt+underlined letter"),
        QT_TRANSLATE_NOOP("ShortcutSheet", "Open a menu"),
    ),
)


def _text(seq: QKeySequence) -> str:
    return seq.toString(QKeySequence.SequenceFormat.NativeText)


def menu_shortcuts(window: MainWindow) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every action with a shortcut in the window's menus."""
    rows: list[tuple[str, str, str]] = []

    def walk(menu: QMenu, title: str) -> None:
        for action in menu.actions():
            sub = action.menu()
            if isinstance(sub, QMenu):
                walk(sub, f"{title} › {sub.title().replace('&', '')}")
                continue
            keys = [_text(s) for s in action.shortcuts() if not s.isEmpty()]
            if keys and not action.isSeparator():
                or_ = QCoreApplication.translate("ShortcutSheet", " or ")
                rows.append((title, action.text().replace("&", ""), or_.join(keys)))

    for action in window.menuBar().actions():
        menu = action.menu()
        if isinstance(menu, QMenu):
            walk(menu, menu.title().replace("&", ""))
    return rows


class ShortcutSheet(QDialog):
    """The keyboard help: every shortcut in the menus, and the keys widgets handle."""

    def __init__(self, rows: list[tuple[str, str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Keyboard shortcuts"))
        all_rows = [*rows, *((self.tr(w), self.tr(d), self.tr(k)) for w, k, d in WIDGET_KEYS)]
        self.table = QTableWidget(len(all_rows), 3)
        self.table.setHorizontalHeaderLabels([self.tr("Where"), self.tr("What"), self.tr("Keys")])
        self.table.setAccessibleName(self.tr("Keyboard shortcuts"))
        self.table.setAccessibleDescription(self.tr("Each row: where, what it does, and its keys"))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.verticalHeader()
        header.hide()
        header.setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setWordWrap(False)
        for r, (where, what, keys) in enumerate(all_rows):
            for c, text in enumerate((where, what, keys)):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        intro = QLabel(self.tr("Every action is also in the menus; press Alt to reach them."))
        intro.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(600, 640)

    def keys_for(self, what: str) -> str | None:
        for r in range(self.table.rowCount()):
            item, keys = self.table.item(r, 1), self.table.item(r, 2)
            if item is not None and keys is not None and item.text() == what:
                return keys.text()
        return None


class Shortcuts:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.sheet: ShortcutSheet | None = None
        w = window
        # New chat: the menu action owns Ctrl+N (the button had it, where menus did not show it)
        if hasattr(w, "new_button"):
            w.new_button.setShortcut(QKeySequence())
            w.new_button.setToolTip(
                QCoreApplication.translate("Shortcuts", "Start a new chat (Ctrl+N)")
            )
        w.new_action.setShortcut(QKeySequence.StandardKey.New)
        # Delete works in the conversation list only (elsewhere Delete edits text)
        if hasattr(w, "conversation_view"):
            w.delete_action.setShortcut(QKeySequence.StandardKey.Delete)
            w.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            w.conversation_view.addAction(w.delete_action)
            # arrows browse the list; Enter goes on to the message box
            w.conversation_view.activated.connect(lambda _index: self.focus_input())

        chat = w.menus["chat"]
        self.search_action = QAction(
            QCoreApplication.translate("Shortcuts", "&Search conversations…"), w
        )
        self.search_action.setObjectName("search_action")
        self.search_action.setShortcut(QKeySequence.StandardKey.Find)
        self.search_action.setEnabled(False)  # the conversation search connects and enables it
        if len(chat.actions()) > 1:
            chat.insertAction(chat.actions()[1], self.search_action)
        else:
            chat.addAction(self.search_action)
        w.search_action = self.search_action

        view = w.menus["view"]
        self.focus_input_action = self._action(
            view,
            QCoreApplication.translate("Shortcuts", "&Focus the message box"),
            ["Ctrl+L"],
            self.focus_input,
        )
        view.addSeparator()
        self.next_action = self._action(
            view,
            QCoreApplication.translate("Shortcuts", "&Next conversation"),
            ["Ctrl+Tab", "Ctrl+PgDown"],
            lambda: self.step(1),
        )
        self.previous_action = self._action(
            view,
            QCoreApplication.translate("Shortcuts", "&Previous conversation"),
            ["Ctrl+Shift+Tab", "Ctrl+PgUp"],
            lambda: self.step(-1),
        )
        self.help_action = QAction(
            QCoreApplication.translate("Shortcuts", "&Keyboard shortcuts"), w
        )
        self.help_action.setShortcuts(
            [QKeySequence(QKeySequence.StandardKey.HelpContents), QKeySequence("Ctrl+/")]
        )
        self.help_action.triggered.connect(self.show_sheet)
        help_menu = w.menus["help"]
        if help_menu.actions():
            help_menu.insertAction(help_menu.actions()[0], self.help_action)
        else:
            help_menu.addAction(self.help_action)
        w.addAction(self.help_action)
        w.keyboard_help_action = self.help_action
        self.set_tab_order()

    def _action(self, menu: QMenu, text: str, keys: list[str], slot: Any) -> QAction:
        action = QAction(text, self.window)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.triggered.connect(slot)
        menu.addAction(action)
        self.window.addAction(action)  # works while the menu bar is hidden, too
        return action

    # -- actions -------------------------------------------------------------------------

    def focus_input(self) -> None:
        self.window.input.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def step(self, delta: int) -> None:
        """Select the next (delta=1) or previous (-1) conversation in the list, wrapping."""
        view = self.window.conversation_view
        model = view.model()
        n = model.rowCount()
        if n == 0:
            return
        current = view.currentIndex()
        row = (current.row() + delta) % n if current.isValid() else (0 if delta > 0 else n - 1)
        view.setCurrentIndex(model.index(row, 0))
        view.scrollTo(model.index(row, 0))

    def show_sheet(self) -> ShortcutSheet:
        if self.sheet is not None:
            self.sheet.close()
        self.sheet = ShortcutSheet(menu_shortcuts(self.window), self.window)
        self.sheet.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.sheet.destroyed.connect(self._forget)
        self.sheet.show()
        return self.sheet

    def _forget(self, *_: Any) -> None:
        self.sheet = None

    def set_tab_order(self) -> None:
        """Conversations, then the model bar, the messages and the input with its buttons."""
        names = (
            "new_button",
            "conversation_view",
            "open_button",
            "message_view",
            "input",
            "send_button",
            "stop_button",
            "regenerate_button",
        )
        chain = [
            x for x in (getattr(self.window, n, None) for n in names) if isinstance(x, QWidget)
        ]
        for a, b in pairwise(chain):
            QWidget.setTabOrder(a, b)


def install(window: MainWindow) -> Shortcuts:
    shortcuts = Shortcuts(window)
    window.shortcuts = shortcuts
    return shortcuts
