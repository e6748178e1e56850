"""Themes and font size: the palettes read (WCAG contrast), the window's own widgets follow
the palette (nothing stays light-on-light or dark-on-dark), "system" hands back to the
platform, and the font size scales the chat."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from chatapp.core.conversation import Role as MsgRole
from chatapp.core.settings import Settings
from chatapp.gui.theme import (
    ERROR_HUE,
    WARNING_HUE,
    ThemeManager,
    apply_font_size,
    contrast,
    dark_palette,
    hued_text,
    is_dark,
    light_palette,
    theme_manager,
)
from chatapp.paths import app_paths

Role = QPalette.ColorRole
EXT = ("chatapp.gui.theme", "chatapp.gui.settings_dialog", "chatapp.gui.accessibility")
TEXT_ON = [
    (Role.WindowText, Role.Window),
    (Role.Text, Role.Base),
    (Role.Text, Role.AlternateBase),
    (Role.ButtonText, Role.Button),
    (Role.HighlightedText, Role.Highlight),
    (Role.ToolTipText, Role.ToolTipBase),
    (Role.PlaceholderText, Role.Base),
    (Role.Link, Role.Base),
]


@pytest.fixture(autouse=True)
def system_look(qapp: QApplication):  # type: ignore[no-untyped-def]
    yield
    theme_manager(qapp).apply("system")


@pytest.mark.parametrize("palette", [dark_palette(), light_palette()], ids=["dark", "light"])
def test_every_text_colour_reads_on_its_background(palette: QPalette) -> None:
    for fg, bg in TEXT_ON:
        ratio = contrast(palette.color(fg), palette.color(bg))
        assert ratio >= 4.5, f"{fg.name} on {bg.name}: {ratio:.2f}"


@pytest.mark.parametrize("palette", [dark_palette(), light_palette()], ids=["dark", "light"])
@pytest.mark.parametrize("hue", [ERROR_HUE, WARNING_HUE], ids=["error", "warning"])
def test_error_and_warning_text_reads_on_the_window(palette: QPalette, hue: QColor) -> None:
    colour = hued_text(palette, hue)
    assert contrast(colour, palette.color(Role.Window)) >= 4.5
    assert contrast(colour, palette.color(Role.Base)) >= 4.5
    assert colour.hsvHue() != -1  # a colour, not a grey


def test_contrast_is_the_wcag_ratio() -> None:
    assert contrast(QColor("#000000"), QColor("#ffffff")) == pytest.approx(21.0)
    assert contrast(QColor("#777777"), QColor("#ffffff")) == pytest.approx(4.48, abs=0.01)


def _window(qtbot: Any, make_window: Any, theme: str) -> Any:
    Settings(theme=theme).save(app_paths().ensure().settings)
    w = make_window(extensions=EXT)
    c = w.store.create_conversation("A chat")
    u = w.store.add_message(c.id, MsgRole.USER, "Hello", parent_id=None)
    w.store.add_message(c.id, MsgRole.ASSISTANT, "Hi.", parent_id=u.id)
    w.refresh_conversations()
    qtbot.wait(20)  # Qt hands a new application palette to the widgets in posted events
    return w


def _in_message_view(w: Any, widget: QWidget) -> bool:
    return w.message_view is widget or w.message_view.isAncestorOf(widget)


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_the_windows_own_text_reads_in_both_themes(
    qtbot: Any, make_window: Any, theme: str
) -> None:
    w = _window(qtbot, make_window, theme)
    assert is_dark(QApplication.palette()) == (theme == "dark")
    w.show_error("Could not load the model.")
    checked = 0
    for widget in w.findChildren(QWidget):
        if not widget.isVisible() or _in_message_view(w, widget):
            continue  # the message view draws its own (issue 9's view)
        if not isinstance(widget, (QLabel, QAbstractButton, QLineEdit, QPlainTextEdit)):
            continue
        pal = widget.palette()
        fg, bg = pal.color(widget.foregroundRole()), pal.color(widget.backgroundRole())
        if widget.parentWidget() is w.message_bar:
            continue  # drawn on the bar's tint: checked from pixels below
        # WCAG exempts disabled controls; they must still be legible
        needed = 4.5 if widget.isEnabled() else 3.0
        ratio = contrast(fg, bg)
        assert ratio >= needed, f"{type(widget).__name__} {fg.name()} on {bg.name()}: {ratio:.2f}"
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("theme", ["dark", "light"])
@pytest.mark.parametrize("error", [True, False], ids=["error", "notice"])
def test_the_message_bar_reads_in_both_themes(
    qtbot: Any, make_window: Any, theme: str, error: bool
) -> None:
    w = _window(qtbot, make_window, theme)
    bar = w.message_bar
    bar.show_message("Something happened", error=error)
    image = bar.grab().toImage()
    background = image.pixelColor(6, image.height() // 2)
    text = bar.label.palette().color(bar.label.foregroundRole())
    assert contrast(text, background) >= 4.5, f"{text.name()} on {background.name()}"
    # and it is a tint, distinguishable from the window around it
    window_bg = QApplication.palette().color(Role.Window)
    assert background.name() != window_bg.name()


def test_system_hands_the_look_back_to_the_platform(qtbot: Any, make_window: Any) -> None:
    before_style = QApplication.style().name()
    before = QApplication.palette().color(Role.Window).name()
    w = _window(qtbot, make_window, "dark")
    assert QApplication.style().name().lower() == "fusion" and is_dark(QApplication.palette())
    w.settings.theme = "system"
    theme_manager(QApplication.instance()).apply("system")  # type: ignore[arg-type]
    assert QApplication.style().name() == before_style
    assert QApplication.palette().color(Role.Window).name() == before


def test_system_dark_is_followed_where_the_platform_palette_stays_light(
    qtbot: Any, make_window: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Linux desktops Qt often reports a dark colour scheme but keeps a light palette."""
    manager = theme_manager(QApplication.instance())  # type: ignore[arg-type]
    assert not is_dark(manager.system_palette)  # offscreen: light
    monkeypatch.setattr(ThemeManager, "system_scheme", lambda self: "dark")
    manager.apply("system")
    assert is_dark(QApplication.palette())
    monkeypatch.setattr(ThemeManager, "system_scheme", lambda self: "light")
    manager._scheme_changed()  # what QStyleHints.colorSchemeChanged calls
    assert not is_dark(QApplication.palette())


def test_font_size_scales_the_chat(qtbot: Any, make_window: Any) -> None:
    Settings(font_size=19).save(app_paths().ensure().settings)
    w = make_window(extensions=EXT)
    assert w.input.font().pointSize() == 19
    assert w.message_view.font().pointSize() == 19  # what the view holds inherits it
    assert w.conversation_view.font().pointSize() == QApplication.font().pointSize()
    w.settings.font_size = None
    apply_font_size(w, None)  # back to the system's size, inherited again
    assert w.input.font().pointSize() == QApplication.font().pointSize()
    original = QApplication.font()
    QApplication.setFont(QFont("Sans", 23))
    try:
        qtbot.waitUntil(lambda: w.input.font().pointSize() == 23, timeout=2_000)
    finally:
        QApplication.setFont(original)
