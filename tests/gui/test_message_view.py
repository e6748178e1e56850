"""The message view with the scripted engine: scaling, wrapping, palette, scrolling,
branch actions. The same things with the real SmolLM2: test_message_view_real.py."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QDialog, QInputDialog, QTextBrowser

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.gui.chatview.layout import _code_tables
from chatapp.gui.chatview.model import MessageListModel
from chatapp.gui.chatview.view import MessageView
from tests.gui.helpers_view import (
    dark_palette,
    fill,
    open_conversation,
    text_contrast,
    visible,
    wheel,
)

BRANCHES = ("chatapp.gui.branch_actions",)
LONG_CODE = "x = '" + "0123456789" * 40 + "'"  # a 400-character line without a break
LONG_URL = "https://example.com/" + "/".join(f"segment{i:03d}" for i in range(40)) + "?q=1"


def _load(qtbot, w, path):
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(path))


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
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


def _msg(i: int, role: Role, text: str, **kw) -> Message:
    return Message(f"m{i}", "c", f"m{i - 1}" if i else None, role, text, created_at=1000 + i, **kw)


def test_the_model_passes_qtmodeltester(qtmodeltester):
    model = MessageListModel()
    model.reset([_msg(i, Role.USER if i % 2 == 0 else Role.ASSISTANT, f"t{i}") for i in range(6)])
    qtmodeltester.check(model)
    model.truncate(3)
    model.extend([_msg(9, Role.USER, "more")])
    assert [r.message_id for r in model.rows] == ["m0", "m1", "m2", "m9"]
    assert model.row_of("m9") == 3 and model.row_of("m4") == -1
    qtmodeltester.check(model)


def test_a_long_conversation_opens_at_its_newest_message_and_lays_out_only_what_is_seen(
    qtbot, make_window, fake_model_file
):
    # a context as large as the 2,000 messages (the scripted engine's tokens are bytes)
    w = make_window(reply="The newest answer.", extensions=BRANCHES, n_ctx=10**8)
    w.resize(1000, 700)
    cid = fill(w.store, 1000)  # 2,000 messages
    open_conversation(w, cid)
    view = w.message_view
    assert len(view.widgets()) == 2000
    newest = view.widgets()[-1].message_id
    assert visible(view, newest)
    sb = view.verticalScrollBar()
    assert sb.value() == sb.maximum() > 0
    assert view.built_layouts() < 60  # rows near the bottom, not 2,000
    # a send appends (the old rows stay the same objects) and shows the answer
    rows_before = view.widgets()
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "One more question")
    rows = view.widgets()
    assert len(rows) == 2002 and all(a is b for a, b in zip(rows_before, rows))
    assert rows[-1].text == "The newest answer."
    assert visible(view, rows[-1].message_id)
    # scrolling up lays out rows as they come near; what is on screen keeps its place
    view.scroll_to_message(rows[1000].message_id)
    top = view.row_rect(rows[1000].message_id).top()
    assert top == 0
    wheel(view, 3)
    assert view.row_rect(rows[1000].message_id).top() > 0
    assert not view.following and view.jump_button.isVisible()


def test_long_code_lines_and_urls_wrap_inside_the_view_at_800_px(qtbot, make_window):
    w = make_window()
    w.resize(800, 600)
    w.show()
    cid = w.store.create_conversation("wide").id
    u = w.store.add_message(cid, Role.USER, f"Fetch {LONG_URL} please, and {'y' * 300}")
    a = w.store.add_message(
        cid,
        Role.ASSISTANT,
        f"Like this:\n\n```python\n{LONG_CODE}\nprint(x)\n```\n\nSee <{LONG_URL}> and {LONG_URL}.\n\n"
        "A normal paragraph after them, which must wrap to the view like any other.",
        parent_id=u.id,
        finish_reason=FinishReason.STOP,
    )
    open_conversation(w, cid)
    view = w.message_view
    vp_width = view.viewport().width()
    assert w.width() <= 800 and view.horizontalScrollBar().maximum() == 0
    for mid in (u.id, a.id):
        lay = view.row_layout(mid)
        assert view.row_rect(mid).width() <= vp_width
        assert lay.bubble.left() >= 0 and lay.bubble.right() <= vp_width
        doc = lay.body
        limit = doc.textWidth()
        assert lay.body_origin.x() + limit <= lay.bubble.right()
        block = doc.begin()
        widest = 0.0
        while block.isValid():  # every laid-out line, code and table cells included
            box = doc.documentLayout().blockBoundingRect(block)
            tl = block.layout()
            for i in range(tl.lineCount()):
                line = tl.lineAt(i)
                widest = max(widest, box.x() + line.x() + line.naturalTextWidth())
            block = block.next()
        assert widest <= limit + 0.5, f"a line of {mid} is {widest} px wide in {limit} px"
    # nothing is lost: the whole line and the whole URL are in the laid-out text
    text = view.row_layout(a.id).body.toPlainText()
    assert LONG_CODE in text and LONG_URL in text
    assert LONG_URL in view.row_layout(u.id).body.toPlainText()


def test_message_colours_have_enough_contrast_under_a_dark_palette(qtbot):
    view = MessageView()
    qtbot.addWidget(view)
    view.setPalette(dark_palette())
    view.resize(800, 700)
    view.show()
    msgs = [
        _msg(0, Role.USER, "A question in plain words, long enough to have many glyphs."),
        _msg(
            1,
            Role.ASSISTANT,
            "An answer with a [link](https://example.com/page) and prose.\n\n"
            "```python\ndef f(x):\n    return x * 2  # doubled\n```",
            model="m.gguf",
            finish_reason=FinishReason.STOP,
        ),
    ]
    view.show_thread(msgs)
    qtbot.waitUntil(lambda: view.paint_count > 0)
    img = view.viewport().grab().toImage()
    scale = img.devicePixelRatio()
    assert scale == 1
    checked = 0
    for m in msgs:
        lay = view.row_layout(m.id)
        origin = view.row_rect(m.id).topLeft()
        body = QRect(lay.body_origin + origin, lay.body.size().toSize())
        tables = _code_tables(lay.body.rootFrame())
        if tables:  # the prose above the code block, then the code block itself
            frame = lay.body.documentLayout().frameBoundingRect(tables[0]).toRect()
            body.setBottom(body.top() + frame.top() - 1)
            regions = [body, frame.translated(lay.body_origin + origin)]
        else:
            regions = [body]
        regions.append(lay.header.translated(origin))  # role, model, date: the muted text
        for r in regions:
            ratio, fg, bg = text_contrast(img, r)
            assert bg.lightness() < 100, f"{m.role}: background {bg.name()} is not dark"
            assert ratio >= 4.5, f"{m.role}: {fg.name()} on {bg.name()} is {ratio:.2f}:1"
            checked += 1
    assert checked == 5
    # the link colour the palette gives (3.9:1) was raised to a readable one
    from chatapp.gui.chatview.contrast import contrast

    t = view._delegate.theme
    for bg in (t.user, t.assistant):
        link = t.link
        assert (
            contrast((link.red(), link.green(), link.blue()), (bg.red(), bg.green(), bg.blue()))
            >= 4.5
        )


def test_scrolling_up_while_streaming_holds_the_position(qtbot, make_window, fake_model_file):
    w = make_window(reply="word " * 3000, delay=0.001)
    w.resize(900, 650)
    cid = fill(w.store, 15)
    open_conversation(w, cid)
    _load(qtbot, w, fake_model_file)
    view = w.message_view
    w.input.setPlainText("Tell me a long story")
    with qtbot.waitSignal(w.session.reply_started, timeout=20000) as started:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)  # the service saves, then it starts
    answer_id = started.args[1]
    assert view.widgets()[-1].message_id == answer_id
    qtbot.waitUntil(lambda: view.render_count >= 2, timeout=20000)
    assert view.following and visible(view, answer_id)  # it follows the bottom
    wheel(view, 2)
    assert not view.following and view.jump_button.isVisible()
    top = view.indexAt(QPoint(10, 0)).row()
    offset = view.visualRect(view.model().index(top, 0)).top()
    renders = view.render_count
    qtbot.waitUntil(lambda: view.render_count >= renders + 3, timeout=20000)
    assert view.widget_for(answer_id).text.count("word") > 20  # it kept streaming
    assert view.indexAt(QPoint(10, 0)).row() == top
    assert view.visualRect(view.model().index(top, 0)).top() == offset
    qtbot.mouseClick(view.jump_button, Qt.MouseButton.LeftButton)
    assert view.following and not view.jump_button.isVisible()
    renders = view.render_count
    qtbot.waitUntil(lambda: view.render_count >= renders + 2, timeout=20000)
    assert visible(view, answer_id)
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.session.stop()


def test_edit_walk_versions_and_regenerate_a_middle_answer(
    qtbot, make_window, fake_model_file, monkeypatch
):
    w = make_window(reply="an answer", extensions=BRANCHES)
    _load(qtbot, w, fake_model_file)
    for q in ("first question", "second question", "third question"):
        _send(qtbot, w, q)
    view = w.message_view
    cid = w.current_conversation_id()
    first = view.widgets()[0]
    original = [r.text for r in view.widgets()]
    assert len(original) == 6 and view.click_point(first.message_id, "prev") is None

    monkeypatch.setattr(QInputDialog, "getMultiLineText", lambda *a, **k: ("first, edited", True))
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        _click(qtbot, view, first.message_id, "edit")
    assert [r.text for r in view.widgets()] == ["first, edited", "an answer"]
    edited = view.widgets()[0]
    assert edited.versions == (2, 2)
    assert len(w.store.messages(cid)) == 8  # nothing erased
    _switch(qtbot, w, edited.message_id, "prev")
    assert [r.text for r in view.widgets()] == original
    assert view.widgets()[0].versions == (1, 2)
    assert [m.content for m in w.store.active_thread(cid)] == original
    _switch(qtbot, w, first.message_id, "next")
    assert [r.text for r in view.widgets()] == ["first, edited", "an answer"]
    _switch(qtbot, w, edited.message_id, "prev")

    # switching the version of a message in the middle of the screen keeps it in place
    w.resize(900, 500)
    view.scroll_to_message(view.widgets()[0].message_id)
    view.verticalScrollBar().setValue(view.verticalScrollBar().value() + 30)
    second = view.widgets()[2]
    top = view.row_rect(second.message_id).top()
    other = w.store.add_message(
        cid, Role.USER, "second, another version", parent_id=second.message.parent_id
    )
    w.store.add_message(cid, Role.ASSISTANT, "long " * 400, parent_id=other.id)
    w.branch_actions.refresh_versions()
    with qtbot.waitSignal(w.branch_actions.thread_shown, timeout=10000):
        qtbot.mouseClick(
            view.viewport(),
            Qt.MouseButton.LeftButton,
            pos=view.click_point(second.message_id, "next"),
        )
    assert view.widgets()[2].text == "second, another version"
    assert view.row_rect(view.widgets()[2].message_id).top() == top
    _switch(qtbot, w, view.widgets()[2].message_id, "prev")
    assert [r.text for r in view.widgets()] == original

    # regenerate the middle answer: a sibling of it; the thread ends there
    w.engines[0].reply = "a better answer"
    middle = view.widgets()[3]
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        _click(qtbot, view, middle.message_id, "regenerate")
    texts = [r.text for r in view.widgets()]
    assert texts == [*original[:3], "a better answer"]
    assert view.widgets()[3].versions == (2, 2)
    _switch(qtbot, w, view.widgets()[3].message_id, "prev")  # the old one, and what followed
    assert [r.text for r in view.widgets()] == original


def test_continue_a_cut_off_answer(qtbot, make_window, fake_model_file):
    w = make_window(reply="one two three four five six", extensions=BRANCHES)
    w.settings.max_tokens = 8
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "count")
    view = w.message_view
    answer = view.widgets()[-1]
    assert answer.text == "one two" and answer.message.finish_reason is FinishReason.LENGTH
    # the answer stopped after "two " (its tokens spell the space the stored text trims):
    # the model's turn opens with exactly that, so it goes on with "three"
    w.engines[0].reply = "three four"
    w.settings.max_tokens = None
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        _click(qtbot, view, answer.message_id, "continue")
    stored = w.store.get_message(answer.message_id)
    assert stored.content == "one two three four" and stored.finish_reason is FinishReason.STOP
    assert view.widget_for(answer.message_id).text == "one two three four"
    # the model got the answer so far as the start of its turn
    prompt = bytes(t - 1 for t in w.engines[0].prompts[-1]).decode()
    assert prompt.endswith("<|user|>count<|end|><|assistant|>one two ")
    assert view.click_point(answer.message_id, "continue") is None  # finished now


def test_delete_a_branch_and_undo(qtbot, make_window, fake_model_file):
    w = make_window(reply="ok", extensions=BRANCHES)
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "q1")
    _send(qtbot, w, "q2")
    view = w.message_view
    cid = w.current_conversation_id()
    before = w.store.messages(cid)
    q2 = view.widgets()[2]
    _switch(qtbot, w, q2.message_id, "delete")
    assert [r.text for r in view.widgets()] == ["q1", "ok"]
    assert len(w.store.messages(cid)) == 2
    assert view.undo_bar.isVisible() and "2 messages" in view.undo_bar.label.text()
    with qtbot.waitSignal(w.branch_actions.thread_shown, timeout=10000):
        qtbot.mouseClick(view.undo_bar.button, Qt.MouseButton.LeftButton)
    assert w.store.messages(cid) == before
    assert [r.text for r in view.widgets()] == ["q1", "ok", "q2", "ok"]
    assert not view.undo_bar.isVisible()


def test_copy_a_message_and_a_code_block(qtbot, make_window, fake_model_file):
    w = make_window(reply="Run:\n\n```bash\necho hi && ls -la\n```\n\nDone.", extensions=BRANCHES)
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "how?")
    view = w.message_view
    answer = view.widgets()[-1]
    _click(qtbot, view, answer.message_id, "code:0")
    assert QGuiApplication.clipboard().text() == "echo hi && ls -la\n"
    assert view.copied_target(answer.message_id) == "code:0"
    _click(qtbot, view, answer.message_id, "copy")
    assert QGuiApplication.clipboard().text() == answer.text
    _click(qtbot, view, view.widgets()[0].message_id, "copy")
    assert QGuiApplication.clipboard().text() == "how?"


def test_reasoning_opens_and_closes(qtbot):
    view = MessageView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    m = _msg(1, Role.ASSISTANT, "The answer.", thinking="Step one. Step two.")
    view.show_thread([_msg(0, Role.USER, "q"), m])
    closed = view.row_layout(m.id)
    assert closed.thinking_doc is None and "Thinking (4 words)" in closed.thinking_label
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=view.click_point(m.id, "thinking")
    )
    opened = view.row_layout(m.id)
    assert opened.thinking_doc.toPlainText() == "Step one. Step two."
    assert opened.height > closed.height


def test_actions_are_refused_while_an_answer_streams(qtbot, make_window, fake_model_file):
    w = make_window(reply="word " * 2000, delay=0.002, extensions=BRANCHES, n_ctx=10**6)
    _load(qtbot, w, fake_model_file)
    w.engines[0].delay = 0.0
    _send(qtbot, w, "q1")
    w.engines[0].delay = 0.002
    view = w.message_view
    first = view.widgets()[0].message_id
    w.input.setPlainText("q2")
    with qtbot.waitSignal(w.session.reply_started, timeout=20000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    # streaming: its first words are in (a Stop before any would drop the empty answer)
    qtbot.waitUntil(lambda: "word" in view.widgets()[-1].text, timeout=20000)
    _click(qtbot, view, first, "delete")
    assert "still streaming" in w.message_bar.label.text()
    assert len(w.store.messages(w.current_conversation_id())) == 4
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.session.stop()


@pytest.mark.parametrize("width", [800, 1400])
def test_paragraphs_wrap_to_the_width_at_any_window_size(qtbot, width):
    view = MessageView()
    qtbot.addWidget(view)
    view.resize(width, 500)
    view.show()
    text = "word " * 400
    view.show_thread([_msg(0, Role.USER, text)])
    lay = view.row_layout("m0")
    assert lay.bubble.right() <= view.viewport().width()
    assert lay.body.size().width() <= lay.body.textWidth() + 0.5
    assert lay.body.textWidth() > view.viewport().width() * 0.8  # uses the room it has
    QApplication.processEvents()


def test_the_context_menu_offers_the_same_actions(qtbot):
    view = MessageView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    answer = _msg(1, Role.ASSISTANT, "```sh\nls\n```", finish_reason=FinishReason.LENGTH)
    view.show_thread([_msg(0, Role.USER, "q"), answer])
    view.set_versions({"m1": (1, 2)})
    menu = view.context_menu(view.model().index(1, 0))
    labels = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert labels == [
        "Copy",
        "Regenerate",
        "Continue",
        "Delete",
        "Select text…",
        "Details (how it was made)…",
        "Show as",
        "Copy code block 1",
        "Previous version",
        "Next version",
    ]
    assert [a.isEnabled() for a in menu.actions() if not a.isSeparator()][-2:] == [False, True]
    with qtbot.waitSignal(view.version_requested) as sig:
        menu.actions()[-1].trigger()
    assert sig.args == ["m1", 1]
    user_menu = view.context_menu(view.model().index(0, 0))
    assert [a.text() for a in user_menu.actions()] == [
        "Copy",
        "Edit",
        "Delete",
        "Select text…",
        "Show as",
    ]


def test_double_click_opens_the_message_to_select_text(qtbot):
    view = MessageView()
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.show()
    answer = _msg(1, Role.ASSISTANT, "Some **bold** words to select.")
    view.show_thread([_msg(0, Role.USER, "q"), answer])
    lay = view.row_layout("m1")
    pos = view.row_rect("m1").topLeft() + lay.body_origin + QPoint(5, 5)
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    dialogs = [d for d in view.findChildren(QDialog) if d.isVisible()]
    assert len(dialogs) == 1
    browser = dialogs[0].findChild(QTextBrowser)
    assert browser.toPlainText().strip() == "Some bold words to select."
    assert browser.textCursor().selectedText().strip() == "Some bold words to select."
    dialogs[0].close()


_SCALED = """
import json, sys
from PySide6.QtWidgets import QApplication
from chatapp.core.conversation import Message, Role
from chatapp.gui.chatview.view import MessageView
app = QApplication([])
view = MessageView()
view.resize(800, 600)
view.show()
text = sys.argv[1]
view.show_thread([Message("m0", "c", None, Role.USER, text, created_at=1.0),
                  Message("m1", "c", "m0", Role.ASSISTANT, text, created_at=2.0)])
app.processEvents()
out = []
for mid in ("m0", "m1"):
    lay = view.row_layout(mid)
    doc = lay.body
    widest, block = 0.0, doc.begin()
    while block.isValid():
        box = doc.documentLayout().blockBoundingRect(block)
        for i in range(block.layout().lineCount()):
            line = block.layout().lineAt(i)
            widest = max(widest, box.x() + line.x() + line.naturalTextWidth())
        block = block.next()
    out.append({"widest": widest, "limit": doc.textWidth(), "bubble_right": lay.bubble.right(),
                "viewport": view.viewport().width(), "ratio": view.devicePixelRatioF(),
                "whole": LONG in doc.toPlainText()})
print(json.dumps(out))
"""


def test_nothing_is_cut_at_2x_scaling(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    text = f"{LONG_URL} and {LONG_CODE}\n\n" + "a paragraph that wraps " * 30
    script = tmp_path / "scaled.py"
    script.write_text(f"LONG = {LONG_CODE!r}\n" + _SCALED)
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, QT_SCALE_FACTOR="2", QT_QPA_PLATFORM="offscreen", PYTHONPATH=root)
    out = subprocess.run(
        [sys.executable, str(script), text], capture_output=True, text=True, env=env, check=True
    ).stdout
    rows = json.loads(out.strip().splitlines()[-1])
    for r in rows:
        assert r["ratio"] == 2.0
        assert r["widest"] <= r["limit"] + 0.5
        assert r["bubble_right"] <= r["viewport"]
        assert r["whole"]
