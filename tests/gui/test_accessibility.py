"""Every control a screen reader can land on has a name: the main window (with the welcome
view) and every dialog it opens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollBar,
    QTextEdit,
    QWidget,
)

from chatapp.core.conversation import Role
from chatapp.gui.export_actions import ExportActions
from chatapp.gui.mainwindow import GUI_EXTENSIONS

INTERACTIVE = (
    QAbstractButton,
    QLineEdit,
    QTextEdit,
    QPlainTextEdit,
    QComboBox,
    QAbstractSpinBox,
    QAbstractItemView,
    QAbstractSlider,
)


def _inside_composite(w: QWidget) -> bool:
    """Parts of a combo box, spin box or table (its headers): the whole carries the name."""
    p = w.parentWidget()
    while p is not None:
        if isinstance(p, (QComboBox, QAbstractSpinBox, QAbstractItemView, QLineEdit)):
            return True
        p = p.parentWidget()
    return False


def spoken_name(w: QWidget) -> str:
    """The name a screen reader announces. Qt derives one from a button's text or from a
    label whose buddy the control is; for other controls its fallback is the control's
    value (a combo box's current text), which is not a name."""
    if w.accessibleName():
        return w.accessibleName()
    iface = QAccessible.queryAccessibleInterface(w)
    derived = iface.text(QAccessible.Text.Name) if iface is not None else ""
    if isinstance(w, QAbstractButton):
        return derived
    labelled = any(label.buddy() is w for label in w.window().findChildren(QLabel))
    return derived if labelled else ""


def unnamed(top: QWidget) -> list[str]:
    problems = []
    for w in [top, *top.findChildren(QWidget)]:
        if not isinstance(w, INTERACTIVE) or isinstance(w, QScrollBar):
            continue
        if w.window() is not top:
            continue  # a dialog of its own: checked on its own
        if w.isHidden():
            continue  # hidden by the program, out of reach (shown states are walked too)
        if w.objectName().startswith("qt_") or _inside_composite(w):
            continue  # Qt's internal parts
        name = spoken_name(w)
        if not any(ch.isalpha() for ch in name):  # "", or a symbol such as ✕ or ◀
            text = w.text() if isinstance(w, QAbstractButton) else ""
            where = type(w.parentWidget()).__name__
            problems.append(f"{type(w).__name__} in {where} {text!r} name={name!r}")
    return problems


def test_the_check_catches_what_it_should(qtbot: Any) -> None:
    box = QDialog()
    qtbot.addWidget(box)
    QLineEdit(box)
    combo = QComboBox(box)
    combo.addItem("Dark")  # its text is a value, not a name
    from PySide6.QtWidgets import QToolButton

    close = QToolButton(box)
    close.setText("✕")
    assert len(unnamed(box)) == 3
    named = QLineEdit(box)
    named.setAccessibleName("Search")
    label = QLabel("&Theme:", box)
    label.setBuddy(combo)
    close.setAccessibleName("Close")
    assert len(unnamed(box)) == 1  # the first line edit


@pytest.fixture
def window(qtbot: Any, make_window: Any, smollm2_path: Path) -> Any:
    w = make_window(extensions=GUI_EXTENSIONS)
    c = w.store.create_conversation("A chat")
    u = w.store.add_message(c.id, Role.USER, "Hello", parent_id=None)
    w.store.add_message(c.id, Role.ASSISTANT, "Hi there.", parent_id=u.id)
    w.refresh_conversations()
    return w


@pytest.mark.model
def test_main_window_and_every_dialog_name_their_controls(
    qtbot: Any, window: Any, smollm2_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = window
    qtbot.waitUntil(lambda: w.welcome.shown, timeout=5_000)  # first run: no model yet
    checked: dict[str, list[str]] = {"main window with the welcome view": unnamed(w)}
    checked["welcome view"] = unnamed(w.welcome.view)
    w.show_error("Something to close")  # the message bar's close button
    checked["settings"] = unnamed(w.settings_actions.show_dialog())
    w.settings_actions.dialog.reject()
    checked["help sheet"] = unnamed(w.shortcuts.show_sheet())
    checked["model manager"] = unnamed(w.models_controller.show_manager())

    with qtbot.waitSignal(w.session.model_loaded, timeout=20_000):
        w.open_model(str(smollm2_path))  # the scripted engine, on the real file
    w.conversation_view.setCurrentIndex(w.conversations.index(0))
    checked["main window in a chat"] = unnamed(w)
    views: list[QWidget] = []
    actions = w.template_actions
    opened = getattr(actions, "prompt_view_opened", None)  # prepared in the background
    if opened is not None:
        opened.connect(views.append)
    shown = actions.show_prompt()
    if isinstance(shown, QWidget):
        views.append(shown)
    qtbot.waitUntil(lambda: bool(views), timeout=20_000)
    checked["show prompt"] = unnamed(views[0])
    checked["template editor"] = unnamed(w.template_actions.edit_template())
    from chatapp.gui.completion_view import open_completion

    checked["completion mode"] = unnamed(open_completion(w))
    w.input_tokens.toggle.click()  # the input's token view
    checked["main window with the input's tokens"] = unnamed(w)

    export = w.menus["file"].findChild(ExportActions)
    monkeypatch.setattr(
        QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "all.zip"), "")
    )
    export.export_all()
    assert export._dialog is not None
    checked["export progress"] = unnamed(export._dialog)
    qtbot.waitUntil(lambda: not export.busy, timeout=20_000)
    file_dialog = QFileDialog(w, "Export")  # Qt's own, where there is no native dialog
    file_dialog.setOption(QFileDialog.Option.DontUseNativeDialog)
    qtbot.addWidget(file_dialog)
    checked["export file dialog (Qt's)"] = unnamed(file_dialog)

    problems = {k: v for k, v in checked.items() if v}
    assert problems == {}, "\n".join(f"{k}: {p}" for k, v in problems.items() for p in v)
