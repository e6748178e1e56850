"""First run: from no model to a streaming answer in a few clicks, through the real download
queue (against the fake hub on 127.0.0.1) and the real model; or a .gguf dropped on the
window."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QApplication

from chatapp.core import catalog
from chatapp.core.catalog import load_starters
from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.settings import Settings
from chatapp.gui.mainwindow import GUI_EXTENSIONS
from chatapp.gui.welcome import INTRO, choose_group
from chatapp.hub.queue import DONE
from chatapp.paths import app_paths
from chatapp.resources import resource_path
from chatapp.service import default_backend_factory
from tests.gui.drops import drag_files
from tests.hub.conftest import hub, online  # noqa: F401  (fixtures)
from tests.hub.fake_hf import Blob, FakeHub

STARTERS = load_starters(resource_path("models.json"))


def _real_window(make_window: Any, **settings: Any) -> Any:
    Settings(**settings).save(app_paths().ensure().settings)
    return make_window(engine_factory=default_backend_factory, extensions=GUI_EXTENSIONS)


def test_the_welcome_says_what_the_app_is_in_two_sentences() -> None:
    sentences = [s for s in INTRO.split(". ") if s]
    assert len(sentences) == 2
    assert "parameters plus the code that runs it" in INTRO
    assert "everything stays on this computer" in INTRO


def test_choose_group_prefers_the_starters_quantization() -> None:
    def group(name: str, size: int) -> catalog.FileGroup:
        files = [catalog.RemoteFile(name, size)]
        return catalog.FileGroup(name, files, catalog.quant_of(name))

    groups = [group("m-Q8_0.gguf", 800), group("m-Q2_K.gguf", 300), group("m-Q4_K_M.gguf", 500)]
    assert choose_group(groups, "Q4_K_M") is groups[2]
    assert choose_group(groups, "IQ1_S") is groups[1]  # not there: the smallest
    assert choose_group([], "Q4_K_M") is None


@pytest.mark.model
def test_first_run_from_nothing_to_a_streamed_answer(
    qtbot: Any,
    make_window: Any,
    hub: FakeHub,
    smollm2_path: Path,
) -> None:
    starter = STARTERS[0]
    served = f"SmolLM2-135M-Instruct-{starter.quant}.gguf"
    hub.add(starter.repo, {served: Blob(path=smollm2_path), "README.md": Blob(data=b"# hi")})
    w = _real_window(make_window, max_tokens=24, seed=1)
    w.activateWindow()
    welcome = w.welcome
    qtbot.waitUntil(lambda: welcome.shown, timeout=5_000)
    assert not w.message_view.isVisible()
    view = welcome.view
    # the starters, each with its download size and whether it fits this machine
    assert view.model.rowCount() == len(STARTERS) >= 5
    for row, s in enumerate(STARTERS):
        assert view.model.data(view.model.index(row, 0)) == s.title
        assert view.model.data(view.model.index(row, 2)) == f"~{catalog.human_size(s.size)}"
        assert view.model.data(view.model.index(row, 3)) in (
            catalog.FIT_OK,
            catalog.FIT_TIGHT,
            catalog.FIT_NO,
        )
    assert view.selected() == starter  # the smallest that fits is chosen already

    # click 1: download and start
    with qtbot.waitSignal(w.session.model_loaded, timeout=120_000) as loaded:
        view.download_button.click()
    path = Path(loaded.args[0].info.path)
    assert path.name == served and path.is_relative_to(w.paths.models)
    assert path.read_bytes() == smollm2_path.read_bytes()
    check_model_file(path)
    assert [j.state for j in w.models_controller.queue.jobs] == [DONE]
    assert hub.served[served] == smollm2_path.stat().st_size  # downloaded once, for real
    assert not welcome.shown and w.message_view.isVisible()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is w.input, timeout=5_000)  # type away
    assert w.settings.last_model == str(path)
    assert json.loads(w.paths.settings.read_text())["models"]["last_model"] == str(path)

    # then type and press Enter: the answer streams in
    deltas: list[str] = []
    w.session.reply_delta.connect(lambda _mid, text, _thinking: deltas.append(text))
    with qtbot.waitSignal(w.session.reply_finished, timeout=120_000):
        w.input.setPlainText("Hello! Who are you?")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    thread = w.store.active_thread(w.current_conversation_id())
    assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT]
    answer = thread[1]
    assert answer.content.strip() and answer.finish_reason in (
        FinishReason.STOP,
        FinishReason.LENGTH,
    )
    assert deltas and deltas[-1] == answer.content
    assert not welcome.shown


@pytest.mark.model
def test_a_failed_lookup_says_why_and_can_be_retried(
    qtbot: Any,
    make_window: Any,
    hub: FakeHub,
) -> None:
    w = _real_window(make_window)
    view = w.welcome.view
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)
    view.download_button.click()  # the fake hub has no such repository
    qtbot.waitUntil(lambda: view.download_button.isEnabled(), timeout=20_000)
    assert STARTERS[0].repo in view.status.text() or "not found" in view.status.text().lower()
    assert w.welcome.shown and w.session.model is None


@pytest.mark.model
def test_drop_a_gguf_on_the_window_opens_it(
    qtbot: Any, make_window: Any, smollm2_path: Path, tmp_path: Path
) -> None:
    w = _real_window(make_window)
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    enter, _ = drag_files(w, text)
    accepted = enter.isAccepted()
    assert accepted  # a document is attached to the next message (gui/attachments.py) ...
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 1, timeout=5_000)
    assert w.session.loading_path is None  # ... not opened as a model
    with qtbot.waitSignal(w.session.model_loaded, timeout=60_000) as loaded:
        enter, drop = drag_files(w, smollm2_path)
    assert enter.isAccepted() and drop.isAccepted()
    assert loaded.args[0].info.path == str(smollm2_path.resolve())
    assert not w.welcome.shown


@pytest.mark.model
def test_drop_on_the_message_box_opens_instead_of_pasting_the_path(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    w = _real_window(make_window)
    w.input.setPlainText("draft")
    with qtbot.waitSignal(w.session.model_loaded, timeout=60_000):
        drag_files(w.input.viewport(), smollm2_path)
    assert w.input.toPlainText() == "draft"


@pytest.mark.model
def test_a_bad_file_brings_the_welcome_back_with_the_reason(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model at all" * 100)
    w = _real_window(make_window)
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)
    with qtbot.waitSignal(w.session.model_failed, timeout=60_000):
        drag_files(w, bad)
    assert w.welcome.shown and w.welcome.view.status.text()
    assert w.message_bar.isVisible()


def test_no_welcome_while_a_model_loads_at_start(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(extensions=GUI_EXTENSIONS)  # the scripted engine
    shown: list[bool] = []
    w.welcome.view.installEventFilter(ShowSpy(shown, w))
    w.open_model(str(fake_model_file))  # as `chatapp --model PATH` does, before the loop runs
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=10_000)
    qtbot.wait(50)
    assert shown == [] and not w.welcome.shown and w.message_view.isVisible()
    w.session.new_conversation()
    assert shown == []


class ShowSpy(QObject):
    def __init__(self, shown: list[bool], parent: QObject) -> None:
        super().__init__(parent)
        self.shown = shown

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show:
            self.shown.append(True)
        return False


def test_opening_a_conversation_leaves_the_welcome(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=GUI_EXTENSIONS)
    c = w.store.create_conversation("Earlier chat")
    w.store.add_message(c.id, Role.USER, "hi", parent_id=None)
    w.refresh_conversations()
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)
    w.conversation_view.setCurrentIndex(w.conversations.index(0))
    assert not w.welcome.shown and w.message_view.isVisible()


def test_the_welcome_works_from_the_keyboard(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=GUI_EXTENSIONS)
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5_000)
    v = w.welcome.view
    w.open_button.setFocus()
    seen = []
    for _ in range(5):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert seen == [v.table, v.download_button, v.open_button, v.manager_button, w.input]
    v.select(0)
    v.table.setFocus()
    qtbot.keyClick(v.table, Qt.Key.Key_Down)  # arrows choose a starter
    assert v.selected() == STARTERS[1]


def test_models_already_on_disk_are_pointed_out(qtbot: Any, make_window: Any) -> None:
    model = app_paths().ensure().models / "org" / "x" / "x-Q4_0.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + b"\0" * 100)
    w = make_window(extensions=GUI_EXTENSIONS)
    label = w.welcome.view.local_label
    qtbot.waitUntil(lambda: not label.isHidden(), timeout=10_000)
    count = label.text().split(" ", 1)[0]  # the Hugging Face cache may add its own
    assert int(count) >= 1 and "already on this computer" in label.text()
