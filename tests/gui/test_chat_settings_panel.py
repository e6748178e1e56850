"""The chat settings panel and the model picker on the real window (scripted engine):
values are checked at the field, saved for this chat, and shape the very next answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from chatapp.core.receipt import Receipt

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
EXT = (
    "chatapp.gui.chat_settings_panel",
    "chatapp.gui.model_picker",
    "chatapp.gui.completion_view",  # suggests completion mode for a base model
)


def _ready(qtbot: Any, make_window: Any, model: Path, **kw: Any) -> Any:
    w = make_window(extensions=EXT, **kw)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(model))
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.input.setPlainText("first")
        w.send_button.click()
    return w


def test_a_bad_value_is_refused_at_the_field_with_its_reason(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = _ready(qtbot, make_window, fake_model_file)
    panel = w.chat_settings_panel
    field = panel.fields["temperature"]
    field.setText("9")
    field.editingFinished.emit()
    assert not panel.errors["temperature"].isHidden()
    assert "between 0 and 5" in panel.errors["temperature"].text()
    assert panel.chat.overrides == {}  # nothing saved
    field.setText("0.25")
    field.editingFinished.emit()
    assert panel.errors["temperature"].isHidden()
    qtbot.waitUntil(
        lambda: "chat_settings" in w.store.get_conversation(w.session.conversation_id).meta
    )
    assert "temperature 0.25" in panel.next_answer.text()
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000) as done:
        w.input.setPlainText("second")
        w.send_button.click()
    answer = w.store.get_message(done.args[0])
    assert Receipt.from_dict(answer.meta["receipt"]).sampling["temperature"] == 0.25


def test_preset_and_system_prompt_apply_to_the_next_answer(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = _ready(qtbot, make_window, fake_model_file)
    panel = w.chat_settings_panel
    i = panel.preset.findData("Deterministic")
    panel.preset.setCurrentIndex(i)
    panel.preset.activated.emit(i)
    panel.system.setPlainText("Answer in French.")
    panel.save_system.click()
    qtbot.waitUntil(
        lambda: (
            w.store.get_conversation(w.session.conversation_id).system_prompt == "Answer in French."
        )
    )
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.input.setPlainText("second")
        w.send_button.click()
    sent = bytes(t - 1 for t in w.engines[0].prompts[-1]).decode()
    assert sent.startswith("<|system|>Answer in French.")
    answer = w.store.active_thread(w.session.conversation_id)[-1]
    sampling = Receipt.from_dict(answer.meta["receipt"]).sampling
    assert sampling["temperature"] == 0.0 and sampling["top_k"] == 1 and sampling["seed"] == 42


def test_the_draft_is_counted_and_the_picker_lists_recent_models(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    w = _ready(qtbot, make_window, fake_model_file)
    panel = w.chat_settings_panel
    w.input.setPlainText("hello")
    qtbot.waitUntil(lambda: panel.draft_label.text() == "+5 tokens with your message")
    picker = w.model_picker
    assert w.settings.extra["recent_models"][0] == str(fake_model_file.resolve())
    qtbot.waitUntil(lambda: picker.combo.findData(str(fake_model_file.resolve())) >= 0)
    other = tmp_path / "other-base.gguf"
    other.write_bytes(b"GGUF")
    picker.combo.addItem(other.name, str(other))
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        picker.combo.activated.emit(picker.combo.count() - 1)
    assert w.session.model.info.path == str(other.resolve())
    assert picker.hardware.text().startswith("CPU (")
    assert "base model" in w.message_bar.label.text()
    assert w.message_bar.action_button.text() == "Open completion mode"
    assert picker.combo.itemData(picker.combo.currentIndex(), Qt.ItemDataRole.UserRole) in (
        str(other),
        str(other.resolve()),
    )


def test_model_hardware_is_kept_per_model_and_applied_by_a_reload(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    from chatapp.engine.local import LocalBackend
    from tests.fakes import ScriptedEngine

    requests: list[Any] = []

    def factory(req: Any) -> LocalBackend:
        requests.append(req)
        return LocalBackend(ScriptedEngine(path=req.ref.name))

    w = _ready(qtbot, make_window, fake_model_file, engine_factory=factory)
    panel = w.chat_settings_panel
    panel.hardware["context_limit"].setText("100")  # below the smallest allowed
    panel.hardware_button.click()
    assert "between 256 and" in panel.hardware_error.text() and len(requests) == 1
    panel.hardware["context_limit"].setText("1024")
    panel.hardware["n_threads"].setText("1")
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        panel.hardware_button.click()
    assert (requests[-1].context_limit, requests[-1].n_threads) == (1024, 1)
    assert w.settings.extra["model_hardware"][fake_model_file.name] == {
        "context_limit": 1024,
        "n_threads": 1,
    }
    # this chat's sampling as the model's defaults: a new chat with the model uses them
    field = panel.fields["top_k"]
    field.setText("7")
    field.editingFinished.emit()
    panel.model_defaults_button.click()
    assert w.settings.extra["model_defaults"][fake_model_file.name] == {"top_k": 7}
    w.session.new_conversation()
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.input.setPlainText("fresh chat")
        w.send_button.click()
    answer = w.store.active_thread(w.session.conversation_id)[-1]
    assert answer.meta["sampling"]["top_k"] == 7


def test_the_picker_lists_local_and_remote_models_together(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    remote = "remote:http://127.0.0.1:9/v1#qwen2.5-7b"
    w = make_window(extensions=EXT)
    w.settings.extra["recent_models"] = [remote, str(fake_model_file.resolve())]
    picker = w.model_picker
    picker.refresh()
    qtbot.waitUntil(lambda: picker.combo.findData(remote) >= 0, timeout=10000)
    label = picker.combo.itemText(picker.combo.findData(remote))
    assert label == "qwen2.5-7b @ http://127.0.0.1:9/v1 (remote)"
    assert picker.combo.findData(str(fake_model_file.resolve())) >= 0
