"""The window's search: field above the list (Ctrl+F), results off the GUI thread with the
hit highlighted, and a result opens its conversation on the hit's branch, scrolled to it."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtWidgets import QLineEdit

from chatapp.core.conversation import Role
from chatapp.gui.search_panel import HitRole, SearchResultsModel, snippet_html

EXTENSIONS = ("chatapp.gui.conversation_actions", "chatapp.gui.search_panel")


def _branched(store):
    """An old chat with two branches, the hit ("zebra") on the branch not shown, and
    filler long enough that the hit is far above the bottom."""
    c = store.create_conversation("Animals", created_at=1000.0)
    q = store.add_message(c.id, Role.USER, "Tell me about an animal", created_at=1001.0)
    a1 = store.add_message(
        c.id, Role.ASSISTANT, "The zebra has stripes.", parent_id=q.id, created_at=1002.0
    )
    parent = a1.id
    for i in range(30):  # a long branch below the hit
        role = Role.USER if i % 2 == 0 else Role.ASSISTANT
        parent = store.add_message(
            c.id,
            role,
            f"filler {i} " + "lorem ipsum " * 40,
            parent_id=parent,
            created_at=1003.0 + i,
        ).id
    a2 = store.add_message(
        c.id, Role.ASSISTANT, "The lion is loud.", parent_id=q.id, created_at=2000.0
    )
    other = store.create_conversation("Plants", created_at=3000.0)
    store.add_message(other.id, Role.USER, "Ferns and mosses", created_at=3001.0)
    return {"conv": c.id, "q": q.id, "a1": a1.id, "leaf1": parent, "a2": a2.id, "other": other.id}


def _top_in_viewport(view, message_id):
    if hasattr(view, "row_rect"):  # a model/view message list
        return view.row_rect(message_id).top()
    return view.widget_for(message_id).mapTo(view.viewport(), QPoint(0, 0)).y()


def _search(qtbot, panel, text):
    with qtbot.waitSignal(panel.results_shown, timeout=10000) as sig:
        panel.field.setText(text)
    assert sig.args == [text.strip()]


def test_search_opens_the_hit_on_its_branch_scrolled_to_it(qtbot, make_window):
    w = make_window(extensions=EXTENSIONS)
    ids = _branched(w.store)
    w.refresh_conversations()
    assert w.store.get_conversation(ids["conv"]).current_leaf_id == ids["a2"]
    panel = w.search_panel
    assert w.findChild(QLineEdit, "conversation_search") is panel.field
    # Ctrl+F focuses the field
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    qtbot.keyClick(w.input, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(panel.field.hasFocus)
    _search(qtbot, panel, "zebra")
    assert panel.results.isVisible() and not w.conversation_view.isVisible()
    assert panel.model.rowCount() == 1
    idx = panel.model.index(0)
    assert idx.data(HitRole.MESSAGE_ID) == ids["a1"]
    assert idx.data(HitRole.HTML) == "The <b>zebra</b> has stripes."
    # Enter in the field opens the (first) result
    with qtbot.waitSignal(panel.opened, timeout=5000):
        qtbot.keyClick(panel.field, Qt.Key.Key_Return)
    assert w.current_conversation_id() == ids["conv"]
    conv = w.store.get_conversation(ids["conv"])
    assert conv.current_leaf_id == ids["leaf1"]  # the branch through the hit, to its end
    shown = [x.message_id for x in w.message_view.widgets()]
    assert shown[:2] == [ids["q"], ids["a1"]] and ids["a2"] not in shown and len(shown) == 32
    # scrolled so the hit is in sight (not at the bottom, where a chat opens)
    bar = w.message_view.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() < bar.maximum())
    top = _top_in_viewport(w.message_view, ids["a1"])
    assert 0 <= top < w.message_view.viewport().height()


def test_results_follow_the_latest_text_and_esc_returns_to_the_list(qtbot, make_window):
    w = make_window(extensions=EXTENSIONS)
    ids = _branched(w.store)
    panel = w.search_panel
    _search(qtbot, panel, "fern")
    assert [
        panel.model.index(r).data(HitRole.CONVERSATION_ID) for r in range(panel.model.rowCount())
    ] == [ids["other"]]
    # a title hit opens the chat on its current branch
    with qtbot.waitSignal(panel.opened, timeout=5000):
        panel.results.activated.emit(panel.model.index(0))
    assert w.current_conversation_id() == ids["other"]
    _search(qtbot, panel, "durian")
    assert panel.model.rowCount() == 0
    assert panel.status.isVisible() and "durian" in panel.status.text()
    # hostile text is searched as text: no error, the panel keeps working
    for text in ['"zebra', "zebra*", "NEAR(", "-", "a:b", "(zebra) AND"]:
        _search(qtbot, panel, text)
        assert not w.message_bar.isVisible()
    # "(zebra) AND" is two plain words, both required: no message has a word starting "and"
    assert panel.model.rowCount() == 0
    _search(qtbot, panel, "(zebra) has")
    assert panel.model.rowCount() == 1
    qtbot.keyClick(panel.field, Qt.Key.Key_Escape)
    assert panel.field.text() == "" and not panel.results.isVisible()
    assert w.conversation_view.isVisible()


def test_typing_fast_shows_only_the_last_query(qtbot, make_window):
    w = make_window(extensions=EXTENSIONS)
    _branched(w.store)
    panel = w.search_panel
    for text in ["z", "ze", "zeb", "lio", "lion"]:
        panel.field.setText(text)
    qtbot.waitUntil(lambda: panel._shown == "lion", timeout=10000)
    assert [panel.model.index(r).data() for r in range(panel.model.rowCount())] == [
        "Animals: The lion is loud."
    ]


def test_search_sees_what_was_just_written(qtbot, make_window):
    w = make_window(extensions=EXTENSIONS)
    ids = _branched(w.store)
    panel = w.search_panel
    _search(qtbot, panel, "okapi")
    assert panel.model.rowCount() == 0
    w.store.update_message(ids["a2"], content="The okapi is shy.")
    _search(qtbot, panel, "okapi ")
    assert panel.model.index(0).data(HitRole.MESSAGE_ID) == ids["a2"]
    w.store.delete_conversation(ids["conv"])
    _search(qtbot, panel, "okapi")
    assert panel.model.rowCount() == 0


def test_results_model_passes_qtmodeltester(qtmodeltester, tmp_path):
    from chatapp.core.store import Store

    with Store(tmp_path / "db.sqlite3") as store:
        _branched(store)
        hits = store.search("the")
    model = SearchResultsModel()
    model.set_hits(hits)
    assert model.rowCount() == 2
    qtmodeltester.check(model)
    assert model.data(QModelIndex()) is None


def test_snippet_html_escapes_the_text():
    assert snippet_html("a <b> \x02c&d\x03") == "a &lt;b&gt; <b>c&amp;d</b>"


def test_ctrl_f_reuses_the_search_action_another_extension_made(qtbot, make_window):
    from PySide6.QtGui import QAction, QKeySequence

    from chatapp.gui import search_panel

    w = make_window(extensions=())
    action = QAction("&Search conversations…", w)  # as the keyboard extension makes it
    action.setShortcut(QKeySequence.StandardKey.Find)
    action.setEnabled(False)
    w.menus["chat"].addAction(action)
    w.search_action = action
    panel = search_panel.install(w)
    assert action.isEnabled() and panel.find_action is None
    finds = [a for a in w.findChildren(QAction) if a.shortcut() == action.shortcut()]
    assert finds == [action]  # no second Ctrl+F (an ambiguous shortcut fires neither)
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    w.input.setFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(panel.field.hasFocus)
