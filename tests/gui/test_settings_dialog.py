"""The settings dialog and the settings file as the window uses them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QLabel, QPushButton, QWidget

from chatapp.core.settings import Settings, max_threads
from chatapp.gui.settings_dialog import PRIVACY_TEXT, SettingsDialog, add_settings_page
from chatapp.gui.theme import is_dark, theme_manager
from chatapp.paths import app_paths
from chatapp.service import default_backend_factory

EXT = ("chatapp.gui.theme", "chatapp.gui.settings_dialog")


@pytest.fixture(autouse=True)
def system_look(qapp: QApplication):  # type: ignore[no-untyped-def]
    """Themes change the whole application: hand it back to the system after each test."""
    yield
    theme_manager(qapp).apply("system")


def _settings_file() -> Path:
    return app_paths().ensure().settings


def _click(dialog: SettingsDialog, which: QDialogButtonBox.StandardButton) -> None:
    dialog.buttons.button(which).click()


def test_ok_saves_every_group_and_applies_the_appearance(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    d = w.settings_actions.show_dialog()
    assert d.isVisible() and d.models_dir.placeholderText() == str(w.paths.models)
    d.models_dir.setText("/srv/models")
    d.context.setValue(8192)
    d.gpu_layers.setValue(-1)
    d.threads.setValue(1)
    d.system_prompt.setPlainText("Answer in haiku.")
    d.temperature.setValue(0.25)
    d.top_k.setValue(0)
    d.max_tokens.setValue(300)
    d.seed.setValue(7)
    d.theme.setCurrentIndex(d.theme.findData("dark"))
    d.font_size.setValue(17)
    _click(d, QDialogButtonBox.StandardButton.Ok)
    assert not d.isVisible()
    s = w.settings
    assert (s.models_dir, s.context_limit, s.n_gpu_layers, s.n_threads) == (
        "/srv/models",
        8192,
        -1,
        1,
    )
    assert (s.system_prompt, s.temperature, s.top_k, s.max_tokens, s.seed) == (
        "Answer in haiku.",
        0.25,
        0,
        300,
        7,
    )
    assert (s.theme, s.font_size) == ("dark", 17)
    on_disk = Settings.load(_settings_file())
    assert on_disk == s
    assert json.loads(_settings_file().read_text())["appearance"] == {
        "theme": "dark",
        "font_size": 17,
    }
    assert is_dark(QApplication.palette()) and QApplication.style().name().lower() == "fusion"
    assert w.input.font().pointSize() == 17 and w.message_view.font().pointSize() == 17
    # the chat session reads the same object: the next answer uses the new sampling
    assert w.session.settings.sampling().temperature == 0.25


def test_cancel_changes_nothing(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    d = w.settings_actions.show_dialog()
    d.temperature.setValue(1.9)
    d.theme.setCurrentIndex(d.theme.findData("dark"))
    _click(d, QDialogButtonBox.StandardButton.Cancel)
    assert w.settings.temperature == 0.7 and w.settings.theme == "system"
    assert not _settings_file().exists()
    assert not is_dark(QApplication.palette())


def test_special_values_mean_automatic(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    w.settings.n_threads, w.settings.seed, w.settings.max_tokens = 1, 3, 50
    w.settings.font_size = 20
    d = w.settings_actions.show_dialog()
    assert d.threads.maximum() == max_threads()
    d.threads.setValue(d.threads.minimum())
    d.seed.setValue(d.seed.minimum())
    d.max_tokens.setValue(d.max_tokens.minimum())
    d.font_size.setValue(d.font_size.minimum())
    assert d.threads.text().startswith("Automatic") and d.seed.text() == "Random"
    _click(d, QDialogButtonBox.StandardButton.Apply)
    s = w.settings
    assert (s.n_threads, s.seed, s.max_tokens, s.font_size) == (None, None, None, None)
    assert w.input.font().pointSize() == QApplication.font().pointSize()


def test_restore_defaults_for_new_chats(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    w.settings.temperature, w.settings.system_prompt, w.settings.context_limit = 1.5, "x", 2048
    d = w.settings_actions.show_dialog()
    restore = [b for b in d.findChildren(QPushButton) if b.text() == "Restore defaults"]
    restore[0].click()
    assert d.temperature.value() == 0.7 and d.system_prompt.toPlainText() == ""
    assert d.context.value() == 2048  # hardware is not a "new chat" default


def test_privacy_says_what_leaves_the_machine(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    d = w.settings_actions.show_dialog()
    titles = [d.tabs.tabText(i).replace("&&", "&") for i in range(d.tabs.count())]
    assert titles[:4] == ["Models & hardware", "New chats", "Appearance", "Privacy"]
    text = d.privacy_label.text()
    assert text == PRIVACY_TEXT
    for phrase in ("searching for models", "downloading them", "no telemetry"):
        assert phrase in text


class ServerPage:
    """What a later feature (the local API server) adds through the extension point."""

    title = "Local server"

    def __init__(self, settings: Settings) -> None:
        self.widget: QWidget = QLabel("port")
        self.applied: list[Settings] = []

    def apply(self, settings: Settings) -> None:
        settings.extra["server.port"] = 8080
        self.applied.append(settings)


def test_other_features_add_pages(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=EXT)
    pages: list[ServerPage] = []

    def make_page(settings: Settings) -> ServerPage:
        pages.append(ServerPage(settings))
        return pages[-1]

    add_settings_page(w, make_page)
    d = w.settings_actions.show_dialog()
    assert d.tabs.tabText(d.tabs.count() - 1) == "Local server"
    _click(d, QDialogButtonBox.StandardButton.Ok)
    assert pages[0].applied == [w.settings]
    assert Settings.load(_settings_file()).extra["server.port"] == 8080


def test_hardware_changes_say_when_they_apply(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10_000):
        w.open_model(str(fake_model_file))
    d = w.settings_actions.show_dialog()
    d.context.setValue(2048)
    _click(d, QDialogButtonBox.StandardButton.Ok)
    assert w.message_bar.isVisible() and "next time a model is loaded" in w.message_bar.label.text()


TRAILING_COMMA = {
    "schema_version": 1,
    "hf_token": "hf_do_not_lose",
    "system_prompt": "You are a pirate.",
    "user_templates": {"smol.gguf": "{{ messages[0].content }}"},
}


def test_a_broken_settings_file_is_kept_and_the_window_says_so(
    qtbot: Any, make_window: Any
) -> None:
    """Before: a trailing comma made the window start with defaults and overwrite the file
    on close, losing the token, the system prompt and the user's templates."""
    path = _settings_file()
    broken = json.dumps(TRAILING_COMMA, indent=2)[:-2] + ",\n}\n"
    path.write_text(broken, encoding="utf-8")
    w = make_window(extensions=EXT)
    qtbot.waitUntil(w.message_bar.isVisible, timeout=5_000)
    kept = list(path.parent.glob("settings.json.broken-*"))
    assert len(kept) == 1
    assert str(kept[0]) in w.message_bar.label.text()
    assert "could not be read" in w.message_bar.label.text()
    w.close()  # saves the settings: a new file, next to the kept one
    assert Settings.load(path).hf_token is None
    assert kept[0].read_text(encoding="utf-8") == broken
    for value in ("hf_do_not_lose", "You are a pirate.", "messages[0].content"):
        assert value in kept[0].read_text(encoding="utf-8")


def test_a_number_for_models_dir_does_not_stop_the_window(qtbot: Any, make_window: Any) -> None:
    _settings_file().write_text(json.dumps({"models_dir": 5, "top_p": "high"}))
    w = make_window(extensions=("chatapp.gui.models_actions", *EXT))
    assert w.isVisible() and w.settings.models_dir is None and w.settings.top_p == 0.95
    assert w.models_controller.library().models_dir == w.paths.models
    assert not w.message_bar.isVisible()  # a readable file with bad values is not "broken"


@pytest.mark.model
def test_absurd_thread_counts_never_reach_llama_cpp(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    _settings_file().write_text(json.dumps({"n_threads": 100000, "context_limit": 10**12}))
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=60_000) as loaded:
        w.open_model(str(smollm2_path))
    info = loaded.args[0].info
    assert 1 <= info.n_threads <= max_threads()
    assert info.n_ctx <= info.n_ctx_train


def test_alternatives_kept_per_token_shape_the_next_answer(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    """The setting is tested by what the next answer keeps, and survives a restart."""
    w = make_window(reply="ab", extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    d = w.settings_actions.show_dialog()
    assert d.top_n.value() == 5  # the default
    d.top_n.setValue(12)
    _click(d, QDialogButtonBox.StandardButton.Ok)
    assert w.settings.logprobs_top_n == 12
    assert Settings.load(_settings_file()).logprobs_top_n == 12
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.session.send("Hi")
    answer = w.session.thread()[-1]
    trace = w.store.token_trace(answer.id)
    assert trace is not None and trace.top_n == 12
    assert all(len(step.top) == 12 for step in trace.steps)

    d = w.settings_actions.show_dialog()
    d.top_n.setValue(0)  # "None": no alternatives kept
    _click(d, QDialogButtonBox.StandardButton.Ok)
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.session.send("Again")
    assert w.store.token_trace(w.session.thread()[-1].id) is None
