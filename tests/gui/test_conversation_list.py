"""The conversation list: pinned first, date groups, the chat's model on a second line,
tags and the tag filter, the Delete key (to the trash, with Undo), shortcuts shown in
the menus."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QComboBox, QInputDialog, QMenu, QMessageBox

from chatapp.core.conversation import Role
from chatapp.core.store import Store
from chatapp.gui.conversation_list import (
    OLDER,
    PINNED,
    THIS_WEEK,
    TODAY,
    YESTERDAY,
    ConversationListModel,
    ConversationRole,
    date_group,
)

EXTENSIONS = ("chatapp.gui.conversation_actions", "chatapp.gui.search_panel")
NOW = datetime(2026, 11, 23, 15, 0).timestamp()


def _at(days: float = 0, hours: float = 0) -> float:
    return NOW - timedelta(days=days, hours=hours).total_seconds()


def _fill(store: Store) -> dict[str, str]:
    made = {
        "today": store.create_conversation(
            "Today's chat", created_at=_at(hours=1), model_path="/models/smol-q8.gguf"
        ),
        "yesterday": store.create_conversation("Yesterday's", created_at=_at(days=1)),
        "week": store.create_conversation("Earlier this week", created_at=_at(days=4)),
        "old": store.create_conversation(
            "Old one", created_at=_at(days=40), model_path="/m/gemma.gguf"
        ),
    }
    return {k: c.id for k, c in made.items()}


def _rows(model, role=Qt.ItemDataRole.DisplayRole):
    return [model.index(r).data(role) for r in range(model.rowCount())]


def test_date_groups():
    assert date_group(_at(hours=14.9), NOW) == TODAY  # 00:06 today
    assert date_group(_at(hours=15.1), NOW) == YESTERDAY  # 23:54 yesterday
    assert date_group(_at(days=1, hours=14), NOW) == YESTERDAY
    assert date_group(_at(days=3), NOW) == THIS_WEEK
    assert date_group(_at(days=7, hours=14), NOW) == THIS_WEEK
    assert date_group(_at(days=8, hours=1), NOW) == OLDER


def test_pinned_first_groups_model_and_qtmodeltester(qtmodeltester, tmp_path):
    with Store(tmp_path / "db.sqlite3") as store:
        ids = _fill(store)
        store.set_pinned(ids["old"], True)
        store.set_tags(ids["old"], ["work", "#Reading", "work"])
        model = ConversationListModel(store, clock=lambda: NOW)
        assert _rows(model) == ["Old one", "Today's chat", "Yesterday's", "Earlier this week"]
        assert _rows(model, ConversationRole.GROUP) == [PINNED, TODAY, YESTERDAY, THIS_WEEK]
        assert _rows(model, ConversationRole.GROUP_START) == [True, True, True, True]
        assert _rows(model, ConversationRole.PINNED) == [True, False, False, False]
        assert _rows(model, ConversationRole.TAGS)[0] == ["Reading", "work"]
        details = _rows(model, ConversationRole.DETAIL)
        day = f"{datetime.fromtimestamp(_at(days=40)):%Y-%m-%d}"
        assert details[0] == f"{day} · #Reading · #work · gemma.gguf"
        assert details[1] == f"{datetime.fromtimestamp(_at(hours=1)):%H:%M} · smol-q8.gguf"
        assert details[2] == f"{datetime.fromtimestamp(_at(days=1)):%H:%M}"  # no model yet
        tip = model.index(1).data(Qt.ItemDataRole.ToolTipRole)
        assert tip.startswith("Today's chat\nModel: smol-q8.gguf\nLast message: ")
        qtmodeltester.check(model)
        # unpinned, it goes back among the others by date
        store.set_pinned(ids["old"], False)
        model.reload()
        assert _rows(model)[-1] == "Old one"
        assert _rows(model, ConversationRole.GROUP)[-1] == OLDER
        # the tag filter
        model.set_tag("READING")
        assert _rows(model) == ["Old one"] and not model.canFetchMore()
        model.set_tag(None)
        assert model.rowCount() == 4
        qtmodeltester.check(model)


def test_paging_keeps_groups_and_pins(qtmodeltester, tmp_path):
    with Store(tmp_path / "db.sqlite3") as store:
        ids = [
            store.create_conversation(f"c{i}", created_at=_at(days=i / 10)).id for i in range(250)
        ]
        store.set_pinned(ids[249], True)  # the oldest, pinned: first row of the first page
        model = ConversationListModel(store, clock=lambda: NOW)
        assert model.rowCount() == 100 and model.canFetchMore()
        while model.canFetchMore():
            model.fetchMore()
        assert model.rowCount() == 250
        titles = _rows(model)
        assert titles[:3] == ["c249", "c0", "c1"]
        groups = _rows(model, ConversationRole.GROUP)
        starts = [
            model.index(r).data()
            for r in range(250)
            if model.index(r).data(ConversationRole.GROUP_START)
        ]
        assert groups[0] == PINNED and groups[-1] == OLDER
        assert len(starts) == 5  # Pinned, Today, Yesterday, This week, Older: once each
        qtmodeltester.check(model)


# a real context menu on the offscreen platform says it cannot raise it or grab the keyboard
@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing the keyboard")
def test_window_list_pin_tags_filter_and_delete_key(qtbot, make_window, monkeypatch):
    w = make_window(extensions=EXTENSIONS)
    ids = _fill(w.store)
    w.refresh_conversations()
    view = w.conversation_view
    # pin from the Chat menu: the selected chat moves to the top
    view.setCurrentIndex(w.conversations.index(w.conversations.row_of(ids["week"])))
    assert w.current_conversation_id() == ids["week"]
    chat_menu = w.menus["chat"]
    pin = next(a for a in chat_menu.actions() if "Pin" in a.text())
    chat_menu.aboutToShow.emit()
    assert pin.text() == "&Pin chat"
    pin.trigger()  # saved by the service; its event reloads the list
    qtbot.waitUntil(lambda: _rows(w.conversations)[0] == "Earlier this week")
    assert w.conversations.index(0).data(ConversationRole.GROUP) == PINNED
    chat_menu.aboutToShow.emit()
    assert pin.text() == "Un&pin chat"
    # tags, and the filter under the list (hidden while no chat has a tag)
    tag_filter = w.findChild(QComboBox, "conversation_tag_filter")
    assert tag_filter.isHidden()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("work, ideas", True))
    next(a for a in chat_menu.actions() if a.text() == "&Tags…").trigger()
    qtbot.waitUntil(lambda: not tag_filter.isHidden())
    assert w.store.tags(ids["week"]) == ["ideas", "work"]
    assert [tag_filter.itemText(i) for i in range(tag_filter.count())] == [
        "All chats",
        "#ideas  (1)",
        "#work  (1)",
    ]
    tag_filter.setCurrentIndex(2)
    tag_filter.activated.emit(2)
    assert _rows(w.conversations) == ["Earlier this week"]
    tag_filter.activated.emit(0)
    assert w.conversations.rowCount() == 4
    # the context menu offers the same, and every action shows its shortcut
    menus = []

    def read_and_close():  # the menu is modal: read it, then close it
        popup = QApplication.activePopupWidget()
        if not isinstance(popup, QMenu):
            QTimer.singleShot(20, read_and_close)
            return
        menus.append([(x.text(), x.shortcut().toString()) for x in popup.actions()])
        popup.close()

    QTimer.singleShot(20, read_and_close)
    view.customContextMenuRequested.emit(view.visualRect(w.conversations.index(0)).center())
    assert ("Re&name chat…", "F2") in menus[0]
    assert ("&Delete chat", QKeySequence(QKeySequence.StandardKey.Delete).toString()) in menus[0]
    assert "Un&pin chat" in [t for t, _ in menus[0]]
    # the Chat menu shows the shortcuts: Ctrl+N moved from the button to the menu's action
    shown = {a.text(): a.shortcut().toString() for a in chat_menu.actions()}
    assert shown["&New chat"] == QKeySequence(QKeySequence.StandardKey.New).toString()
    assert shown["&Find in chats…"] == QKeySequence(QKeySequence.StandardKey.Find).toString()
    assert w.new_button.shortcut().isEmpty()
    # Delete in the list moves the chat to the trash at once and offers to undo it
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a) or 0)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: w.conversations.rowCount() == 3)
    assert w.store.get_conversation(ids["week"]) is None and asked == []
    assert "Earlier this week" not in _rows(w.conversations)
    qtbot.waitUntil(tag_filter.isHidden)  # its only tagged chat is gone
    bar = w.message_bar
    qtbot.waitUntil(bar.isVisible)
    assert bar.label.text() == "Deleted “Earlier this week”."
    # Undo brings it back as it was: pinned, tagged, and open
    qtbot.mouseClick(bar.action_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.current_conversation_id() == ids["week"])
    assert _rows(w.conversations)[0] == "Earlier this week"
    assert w.conversations.index(0).data(ConversationRole.GROUP) == PINNED
    assert w.store.tags(ids["week"]) == ["ideas", "work"] and not tag_filter.isHidden()
    assert w.store.trash_entries() == []
    # deleted again, it stays in Chat > Deleted chats (after a restart too) until emptied
    view.setFocus()
    qtbot.waitUntil(view.hasFocus)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: w.conversations.rowCount() == 3)
    # Delete in the input box edits text, it never deletes a chat
    w.input.setPlainText("abc")
    w.input.setFocus()
    qtbot.waitUntil(w.input.hasFocus)
    w.input.moveCursor(w.input.textCursor().MoveOperation.Start)
    qtbot.keyClick(w.input, Qt.Key.Key_Delete)
    assert w.input.toPlainText() == "bc"
    assert w.store.count_conversations() == 3
    # and Ctrl+N (now the menu action's) still starts a new chat
    w.session.select_conversation(ids["today"])
    with qtbot.waitSignal(w.session.conversation_selected) as sig:
        qtbot.keyClick(w.input, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert sig.args == [""] and w.current_conversation_id() is None


def test_the_list_draws_two_lines_under_group_headings(qtbot, make_window):
    w = make_window(extensions=EXTENSIONS)
    ids = _fill(w.store)
    w.store.add_message(ids["today"], Role.USER, "hi")
    w.refresh_conversations()
    view = w.conversation_view
    first = view.visualRect(w.conversations.index(0))
    second = view.visualRect(w.conversations.index(1))
    line = view.fontMetrics().height()
    # a heading plus two lines of text: taller than a plain one-line row
    assert first.height() > 2 * line and second.height() > 2 * line
    assert view.grab().isNull() is False  # paints without error
