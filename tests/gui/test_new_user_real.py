"""The status line and notices after real answers and real model switches (SmolLM2, a
chat model; Gemma 3 270M, a base model): each label shows the current state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from chatapp.service import default_backend_factory

pytestmark = [pytest.mark.model, pytest.mark.qt_log_ignore("does not support propagateSizeHints")]
EXT = ("chatapp.gui.completion_view", "chatapp.gui.model_picker")


def _load(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=120000):
        w.open_model(str(path))


def test_status_after_a_real_answer_and_a_switch(
    qtbot: Any, make_window: Any, smollm2_path: Path, gemma_path: Path
) -> None:
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    w.settings.max_tokens = 24
    w.settings.seed = 1
    _load(qtbot, w, gemma_path)
    assert w.message_bar.isVisible()  # Gemma 3 270M base: a base-model notice
    assert gemma_path.name in w.windowTitle()

    _load(qtbot, w, smollm2_path)
    assert not w.message_bar.isVisible()  # it was about Gemma
    assert w.windowTitle().endswith(smollm2_path.name)
    assert w.model_label.text() == smollm2_path.name

    contexts: list[int] = []
    w.session.context_changed.connect(lambda used, _n: contexts.append(used))
    with qtbot.waitSignal(w.session.reply_finished, timeout=120000) as done:
        w.input.setPlainText("Say hello in one short sentence.")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: "generating" in w.status_speed.text() or not w.session.busy)
    answer = w.store.get_message(done.args[0])
    assert answer.completion_tokens and answer.prompt_tokens
    # the meter rose with the answer and ends at what the chat now holds
    assert len(set(contexts)) >= 3
    assert contexts[-1] == answer.prompt_tokens + answer.completion_tokens
    assert f"context {contexts[-1]} / " in w.status_context.text()
    assert "tok/s" in w.status_speed.text() and "generating" not in w.status_speed.text()

    _load(qtbot, w, gemma_path)  # another model: SmolLM2's speed says nothing about it
    assert w.status_speed.text() == ""
