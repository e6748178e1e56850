"""The window while the oldest turns are left out (issue 23.1): the fitting's progress
shows above the input, then how many messages were left out."""

from __future__ import annotations

from PySide6.QtCore import Qt

from chatapp.core.chat_settings import DROP_OLDEST, ChatSettings
from chatapp.service import pipeline


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def test_fitting_shows_its_progress_and_what_was_left_out(
    qtbot, make_window, fake_model_file, monkeypatch
):
    monkeypatch.setattr(pipeline, "FIT_PROGRESS_AFTER_S", 0.0)  # "longer than a moment"
    w = make_window(reply="r" * 40, n_ctx=400)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    for i in range(3):
        _send(qtbot, w, f"{i}:" + "q" * 60)
    cid = w.current_conversation_id()
    w.session.service.set_chat_settings(cid, ChatSettings(context_policy=DROP_OLDEST)).result(10)
    shown: list[str] = []
    w.session.notice.connect(shown.append)
    _send(qtbot, w, "latest question")
    progress = [s for s in shown if s.startswith("Fitting the conversation")]
    assert progress and progress[-1].startswith("Fitting the conversation into the context… 100%")
    assert "older messages were left out to fit the context" in shown[-1]
    assert w.message_bar.label.text() == shown[-1]
    thread = w.store.active_thread(cid)
    assert thread[-1].meta["context_dropped"]
