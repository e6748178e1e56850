"""The message view and branch actions in the real window with the real SmolLM2."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QInputDialog

from chatapp.core.conversation import FinishReason, Role
from chatapp.service import default_backend_factory
from tests.gui.helpers_view import fill, open_conversation, visible, wheel

pytestmark = pytest.mark.model

BRANCHES = ("chatapp.gui.branch_actions",)


def _window(qtbot, make_window, smollm2_path, max_tokens):
    w = make_window(engine_factory=default_backend_factory, extensions=BRANCHES)
    w.resize(1000, 700)
    w.settings.max_tokens = max_tokens
    w.settings.seed = 1
    with qtbot.waitSignal(w.session.model_loaded, timeout=120000):
        w.open_model(str(smollm2_path))
    return w


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def _click(qtbot, view, message_id, target):
    view.scroll_to_message(message_id)
    pt = view.click_point(message_id, target)
    assert pt is not None, f"{target} is not offered on {message_id}"
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pt)


def _switch(qtbot, w, message_id, target):
    """Click prev/next/delete and wait until the service saved it and the chat is shown
    again."""
    with qtbot.waitSignal(w.branch_actions.thread_shown, timeout=10000):
        _click(qtbot, w.message_view, message_id, target)


def _texts(w):
    return [r.text for r in w.message_view.widgets()]


def test_a_2000_message_chat_opens_at_its_newest_message_and_a_send_stays_in_view(
    qtbot, make_window, smollm2_path
):
    w = _window(qtbot, make_window, smollm2_path, max_tokens=24)
    view = w.message_view
    big = fill(w.store, 1000)
    open_conversation(w, big)
    assert len(view.widgets()) == 2000
    assert visible(view, view.widgets()[-1].message_id)
    assert view.verticalScrollBar().value() == view.verticalScrollBar().maximum()
    # 2,000 messages do not fit SmolLM2's context: whatever the window does about that,
    # the question is kept and the newest message stays in view
    _send(qtbot, w, "And now a short greeting, please.")
    assert any(r.text == "And now a short greeting, please." for r in view.widgets()[-2:])
    assert visible(view, view.widgets()[-1].message_id)
    # a chat longer than the screen that fits: the streamed answer is in view at the end
    small = fill(w.store, 12, title="Twelve turns")
    open_conversation(w, small)
    view.scroll_to_message(view.widgets()[0].message_id)  # the user looked at the top
    _send(qtbot, w, "Name one colour.")
    answer = view.widgets()[-1]
    assert answer.role is Role.ASSISTANT and answer.text.strip()
    assert answer.text == w.store.get_message(answer.message_id).content
    assert visible(view, answer.message_id) and view.following


def test_edit_the_first_message_then_walk_back_with_the_arrows(
    qtbot, make_window, smollm2_path, monkeypatch
):
    w = _window(qtbot, make_window, smollm2_path, max_tokens=12)
    view = w.message_view
    for q in ("Name a fruit.", "Name a colour.", "Name an animal."):
        _send(qtbot, w, q)
    original = _texts(w)
    assert len(original) == 6 and all(t.strip() for t in original)
    cid = w.current_conversation_id()
    first = view.widgets()[0].message_id

    monkeypatch.setattr(
        QInputDialog, "getMultiLineText", lambda *a, **k: ("Name a vegetable.", True)
    )
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        _click(qtbot, view, first, "edit")
    edited = _texts(w)
    assert edited[0] == "Name a vegetable." and len(edited) == 2 and edited[1].strip()
    assert view.widgets()[0].versions == (2, 2)
    assert len(w.store.messages(cid)) == 8  # the original branch is all still there

    _switch(qtbot, w, view.widgets()[0].message_id, "prev")
    assert _texts(w) == original
    assert view.widgets()[0].versions == (1, 2)
    assert [m.content for m in w.store.active_thread(cid)] == original
    _switch(qtbot, w, view.widgets()[0].message_id, "next")
    assert _texts(w) == edited


def test_regenerate_a_middle_answer(qtbot, make_window, smollm2_path):
    w = _window(qtbot, make_window, smollm2_path, max_tokens=12)
    view = w.message_view
    for q in ("Name a fruit.", "Name a colour.", "Name an animal."):
        _send(qtbot, w, q)
    original = _texts(w)
    cid = w.current_conversation_id()
    middle = view.widgets()[3]
    assert middle.role is Role.ASSISTANT
    w.settings.seed = 2  # another answer
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        _click(qtbot, view, middle.message_id, "regenerate")
    rows = view.widgets()
    assert len(rows) == 4 and _texts(w)[:3] == original[:3]
    new = rows[3]
    assert new.message_id != middle.message_id and new.role is Role.ASSISTANT
    assert new.message.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert new.text == w.store.get_message(new.message_id).content
    assert new.versions == (2, 2)
    assert (
        w.store.get_message(new.message_id).parent_id
        == w.store.get_message(middle.message_id).parent_id
    )
    _switch(qtbot, w, new.message_id, "prev")  # the old answer, and the turn after it
    assert _texts(w) == original
    assert len(w.store.messages(cid)) == 7


def test_scrolling_up_while_an_answer_streams_holds_the_position(qtbot, make_window, smollm2_path):
    w = _window(qtbot, make_window, smollm2_path, max_tokens=400)
    view = w.message_view
    cid = fill(w.store, 12)
    open_conversation(w, cid)
    w.input.setPlainText("Count from 1 to 400, one number per line.")
    qtbot.keyClick(w.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.render_count >= 2, timeout=120000)
    answer_id = view.widgets()[-1].message_id
    assert view.following and visible(view, answer_id)
    wheel(view, 3)
    assert not view.following and view.jump_button.isVisible()
    top = view.indexAt(QPoint(10, 0)).row()
    offset = view.visualRect(view.model().index(top, 0)).top()
    length = len(view.widget_for(answer_id).text)
    renders = view.render_count
    qtbot.waitUntil(lambda: view.render_count >= renders + 3 or not w.session.busy, timeout=120000)
    assert w.session.busy, "the answer ended before the check: ask for a longer one"
    assert len(view.widget_for(answer_id).text) > length  # it kept streaming
    assert view.indexAt(QPoint(10, 0)).row() == top
    assert view.visualRect(view.model().index(top, 0)).top() == offset
    qtbot.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
    assert view.following
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        w.session.stop()
    assert visible(view, answer_id)
