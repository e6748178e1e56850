"""What a new user meets in the real window (issue 23), at the sizes where it broke:
the settings panel on a narrow window and at 2x, selecting text by dragging, focus
after a chat loads another model, chats another process adds, labels that show the
current state. The scripted engine stands in for the model (tests/fakes.py)."""

from __future__ import annotations

import itertools
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
    panel = w.chat_settings_panel
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


# -- labels that show the current state -----------------------------------------------------


def test_a_refused_send_leaves_no_generating_status(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(n_ctx=32)  # a question longer than the whole context is refused
    _load(qtbot, w, fake_model_file)
    with qtbot.waitSignal(w.session.error, timeout=20000) as refused:
        w.input.setPlainText("a question far too long for this tiny context " * 4)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not w.session.busy)
    assert refused.args[0]
    assert "generating" not in w.status_speed.text()
    assert w.stop_button.isEnabled() is False


def test_the_context_meter_moves_while_an_answer_streams(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="word " * 150, delay=0.003)
    _load(qtbot, w, fake_model_file)
    seen: list[str] = []
    w.session.context_changed.connect(lambda _u, _n: seen.append(w.status_context.text()))
    with qtbot.waitSignal(w.session.reply_finished, timeout=30000):
        w.input.setPlainText("count")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: len(set(seen)) >= 3, timeout=20000)
        assert w.session.busy  # it moved before the answer ended


def test_the_last_models_speed_goes_when_another_model_loads(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    w = make_window()
    _load(qtbot, w, _model(tmp_path, "one.gguf"))
    _send(qtbot, w, "hello")
    assert "tok/s" in w.status_speed.text()
    _load(qtbot, w, _model(tmp_path, "two.gguf"))
    assert w.status_speed.text() == ""


def test_the_base_model_notice_goes_when_a_chat_model_loads(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    from chatapp.engine.local import LocalBackend
    from tests.fakes import ScriptedEngine

    def factory(req: Any) -> Any:
        e = ScriptedEngine(path=req.ref.name)
        if "gemma" in req.ref.name:  # no chat template: a base model
            e.info = e.info.__class__(**{**e.info.__dict__, "metadata": {}})
        return LocalBackend(e)

    w = make_window(engine_factory=factory, extensions=("chatapp.gui.completion_view",))
    _load(qtbot, w, _model(tmp_path, "gemma-3-270m.gguf"))
    assert w.message_bar.isVisible()  # no template, a base model: one of those notices
    _load(qtbot, w, _model(tmp_path, "smollm2-135m-instruct.gguf"))
    assert not w.message_bar.isVisible()


def test_still_streaming_goes_when_the_answer_ends(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="word " * 200, delay=0.002)
    _load(qtbot, w, fake_model_file)
    with qtbot.waitSignal(w.session.reply_finished, timeout=30000):
        w.input.setPlainText("a long one")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: w.session.busy)
        w.session.send("another")  # refused: one answer at a time
        assert w.message_bar.isVisible()
        assert "still streaming" in w.message_bar.label.text()
    assert not w.message_bar.isVisible()
    assert "generating" not in w.status_speed.text()


# -- the model manager --------------------------------------------------------------------


def test_enter_in_the_model_search_searches_and_asks_for_no_token(
    qtbot: Any, make_window: Any
) -> None:
    w = make_window(extensions=("chatapp.gui.models_actions",))
    controller = w.models_controller
    asked: list[bool] = []
    searched: list[str] = []
    dialog = controller.show_manager()
    dialog.ask_token = lambda: asked.append(True)  # type: ignore[assignment,func-returns-value]
    dialog.run = lambda fn, done, failed: searched.append(dialog.query.text())  # offline
    dialog.tabs.setCurrentIndex(0)
    dialog.query.setFocus()
    qtbot.keyClicks(dialog.query, "smollm2")
    qtbot.keyClick(dialog.query, Qt.Key.Key_Return)
    assert searched == ["smollm2"]
    assert asked == []
    dialog.close()


def test_the_library_holds_the_models_opened_by_file_and_says_how_to_add_one(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    w = make_window(extensions=("chatapp.gui.models_actions",))
    w.settings.models_dir = str(tmp_path / "library")
    controller = w.models_controller
    dialog = controller.show_manager()
    dialog.tabs.setCurrentIndex(1)
    assert dialog.library_model.rowCount() == 0
    assert dialog.empty_hint.isVisible()  # an empty tab says how to fill it
    opened = _model(tmp_path, "opened-by-file.gguf")
    _load(qtbot, w, opened)
    dialog.close()
    dialog = controller.show_manager()
    names = [dialog.library_model.item(r).path for r in range(dialog.library_model.rowCount())]
    assert opened.resolve() in [p.resolve() for p in names]
    assert not dialog.empty_hint.isVisible()
    dialog.close()


# -- smaller things ---------------------------------------------------------------------


def test_stopping_before_the_first_token_keeps_no_empty_version(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    from chatapp.core.token_engine import Cancelled
    from chatapp.engine.local import LocalBackend
    from tests.fakes import ScriptedEngine

    class Slow(ScriptedEngine):
        """Still evaluating the prompt when the user stops: no token ever comes."""

        def generate(self, prompt: Any, params: Any, cancel: Any, **kw: Any) -> Any:
            self.prompts.append(list(prompt))
            cancel.wait(30)
            raise Cancelled()
            yield  # a generator, like the real one

    w = make_window(engine_factory=lambda req: LocalBackend(Slow(path=req.ref.name)))
    _load(qtbot, w, fake_model_file)
    with qtbot.waitSignal(w.session.reply_started, timeout=10000):
        w.input.setPlainText("a question")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    with qtbot.waitSignal(w.session.busy_changed, timeout=10000):
        w.session.stop()
    cid = w.session.conversation_id
    assert [m.role for m in w.store.active_thread(cid)] == [Role.USER]
    assert [m.role for m in w.store.messages(cid)] == [Role.USER]  # no empty "…" version
    assert [r.role for r in w.message_view.widgets()] == [Role.USER]
    assert "before the first token" in w.statusBar().currentMessage()


def test_the_details_receipt_opens_with_nothing_selected(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window()
    _load(qtbot, w, fake_model_file)
    answer = _send(qtbot, w, "hello")
    dialog = w.message_view.show_details(answer)
    qtbot.addWidget(dialog)
    assert "Template" in dialog.browser.toPlainText()
    assert not dialog.browser.textCursor().hasSelection()


def test_bare_urls_in_an_answer_are_links(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(reply="Docs: https://example.org/guide. Code: `https://not.a/link`")
    w.resize(1000, 700)
    _load(qtbot, w, fake_model_file)
    answer = _send(qtbot, w, "where are the docs?")
    html = w.message_view.row_layout(answer).html
    assert '<a href="https://example.org/guide">https://example.org/guide</a>.' in html
    assert "<code>https://not.a/link</code>" in html


def _unnamed_focusable_labels(top: Any) -> list[str]:
    """Labels a keyboard or a click can focus (selectable text) that a screen reader
    would announce without a name."""
    from PySide6.QtWidgets import QLabel

    return [
        label.text()[:40]
        for label in top.findChildren(QLabel)
        if label.focusPolicy() != Qt.FocusPolicy.NoFocus and not label.accessibleName()
    ]


def test_focusable_labels_have_accessible_names(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window(extensions=GUI_EXTENSIONS)
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5000)  # first run: the welcome view
    assert _unnamed_focusable_labels(w.welcome.view) == []
    _load(qtbot, w, fake_model_file)
    assert _unnamed_focusable_labels(w) == []
    assert _unnamed_focusable_labels(w.models_controller.show_manager()) == []


def test_the_token_dialogs_candidates_are_not_cut_on_the_right(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    from PySide6.QtCore import QUrl

    from chatapp.gui.answer_tokens import AnswerTokensDialog

    w = make_window(reply="abcd", extensions=("chatapp.gui.answer_tokens",))
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "Hello")
    w.answer_tokens_action.trigger()
    dlg = w.findChildren(AnswerTokensDialog)[-1]
    dlg.resize(700, 500)  # a small screen
    qtbot.waitExposed(dlg)
    dlg.view.anchorClicked.emit(QUrl("tok:1"))
    QApplication.processEvents()
    box = dlg.alternatives
    fm = box.fontMetrics()
    room = box.viewport().width()
    assert box.count() == 5
    for i in range(box.count()):
        item = box.item(i)
        rect = box.visualItemRect(item)
        assert rect.right() <= room
        for line in item.text().split("\n"):
            assert fm.horizontalAdvance(line) <= rect.width(), line


# -- the heat map's bands -----------------------------------------------------------------

# Viénot, Brettel & Mollon (1999): protanopia and deuteranopia in linear RGB
CVD = {
    "normal": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "protanopia": ((0.11238, 0.88762, 0), (0.11238, 0.88762, 0), (0.00401, -0.00401, 1)),
    "deuteranopia": ((0.29275, 0.70725, 0), (0.29275, 0.70725, 0), (-0.02234, 0.02234, 1)),
}


def _lightness(hex_colour: str, matrix: Any) -> float:
    """CIE L* of a colour as seen with the given vision (0 black .. 100 white)."""
    from chatapp.gui.chatview.contrast import parse_hex

    def linear(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in parse_hex(hex_colour))
    seen = [max(0.0, min(1.0, row[0] * r + row[1] * g + row[2] * b)) for row in matrix]
    y = 0.2126 * seen[0] + 0.7152 * seen[1] + 0.0722 * seen[2]
    return 116 * y ** (1 / 3) - 16 if y > 0.008856 else 903.3 * y


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_heat_map_bands_differ_in_lightness_and_keep_the_text_readable(
    qtbot: Any, theme: str
) -> None:
    from PySide6.QtWidgets import QWidget

    from chatapp.core import tokenview as tv
    from chatapp.gui.chatview.contrast import contrast, parse_hex
    from chatapp.gui.chatview.theme import theme_from
    from chatapp.gui.chatview.tokens import token_colors
    from chatapp.gui.theme import dark_palette, light_palette
    from chatapp.gui.tokenizer_playground import palette_colors

    pal = dark_palette() if theme == "dark" else light_palette()
    holder = QWidget()
    qtbot.addWidget(holder)
    holder.setPalette(pal)
    palettes = {
        "message view": token_colors(theme_from(pal), "assistant"),
        "dialogs": palette_colors(holder),  # answer tokens, completion mode, playground
    }
    for where, colors in palettes.items():
        bands = [tv.band_color(i, colors) for i in range(len(tv.BANDS))]
        for band in bands:  # every token's text reads on its band
            assert contrast(parse_hex(colors.text), parse_hex(band)) >= 4.5, (where, band)
        for vision, matrix in CVD.items():
            ls = [_lightness(b, matrix) for b in bands]
            steps = [abs(a - b) for a, b in itertools.pairwise(ls)]
            assert min(steps) >= 8, (where, vision, [round(x, 1) for x in ls])


@pytest.mark.model  # the tokens come from SmolLM2's vocabulary (the engine is scripted)
def test_the_completion_window_redraws_its_token_colours_after_a_theme_switch(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    from PySide6.QtWidgets import QWidget

    from chatapp.gui.chatview.tokens import TOKENS
    from chatapp.gui.completion_view import open_completion
    from chatapp.gui.theme import dark_palette, light_palette

    app = QApplication.instance()
    before = app.palette()
    app.setPalette(dark_palette())
    try:
        w = make_window(extensions=("chatapp.gui.message_tokens", "chatapp.gui.completion_view"))
        _load(qtbot, w, smollm2_path)
        win = open_completion(w)
        qtbot.addWidget(win)
        win.editor.setPlainText("colours of the tokens")
        win.display.setCurrentIndex(win.display.findData(TOKENS))
        from chatapp.gui.tokenizer_playground import palette_colors

        def shown() -> str:
            return win.tokens_view.toHtml().lower()

        dark = palette_colors(win.tokens_view).odd  # the token tints under the dark theme
        qtbot.waitUntil(lambda: dark in shown(), timeout=10000)
        app.setPalette(light_palette())  # the user switches to the light theme
        probe = QWidget()
        qtbot.addWidget(probe)
        probe.setPalette(light_palette())
        light = palette_colors(probe).odd
        assert light != dark
        qtbot.waitUntil(lambda: light in shown(), timeout=5000)
        assert dark not in shown()
    finally:
        app.setPalette(before)


def test_an_answer_added_elsewhere_to_the_open_chat_is_shown(
    qtbot: Any, make_window: Any, fake_model_file: Path
) -> None:
    w = make_window()
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "hello")
    cid = w.session.conversation_id
    other = Store(w.store.path)  # `chatapp chat --conversation ID` in a terminal
    try:
        last = other.active_thread(cid)[-1]
        q = other.add_message(cid, Role.USER, "asked in the terminal", parent_id=last.id)
        other.add_message(cid, Role.ASSISTANT, "answered in the terminal", parent_id=q.id)
    finally:
        other.close()
    qtbot.waitUntil(
        lambda: [r.text for r in w.message_view.widgets()][-1] == "answered in the terminal",
        timeout=10000,
    )
    assert len(w.message_view.widgets()) == 4
