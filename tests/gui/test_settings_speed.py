"""Settings > Speed (issue 20's features in the settings dialog), tested by what the next
action does: the loaded model's states on disk take a new budget at once, deleting the
saved states empties the folder and the next send still answers, prefill while typing
stops when it is turned off, prompt lookup shows its statistics in the next answer, and a
draft model with another vocabulary is refused with one line, the dialog kept open and
nothing saved. The page reads at 800 px wide in the dark theme. Real SmolLM2 (and Gemma 3
as the mismatched draft) where the engine matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox

from chatapp.core.backend import ModelRef
from chatapp.core.message_info import stats_line
from chatapp.core.receipt import Receipt
from chatapp.core.settings import Settings
from chatapp.engine.local import LocalBackend
from chatapp.engine.state_disk import SUFFIX, wait_for_writes
from chatapp.gui.settings_dialog import SettingsDialog
from chatapp.gui.settings_speed import SpeedSettingsPage
from chatapp.gui.theme import contrast, is_dark
from chatapp.service import default_backend_factory
from chatapp.service.saved_states import MB, state_folder
from tests.gui.panel_fit import cut_texts
from tests.gui.test_prefill_typing import PrefillEngine
from tests.gui.test_settings_dialog import _settings_file, system_look  # noqa: F401 (autouse)

EXT = ("chatapp.gui.theme", "chatapp.gui.settings_dialog", "chatapp.gui.settings_speed")


def _write_settings(**values: Any) -> None:
    _settings_file().write_text(json.dumps(values))


def _speed(w: Any, qtbot: Any) -> tuple[SettingsDialog, SpeedSettingsPage]:
    d = w.settings_actions.show_dialog()
    page = next(p for p in d.pages if isinstance(p, SpeedSettingsPage))
    d.tabs.setCurrentWidget(page)
    qtbot.waitUntil(lambda: page.used.text() != "Counting…", timeout=10_000)
    return d, page


def _ok(d: SettingsDialog) -> None:
    d.buttons.button(QDialogButtonBox.StandardButton.Ok).click()


def _open(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=120_000):
        w.open_model(str(path))


def _send(qtbot: Any, w: Any, text: str) -> Any:
    with qtbot.waitSignal(w.session.reply_finished, timeout=120_000):
        w.session.send(text)
    return w.session.thread()[-1]


def _states() -> list[Path]:
    return list(state_folder().glob(f"*{SUFFIX}"))


def _loaded_disk(w: Any) -> Any:
    service = w.session.service
    return service._infer.submit(lambda: service._host.backend.saved_states()).result()


@pytest.mark.model
def test_the_budget_applies_now_and_deleting_states_keeps_chats_working(
    qtbot: Any, make_window: Any, smollm2_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_settings(temperature=0.0, max_tokens=8)
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    _open(qtbot, w, smollm2_path)
    _send(qtbot, w, "Name a colour.")
    _open(qtbot, w, smollm2_path)  # closing the model saves the chat's state to disk
    wait_for_writes()
    assert len(_states()) == 1
    assert _loaded_disk(w).budget == 2048 * MB  # the default

    d, page = _speed(w, qtbot)
    assert page.folder.text() == str(state_folder())
    assert page.used.text().endswith("MB in 1 saved conversation state (of 2,048 MB)")
    assert page.delete.isEnabled()
    page.budget.setValue(512)
    _ok(d)
    assert w.settings.kv_state_disk_mb == 512
    assert Settings.load(_settings_file()).kv_state_disk_mb == 512
    qtbot.waitUntil(lambda: _loaded_disk(w).budget == 512 * MB, timeout=10_000)

    # Delete: asked first; Cancel keeps them, Yes deletes them all
    d, page = _speed(w, qtbot)
    asked: list[str] = []

    def answer(button: QMessageBox.StandardButton) -> Any:
        return lambda _parent, _title, text, *a, **k: asked.append(text) or button

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    page.delete.click()
    assert asked[-1].startswith("Delete the saved conversation state (") and len(_states()) == 1
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    page.delete.click()
    qtbot.waitUntil(lambda: page.used.text() == "Nothing saved", timeout=20_000)
    assert _states() == [] and not page.delete.isEnabled()
    d.reject()

    answer_msg = _send(qtbot, w, "Name another colour.")
    assert answer_msg.content.strip()
    assert Receipt.from_dict(answer_msg.meta["receipt"]) is not None


@pytest.mark.model
def test_budget_off_saves_no_state(qtbot: Any, make_window: Any, smollm2_path: Path) -> None:
    _write_settings(temperature=0.0, max_tokens=4)
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    _open(qtbot, w, smollm2_path)
    d, page = _speed(w, qtbot)
    page.budget.setValue(0)
    assert page.budget.text() == "Off"
    _ok(d)
    assert Settings.load(_settings_file()).kv_state_disk_mb == 0
    qtbot.waitUntil(lambda: _loaded_disk(w).budget == 0, timeout=10_000)
    _send(qtbot, w, "Hello.")
    _open(qtbot, w, smollm2_path)  # a close that would have saved the state
    wait_for_writes()
    assert _states() == [] and _loaded_disk(w) is None  # loaded with 0: none kept


def test_prefill_while_typing_can_be_turned_off(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    engines: list[PrefillEngine] = []

    def factory(req: Any) -> LocalBackend:
        engines.append(PrefillEngine(path=req.ref.name, reply="first"))
        return LocalBackend(engines[-1])

    w = make_window(engine_factory=factory, extensions=(*EXT, "chatapp.gui.prefill_typing"))
    _open(qtbot, w, fake_model_file)
    _send(qtbot, w, "Q")
    d, page = _speed(w, qtbot)
    assert page.prefill.isChecked()  # on by default
    page.prefill.setChecked(False)
    _ok(d)
    assert Settings.load(_settings_file()).prefill_while_typing is False
    engine = engines[0]
    engine.prefilled.clear()
    qtbot.keyClicks(w.input, "How are")
    qtbot.wait(800)  # longer than the typing debounce (300 ms)
    assert engine.prefilled == []

    d, page = _speed(w, qtbot)
    page.prefill.setChecked(True)
    _ok(d)
    qtbot.keyClicks(w.input, " you")
    qtbot.waitUntil(lambda: any("How are you" in p for p, _ in engine.prefilled), timeout=10_000)


@pytest.mark.model
def test_prompt_lookup_shows_in_the_next_answers_statistics(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    _write_settings(temperature=0.0, max_tokens=24)
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    _open(qtbot, w, smollm2_path)
    d, page = _speed(w, qtbot)
    assert page.mode.currentData() == "off"  # the default
    assert not page.draft.isEnabled()
    page.mode.setCurrentIndex(page.mode.findData("lookup"))
    with qtbot.waitSignal(w.session.model_loaded, timeout=120_000):  # chosen at load
        _ok(d)
    assert Settings.load(_settings_file()).speculative == "lookup"
    msg = _send(
        qtbot,
        w,
        "Repeat this sentence exactly: the red fox ran over the old bridge and the red fox "
        "ran home.",
    )
    spec = Receipt.from_dict(msg.meta["receipt"]).speculative
    assert spec["mode"] == "lookup" and spec["drafted"] > 0, spec
    assert "lookup drafts" in stats_line(msg)


@pytest.mark.model
def test_a_draft_model_with_another_vocabulary_is_refused(
    qtbot: Any, make_window: Any, smollm2_path: Path, gemma_path: Path
) -> None:
    assert gemma_path.parent == smollm2_path.parent  # the library lists both
    _write_settings(models_dir=str(smollm2_path.parent), temperature=0.0, max_tokens=8)
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    _open(qtbot, w, smollm2_path)
    before = _settings_file().read_text() if _settings_file().exists() else ""
    d, page = _speed(w, qtbot)
    page.mode.setCurrentIndex(page.mode.findData("draft"))
    qtbot.waitUntil(lambda: page.draft.findData(str(gemma_path)) > 0, timeout=20_000)
    assert page.draft.isEnabled() and smollm2_path.name in page.draft_label.text()
    page.budget.setValue(1000)  # another change on the same dialog: not lost
    page.draft.setCurrentIndex(page.draft.findData(str(gemma_path)))
    _ok(d)
    assert d.isVisible() and d.tabs.currentWidget() is page  # kept open, on this page
    assert page.problem.isVisible()
    line = page.problem.text()
    assert "must share the model's vocabulary" in line and "\n" not in line
    assert gemma_path.name in line
    assert w.settings.speculative == "off" and w.settings.draft_models == {}
    assert w.settings.kv_state_disk_mb == 2048
    after = _settings_file().read_text() if _settings_file().exists() else ""
    assert after == before  # nothing saved
    assert page.budget.value() == 1000  # what the user typed is still there

    # SmolLM2 drafting for itself shares the vocabulary: accepted, and the model reloads
    page.draft.setCurrentIndex(page.draft.findData(str(smollm2_path)))
    qtbot.waitUntil(lambda: not page.problem.isVisible(), timeout=20_000)
    with qtbot.waitSignal(w.session.model_loaded, timeout=120_000):
        _ok(d)
    saved = Settings.load(_settings_file())
    assert saved.speculative == "draft" and saved.kv_state_disk_mb == 1000
    assert saved.draft_models == {smollm2_path.name: str(smollm2_path)}
    msg = _send(qtbot, w, "Count from one to five.")
    assert Receipt.from_dict(msg.meta["receipt"]).speculative["mode"] == "draft"
    assert "draft model drafts" in stats_line(msg)


def test_reads_at_800_px_in_the_dark_theme(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    _write_settings(theme="dark")
    w = make_window(extensions=EXT)
    _open(qtbot, w, fake_model_file)
    assert is_dark(QApplication.palette())
    d, page = _speed(w, qtbot)
    d.resize(800, 600)
    page.mode.setCurrentIndex(page.mode.findData("draft"))
    _ok(d)  # no draft model chosen: refused, said on the page
    assert d.isVisible() and "Choose the draft model for fake-model.gguf" in page.problem.text()
    for _ in range(3):
        QApplication.processEvents()
    assert d.width() <= 800 and d.minimumSizeHint().width() <= 800
    assert cut_texts(page) == []
    pal = page.palette()
    shown = page.problem.palette().color(page.problem.foregroundRole())
    assert contrast(shown, pal.color(pal.ColorRole.Window)) >= 4.5
    assert not d.grab().isNull()


def test_draft_mode_without_a_draft_for_this_model_loads_it_with_lookup(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    """Draft mode applies to every model; one with no draft model of its own loads with
    prompt lookup (what a draft model does first) instead of not loading at all."""
    _write_settings(speculative="draft", draft_models={"other.gguf": "/m/draft.gguf"})
    w = make_window(extensions=(*EXT, "chatapp.gui.model_picker"))
    with qtbot.waitSignal(w.session.model_loaded, timeout=20000):
        w.open_model(str(fake_model_file))
    assert w.session.model is not None
    assert w.session.service.load_request(ModelRef.local(str(fake_model_file))).speculative == (
        "lookup"
    )
    assert w.model_picker.combo.isEnabled()
