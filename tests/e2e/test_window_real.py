"""The real window with the real SmolLM2 model: open, chat, stream, stop, restart."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from chatapp.app import build_window
from chatapp.core.conversation import FinishReason, Role

pytestmark = pytest.mark.model


def _close(w):
    w.close()
    w.store.close()


def test_open_chat_stop_restart(qtbot, smollm2_path):
    w = build_window(model=str(smollm2_path))  # as `chatapp --model PATH`
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=60000)
    # the file's name, not the GGUF's internal "Smollm2 135M 8k Lc100K Mix1 Ep2" (issue 23)
    assert w.model_label.text() == smollm2_path.name
    assert smollm2_path.name in w.windowTitle() and "Ep2" not in w.windowTitle()
    assert "template: gguf" in w.status_model.text()

    # a short answer, streamed in several updates
    deltas = []
    w.session.reply_delta.connect(lambda _mid, text, _thinking: deltas.append(text))
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        w.input.setPlainText("What is the capital of France? One sentence.")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    cid = w.current_conversation_id()
    answer = w.store.active_thread(cid)[-1]
    assert answer.role is Role.ASSISTANT and answer.content.strip()
    assert "<|im_end|>" not in answer.content
    assert answer.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert answer.completion_tokens and answer.tokens_per_second > 0
    assert answer.meta["template"] == "gguf"
    assert "tok/s" in w.status_speed.text()
    assert "context" in w.status_context.text() and "/ 4096" in w.status_context.text()
    shown = w.message_view.widget_for(answer.id)
    assert shown is not None and shown.text == answer.content

    # a long answer, stopped with Esc after text starts to stream in
    deltas.clear()
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        w.input.setPlainText("Count from 1 to 500, one number per line.")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(deltas) >= 1, timeout=60000)  # text streams in
        qtbot.keyClick(w, Qt.Key.Key_Escape)
    stopped = w.store.active_thread(cid)[-1]
    assert stopped.finish_reason is FinishReason.CANCELLED
    assert stopped.content and stopped.content == w.message_view.widget_for(stopped.id).text
    texts = [m.content for m in w.store.active_thread(cid)]
    _close(w)

    # restart: the conversation is there and the last model loads again
    w2 = build_window()
    qtbot.addWidget(w2)
    w2.show()
    assert w2.conversations.rowCount() >= 1
    assert (
        w2.conversations.data(w2.conversations.index(0))
        == "What is the capital of France? One sentence."
    )
    w2.conversation_view.setCurrentIndex(w2.conversations.index(0))
    assert [x.text for x in w2.message_view.widgets()] == texts
    qtbot.waitUntil(lambda: w2.session.model is not None, timeout=60000)
    assert w2.session.model.info.path == str(smollm2_path.resolve())
    _close(w2)


def test_bad_files_in_the_real_window_keep_the_conversation(qtbot, smollm2_path, tmp_path):
    w = build_window(model=str(smollm2_path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=60000)
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        w.input.setPlainText("Say hi.")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    cid = w.current_conversation_id()
    before = [m.content for m in w.store.active_thread(cid)]
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(smollm2_path.read_bytes()[:20_000_000])
    with qtbot.waitSignal(w.session.model_failed, timeout=30000):
        w.open_model(str(cut))
    assert "truncated" in w.message_bar.label.text()
    assert w.current_conversation_id() == cid
    assert [m.content for m in w.store.active_thread(cid)] == before
    assert [x.text for x in w.message_view.widgets()] == before
    _close(w)
