"""Conversation edits in the window go through the chat service (service.conversations):
Delete then Undo keeps every row an answer recorded (its token probabilities, prompt
token ids, receipt); what was deleted can be restored after a restart from Chat >
Deleted chats until the trash is emptied; edits made with `chatapp conversations` show
in the window's list."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from chatapp import cli
from chatapp.core.conversation import Role
from chatapp.gui.conversation_list import PINNED, ConversationRole
from chatapp.service.events import ConversationsChanged

EXTENSIONS = ("chatapp.gui.conversation_actions", "chatapp.gui.branch_actions")


def _load(qtbot, w, path):
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(path))


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def _rows(w):
    m = w.conversations
    return [m.index(r).data() for r in range(m.rowCount())]


def _recorded(store, cid):
    msgs = store.messages(cid, with_tokens=True)
    return msgs, {m.id: store.prompt_tokens(m.id) for m in msgs}


def test_deleting_a_message_then_undo_keeps_its_tokens_and_receipt(
    qtbot, make_window, fake_model_file
):
    w = make_window(reply="one two three", extensions=EXTENSIONS)
    heard = []
    w.session.service.subscribe(heard.append)
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "q1")
    _send(qtbot, w, "q2")
    cid = w.current_conversation_id()
    before, prompts = _recorded(w.store, cid)
    answer = before[-1]
    assert answer.tokens is not None and prompts[answer.id] and answer.meta["receipt"]
    view = w.message_view
    q2 = view.widgets()[2].message_id
    with qtbot.waitSignal(w.branch_actions.thread_shown, timeout=10000):
        view.scroll_to_message(q2)
        qtbot.mouseClick(
            view.viewport(), Qt.MouseButton.LeftButton, pos=view.click_point(q2, "delete")
        )
    assert w.store.token_trace(answer.id) is None and w.store.prompt_tokens(answer.id) is None
    with qtbot.waitSignal(w.branch_actions.thread_shown, timeout=10000):
        qtbot.mouseClick(view.undo_bar.button, Qt.MouseButton.LeftButton)
    assert _recorded(w.store, cid) == (before, prompts)
    assert w.store.token_trace(answer.id) == answer.tokens
    assert [r.text for r in view.widgets()] == ["q1", "one two three", "q2", "one two three"]
    edits = [e.what for e in heard if isinstance(e, ConversationsChanged)]
    assert edits == ["delete_message", "restore"]  # the service saved both


@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing the keyboard")
def test_del_in_the_list_then_undo_after_a_restart_then_empty(
    qtbot, make_window, fake_model_file, monkeypatch
):
    w = make_window(reply="an answer", extensions=EXTENSIONS)
    heard = []
    w.session.service.subscribe(heard.append)
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "keep me")
    w.session.new_conversation()
    _send(qtbot, w, "delete me")
    doomed = w.current_conversation_id()
    before, prompts = _recorded(w.store, doomed)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.conversation_view.setFocus()
    qtbot.waitUntil(w.conversation_view.hasFocus)
    qtbot.keyClick(w.conversation_view, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: _rows(w) == ["keep me"])
    assert w.message_view.widgets() == [] and w.current_conversation_id() is None
    assert [(e.what, e.conversation_ids) for e in heard if isinstance(e, ConversationsChanged)] == [
        ("delete", (doomed,))
    ]
    w.close()  # the window closes without Undo
    w.store.close()

    again = make_window(reply="an answer", extensions=EXTENSIONS)
    assert _rows(again) == ["keep me"]
    actions = again.conversation_actions
    menu = actions.trash_menu
    menu.aboutToShow.emit()
    labels = [a.text() for a in menu.actions()]
    assert labels[0] == "Restore “delete me”" and labels[-1] == "&Empty deleted chats…"
    with qtbot.waitSignal(again.session.conversation_selected, timeout=10000):
        menu.actions()[0].trigger()
    assert again.current_conversation_id() == doomed
    qtbot.waitUntil(lambda: sorted(_rows(again)) == ["delete me", "keep me"])
    assert _recorded(again.store, doomed) == (before, prompts)
    assert [r.text for r in again.message_view.widgets()] == ["delete me", "an answer"]
    # deleted again, then the trash emptied (asked first): gone for good
    again.delete_action.trigger()
    qtbot.waitUntil(lambda: _rows(again) == ["keep me"])
    asked = []

    def answer(reply):
        return lambda *a, **k: asked.append(a[2]) or reply

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    actions.empty_trash()
    assert len(again.store.trash_entries()) == 1
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    actions.empty_trash()
    qtbot.waitUntil(lambda: again.store.trash_entries() == [])
    assert asked[0].startswith("Delete 1 chat(s) and 0 more message(s) for good?")
    menu.aboutToShow.emit()
    assert next(a.text() for a in menu.actions()) == "Nothing deleted"
    assert not actions.empty_trash_action.isEnabled()
    assert again.store.prompt_tokens(before[-1].id) is None


@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing the keyboard")
def test_edits_from_the_command_line_show_in_the_window_list(qtbot, make_window, monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("chatapp.cli.conversations",))
    w = make_window(extensions=EXTENSIONS)
    s = w.store
    old = s.create_conversation("Old one", created_at=1.0)
    q = s.add_message(old.id, Role.USER, "q")
    a1 = s.add_message(old.id, Role.ASSISTANT, "first", parent_id=q.id)
    second = s.add_message(old.id, Role.ASSISTANT, "second", parent_id=q.id)
    new = s.create_conversation("New one")
    w.refresh_conversations()
    w.session.select_conversation(new.id)
    assert _rows(w) == ["New one", "Old one"]

    def come_back():
        QApplication.sendEvent(w, QEvent(QEvent.Type.ActivationChange))

    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    assert cli.run(["conversations", old.id, "--pin", "--add-tag", "work"]) == 0
    assert cli.run(["conversations", old.id, "--rename", "Renamed"]) == 0
    assert cli.run(["conversations", old.id, "--branch", a1.id[:8]]) == 0
    come_back()
    assert _rows(w) == ["Renamed", "New one"]
    assert w.conversations.index(0).data(ConversationRole.GROUP) == PINNED
    assert not w.conversation_actions.filter.isHidden()  # the new tag
    assert s.get_conversation(old.id).current_leaf_id == a1.id
    # the open chat changed elsewhere: shown again (its other branch)
    w.session.select_conversation(old.id)
    assert [r.text for r in w.message_view.widgets()] == ["q", "first"]
    assert cli.run(["conversations", old.id, "--branch", second.id]) == 0
    come_back()
    assert [r.text for r in w.message_view.widgets()] == ["q", "second"]
    w.session.select_conversation(new.id)
    # the open chat deleted elsewhere: the window lets go of it
    assert cli.run(["conversations", new.id, "--delete"]) == 0
    come_back()
    assert _rows(w) == ["Renamed"] and w.current_conversation_id() is None
    assert cli.run(["conversations", "--restore", new.id]) == 0
    come_back()
    assert _rows(w) == ["Renamed", "New one"]
