"""An answer's statistics on its header, its receipt in Details, and the messages the
model no longer sees marked: the real window with the scripted engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatapp.core.chat_settings import DROP_OLDEST, ChatSettings
from chatapp.gui.chatview.layout import header_meta

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def _send(qtbot: Any, w: Any, text: str) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000) as done:
        w.input.setPlainText(text)
        w.send_button.click()
    return str(done.args[0])


def test_header_stats_details_and_unseen_messages(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="r" * 40, n_ctx=400)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    first = _send(qtbot, w, "0:" + "q" * 60)
    view = w.message_view
    meta = header_meta(view.widget_for(first))
    assert "first token" in meta and "40 tokens" in meta and "end of turn" in meta
    assert "(0 reused," in meta
    dialog = view.show_details(first)
    qtbot.addWidget(dialog)
    text = dialog.browser.toPlainText()
    assert "Template" in text and "chatapp prompt --conversation" in text
    for i in (1, 2):
        _send(qtbot, w, f"{i}:" + "q" * 60)
    cid = w.session.conversation_id
    w.session.service.set_chat_settings(cid, ChatSettings(context_policy=DROP_OLDEST)).result(30)
    last = _send(qtbot, w, "latest")
    dropped = w.store.get_message(last).meta["context_dropped"]
    assert dropped
    unseen = [r.message_id for r in view.widgets() if r.unseen]
    assert unseen == dropped
    assert "not in the model's context" in header_meta(view.widget_for(dropped[0]))


def test_the_stats_get_a_line_of_their_own_when_the_window_is_narrow(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="r" * 40)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    answer = _send(qtbot, w, "hello")
    view = w.message_view
    stats = header_meta(view.widget_for(answer)).split(" · ", 2)[-1]
    w.resize(1900, 700)
    qtbot.waitUntil(lambda: view.row_layout(answer).width > 1400)
    wide = view.row_layout(answer)
    assert wide.meta_lines == [] and wide.meta_text.endswith(stats)  # one line, whole
    w.resize(800, 700)
    qtbot.waitUntil(lambda: view.row_layout(answer).width < 800)
    narrow = view.row_layout(answer)
    # every row was wrapped to the new width (a narrower window clips nothing), and at
    # 800 px the statistics move below, whole, instead of being cut off
    assert narrow.bubble.right() <= view.viewport().width()
    lines = [text for _rect, text in narrow.meta_lines]
    assert lines and " · ".join(lines) == stats  # all of it, a whole fact per line
    assert all(r.right() <= narrow.bubble.right() for r, _t in narrow.meta_lines)
    assert narrow.height > wide.height
