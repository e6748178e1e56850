"""What a new user meets in the real window (issue 23), at the sizes where it broke:
the settings panel on a narrow window and at 2x, selecting text by dragging, focus
after a chat loads another model, chats another process adds, labels that show the
current state. The scripted engine stands in for the model (tests/fakes.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from chatapp.core.conversation import Role
from chatapp.core.store import Store
from chatapp.gui.mainwindow import GUI_EXTENSIONS
from tests.gui.panel_fit import open_panel

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
ROOT = Path(__file__).resolve().parents[2]
PANEL = ("chatapp.gui.chat_settings_panel", "chatapp.gui.model_picker")


def _load(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(path))


def _send(qtbot: Any, w: Any, text: str) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000) as done:
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    return str(done.args[0])


def _model(tmp_path: Path, name: str) -> Path:
    p = tmp_path / name
    p.write_bytes(b"GGUF")
    return p


# -- the chat settings panel ------------------------------------------------------------


@pytest.mark.parametrize("width", [700, 1000])
def test_the_settings_panel_fits_beside_the_chat_without_widening_the_window(
    qtbot: Any, make_window: Any, tmp_path: Path, width: int
) -> None:
    w = make_window(extensions=PANEL)
    _load(qtbot, w, _model(tmp_path, "smollm2-135m-instruct-q8_0.gguf"))
    _send(qtbot, w, "hello")
    seen = open_panel(w, width)
    assert seen["dock_visible"]
    assert seen["after"] == seen["before"] == width
    assert seen["cut"] == []  # every text wraps or fits: nothing cut mid-word
    assert seen["scrolls"]  # at 700 px high it does not fit: it scrolls
    assert seen["chat_width"] >= width // 2  # the chat keeps most of the window


def test_the_settings_panel_fits_at_2x_scaling(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "QT_SCALE_FACTOR": "2",
        "QT_QPA_PLATFORM": "offscreen",
        "CHATAPP_HOME": str(tmp_path / "home"),
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-m", "tests.gui.panel_fit", "700"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["ratio"] == 2.0
    assert seen["dock_visible"]
    assert seen["after"] == seen["before"] == 700
    assert seen["cut"] == []
    assert seen["scrolls"]


def test_the_preset_box_shows_the_preset_in_use(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(extensions=PANEL)
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "hello")
    panel = w._chat_settings_panel
    assert panel.preset.currentData() is None  # nothing chosen yet
    i = panel.preset.findData("Deterministic")
    panel.preset.setCurrentIndex(i)
    panel.preset.activated.emit(i)
    qtbot.waitUntil(
        lambda: "chat_settings" in w.store.get_conversation(w.session.conversation_id).meta
    )
    panel.refresh()
    assert panel.preset.currentText() == "Deterministic"
    panel.fields["temperature"].setText("0.5")
    panel.fields["temperature"].editingFinished.emit()
    assert panel.preset.currentData() is None
    assert "Custom" in panel.preset.currentText()


# -- selecting text ---------------------------------------------------------------------


def test_dragging_over_an_answer_selects_its_text_and_ctrl_c_copies_it(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="The quick brown fox jumps over the lazy dog.")
    w.resize(1000, 700)
    _load(qtbot, w, fake_model_file)
    answer = _send(qtbot, w, "Tell me about foxes")
    view = w.message_view
    qtbot.waitUntil(lambda: view.row_layout(answer) is not None)
    lay = view.row_layout(answer)
    origin = view.row_rect(answer).topLeft() + lay.body_origin
    line = round(lay.body.size().height() / 2)
    start = origin + QPoint(1, line)
    end = origin + QPoint(round(lay.body.idealWidth()) - 1, line)
    vp = view.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 11):
        QTest.mouseMove(vp, start + (end - start) * (k / 10))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    chosen = view.selected_text()
    assert len(chosen) > 20
    assert chosen.strip() in "The quick brown fox jumps over the lazy dog."
    view.setFocus()
    QApplication.clipboard().clear()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.clipboard().text() == chosen
    # a plain click ends the selection
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=start)
    assert view.selected_text() == ""


# -- focus ------------------------------------------------------------------------------


def test_focus_stays_in_the_list_after_clicking_a_chat_that_loads_another_model(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    first = _model(tmp_path, "first-model.gguf")
    second = _model(tmp_path, "second-model.gguf")
    w = make_window(extensions=GUI_EXTENSIONS)  # all of them: any may take the focus
    _load(qtbot, w, first)
    _send(qtbot, w, "chat on the first model")
    w.session.new_conversation()
    _load(qtbot, w, second)
    _send(qtbot, w, "chat on the second model")
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow)
    view = w.conversation_view
    row = next(
        r
        for r in range(w.conversations.rowCount())
        if w.conversations.conversation_at(r).title.startswith("chat on the first")
    )
    rect = view.visualRect(w.conversations.index(row))
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert Path(w.session.model_info.path).name == "first-model.gguf"
    QApplication.processEvents()
    assert view.hasFocus()
    qtbot.keyClicks(QApplication.focusWidget(), "x")
    assert w.input.toPlainText() == ""  # typed keys do not go into the draft


# -- changes from another process -------------------------------------------------------


def _import_elsewhere(path: Path, title: str) -> str:
    """What `chatapp import` does: its own connection writes a chat."""
    other = Store(path)
    try:
        conv = other.create_conversation(title=title)
        other.add_message(conv.id, Role.USER, "imported question")
        return conv.id
    finally:
        other.close()


def test_a_chat_imported_by_another_process_appears_in_the_list(
    qtbot: Any, make_window: Any
) -> None:
    w = make_window()
    assert w.conversations.rowCount() == 0
    cid = _import_elsewhere(w.store.path, "Imported chat")
    qtbot.waitUntil(lambda: w.conversations.row_of(cid) >= 0, timeout=10000)
    assert w.conversations.data(w.conversations.index(w.conversations.row_of(cid))) == (
        "Imported chat"
    )


def test_a_chat_imported_elsewhere_and_opened_through_search_is_listed_and_selected(
    qtbot: Any, make_window: Any
) -> None:
    w = make_window()
    w.store_watcher.timer.stop()  # only the opening shows it
    cid = _import_elsewhere(w.store.path, "Found by search")
    w.session.select_conversation(cid)
    row = w.conversations.row_of(cid)
    assert row >= 0
    assert w.conversation_view.selectionModel().currentIndex().row() == row
