"""Keyboard: every shortcut does its job from the keyboard, shows in its menu, and the help
sheet lists them; Tab walks the window in a sensible order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QMenu

from chatapp.core.conversation import Role
from chatapp.gui.settings_dialog import SettingsDialog
from chatapp.gui.shortcuts import ShortcutSheet, menu_shortcuts

EXT = (
    "chatapp.gui.export_actions",
    "chatapp.gui.theme",
    "chatapp.gui.settings_dialog",
    "chatapp.gui.shortcuts",
    "chatapp.gui.accessibility",
)
Key = Qt.Key
Mod = Qt.KeyboardModifier


def _window(qtbot: Any, make_window: Any, conversations: int = 0, **kw: Any) -> Any:
    w = make_window(extensions=EXT, **kw)
    for i in range(conversations):
        c = w.store.create_conversation(f"chat {i}")
        w.store.add_message(c.id, Role.USER, f"question {i}", parent_id=None)
    w.refresh_conversations()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5_000)
    return w


def _titles(w: Any) -> str | None:
    cid = w.session.conversation_id
    conv = w.store.get_conversation(cid) if cid else None
    return conv.title if conv else None


def test_next_and_previous_conversation(qtbot: Any, make_window: Any) -> None:
    w = _window(qtbot, make_window, conversations=3)  # listed newest first: chat 2, 1, 0
    w.input.setFocus()
    qtbot.keyClick(w.input, Key.Key_Tab, Mod.ControlModifier)
    assert _titles(w) == "chat 2"
    qtbot.keyClick(w.input, Key.Key_PageDown, Mod.ControlModifier)
    assert _titles(w) == "chat 1"
    qtbot.keyClick(w.input, Key.Key_Tab, Mod.ControlModifier)
    qtbot.keyClick(w.input, Key.Key_Tab, Mod.ControlModifier)  # wraps round
    assert _titles(w) == "chat 2"
    qtbot.keyClick(w.input, Key.Key_Backtab, Mod.ControlModifier | Mod.ShiftModifier)
    assert _titles(w) == "chat 0"
    qtbot.keyClick(w.input, Key.Key_PageUp, Mod.ControlModifier)
    assert _titles(w) == "chat 1"
    assert [m.content for m in w.session.thread()] == ["question 1"]


def test_new_chat_focus_input_and_delete(
    qtbot: Any, make_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _window(qtbot, make_window, conversations=2)
    w.conversation_view.setFocus()
    qtbot.keyClick(w.conversation_view, Key.Key_Down)
    assert w.session.conversation_id is not None
    qtbot.keyClick(w.conversation_view, Key.Key_L, Mod.ControlModifier)
    assert w.input.hasFocus()
    w.input.setPlainText("draft")
    qtbot.keyClick(w.input, Key.Key_Delete)  # in the message box Delete edits text
    assert w.store.count_conversations() == 2
    qtbot.keyClick(w.input, Key.Key_N, Mod.ControlModifier)
    assert w.session.conversation_id is None and w.store.count_conversations() == 2
    qtbot.keyClick(w.input, Key.Key_Tab, Mod.ControlModifier)  # open the next one
    assert w.session.conversation_id is not None
    w.conversation_view.setFocus()
    qtbot.keyClick(w.conversation_view, Key.Key_Delete)  # to the trash, with Undo offered
    qtbot.waitUntil(lambda: w.store.count_conversations() == 1)
    qtbot.waitUntil(w.message_bar.action_button.isVisible)
    assert w.message_bar.action_button.text() == "Undo"


def test_stop_and_regenerate(qtbot: Any, make_window: Any, fake_model_file: Path) -> None:
    w = _window(qtbot, make_window, reply="word " * 3000, delay=0.002)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10_000):
        w.open_model(str(fake_model_file))
    w.input.setPlainText("Go on")
    with qtbot.waitSignal(w.session.reply_finished, timeout=30_000):
        qtbot.keyClick(w.input, Key.Key_Return)
        qtbot.waitUntil(lambda: bool(w.session._streaming and w.session._streaming.text))
        qtbot.keyClick(w.input, Key.Key_Escape)
    first = w.store.active_thread(w.current_conversation_id())[-1]
    assert first.finish_reason is not None and first.finish_reason.value == "cancelled"
    w.engines[0].reply, w.engines[0].delay = "again", 0.0
    with qtbot.waitSignal(w.session.reply_finished, timeout=30_000):
        qtbot.keyClick(w.input, Key.Key_R, Mod.ControlModifier)
    assert w.store.active_thread(w.current_conversation_id())[-1].content == "again"


def test_settings_help_export_and_search(qtbot: Any, make_window: Any) -> None:
    w = _window(qtbot, make_window, conversations=1)
    qtbot.keyClick(w.input, Key.Key_Comma, Mod.ControlModifier)
    dialog = w.settings_actions.dialog
    assert isinstance(dialog, SettingsDialog) and dialog.isVisible()
    dialog.reject()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5_000)
    for key, mod in ((Key.Key_F1, Mod.NoModifier), (Key.Key_Slash, Mod.ControlModifier)):
        qtbot.keyClick(w.input, key, mod)
        sheet = w.shortcuts.sheet
        assert isinstance(sheet, ShortcutSheet) and sheet.isVisible()
        sheet.close()
        qtbot.waitUntil(lambda: w.shortcuts.sheet is None)
        w.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5_000)
    export = next(a for a in w.findChildren(QAction) if a.text() == "Export conversation…")
    export.triggered.disconnect()  # the real slot opens a file dialog
    with qtbot.waitSignal(export.triggered, timeout=2_000):
        qtbot.keyClick(w.input, Key.Key_E, Mod.ControlModifier)
    search = w.search_action
    assert not search.isEnabled() and "Search" in search.text()
    found: list[bool] = []
    search.triggered.connect(lambda: found.append(True))
    search.setEnabled(True)  # as the conversation search will
    qtbot.keyClick(w.input, Key.Key_F, Mod.ControlModifier)
    assert found == [True]


def _menu_actions(w: Any) -> set[QAction]:
    out: set[QAction] = set()

    def walk(menu: QMenu) -> None:
        for a in menu.actions():
            sub = a.menu()
            if isinstance(sub, QMenu):
                walk(sub)
            out.add(a)

    for a in w.menuBar().actions():
        if isinstance(a.menu(), QMenu):
            walk(a.menu())
    return out


def test_every_shortcut_is_in_a_menu_unique_and_on_the_help_sheet(
    qtbot: Any, make_window: Any
) -> None:
    w = _window(qtbot, make_window)
    with_keys = [a for a in w.findChildren(QAction) if any(not s.isEmpty() for s in a.shortcuts())]
    in_menus = _menu_actions(w)
    assert [a.text() for a in with_keys if a not in in_menus] == []
    keys = Counter(s.toString() for a in with_keys for s in a.shortcuts() if not s.isEmpty())
    assert [k for k, n in keys.items() if n > 1] == []  # an ambiguous key triggers nothing
    wanted = {
        "New chat": "Ctrl+N",
        "Search conversations…": "Ctrl+F",
        "Export conversation…": "Ctrl+E",
        "Stop answer": "Esc",
        "Regenerate answer": "Ctrl+R",
        "Settings…": "Ctrl+,",
        "Next conversation": "Ctrl+Tab or Ctrl+PgDown",
        "Previous conversation": "Ctrl+Shift+Tab or Ctrl+PgUp",
        "Focus the message box": "Ctrl+L",
        "Keyboard shortcuts": "F1 or Ctrl+/",
    }
    listed = {what: keys for _menu, what, keys in menu_shortcuts(w)}
    for what, key in wanted.items():
        assert listed.get(what) == key, what
    sheet = w.shortcuts.show_sheet()
    for what, key in wanted.items():
        assert sheet.keys_for(what) == key
    assert sheet.keys_for("Send the message") == "Enter"


def test_tab_walks_the_window_in_order(qtbot: Any, make_window: Any, fake_model_file: Path) -> None:
    w = _window(qtbot, make_window, conversations=1)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10_000):
        w.open_model(str(fake_model_file))
    w.conversation_view.setCurrentIndex(w.conversations.index(0))  # a chat with an answer
    w.new_button.setFocus()
    seen = [QApplication.focusWidget()]
    for _ in range(7):
        qtbot.keyClick(QApplication.focusWidget(), Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    expected = [w.new_button, w.conversation_view, w.open_button, w.message_view, w.input]
    assert seen[: len(expected)] == expected
    assert w.send_button in seen  # then the enabled buttons beside the input
    assert seen[-1] in (w.new_button, w.conversation_view, w.send_button, w.regenerate_button)
    qtbot.keyClick(QApplication.focusWidget(), Key.Key_Backtab, Mod.ShiftModifier)
    assert QApplication.focusWidget() is seen[-2]
