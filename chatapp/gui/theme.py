"""Light and dark themes, and the chat's font size.

"system" (the default) keeps the platform's own style and palette and follows its colour
scheme (QStyleHints.colorScheme, Qt >= 6.5): when the system says dark but the platform
gives Qt a light palette (common on Linux desktops), the dark palette is applied. "light"
and "dark" use the Fusion style with a palette, so they look the same everywhere.

Widgets take their colours from the palette; the few tints used here (the message bar)
are mixed from palette colours, so they read in both themes.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory, QWidget

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

Role = QPalette.ColorRole
Group = QPalette.ColorGroup

# Semantic hues (not text colours): mixed into palette colours for tints and coloured text.
ERROR_HUE = QColor(220, 50, 47)
WARNING_HUE = QColor(210, 130, 0)


def _palette(
    colours: dict[QPalette.ColorRole, str], disabled: dict[QPalette.ColorRole, str]
) -> QPalette:
    pal = QPalette()
    for role, value in colours.items():
        pal.setColor(Group.All, role, QColor(value))
    for role, value in disabled.items():
        pal.setColor(Group.Disabled, role, QColor(value))
    return pal


def dark_palette() -> QPalette:
    """A dark palette; every text role reads at WCAG AA (4.5:1) or better on its background."""
    return _palette(
        {
            Role.Window: "#202124",
            Role.WindowText: "#e8eaed",
            Role.Base: "#17181a",
            Role.AlternateBase: "#26282b",
            Role.ToolTipBase: "#303134",
            Role.ToolTipText: "#e8eaed",
            Role.PlaceholderText: "#9aa0a6",
            Role.Text: "#e8eaed",
            Role.Button: "#2d2f33",
            Role.ButtonText: "#e8eaed",
            Role.BrightText: "#ff8a80",
            Role.Light: "#3c4043",
            Role.Midlight: "#34363a",
            Role.Mid: "#2a2c2f",
            Role.Dark: "#111213",
            Role.Shadow: "#000000",
            Role.Highlight: "#8ab4f8",
            Role.HighlightedText: "#111213",
            Role.Link: "#8ab4f8",
            Role.LinkVisited: "#c58af9",
        },
        {
            Role.WindowText: "#80868b",
            Role.Text: "#80868b",
            Role.ButtonText: "#80868b",
            Role.Highlight: "#3c4043",
            Role.HighlightedText: "#9aa0a6",
        },
    )


def light_palette() -> QPalette:
    return _palette(
        {
            Role.Window: "#f3f3f3",
            Role.WindowText: "#1f1f1f",
            Role.Base: "#ffffff",
            Role.AlternateBase: "#f5f7fa",
            Role.ToolTipBase: "#ffffdc",
            Role.ToolTipText: "#1f1f1f",
            Role.PlaceholderText: "#6b6f75",
            Role.Text: "#1f1f1f",
            Role.Button: "#e9e9e9",
            Role.ButtonText: "#1f1f1f",
            Role.BrightText: "#b00020",
            Role.Light: "#ffffff",
            Role.Midlight: "#f0f0f0",
            Role.Mid: "#b8b8b8",
            Role.Dark: "#9f9f9f",
            Role.Shadow: "#5a5a5a",
            Role.Highlight: "#1a62c4",
            Role.HighlightedText: "#ffffff",
            Role.Link: "#1a5fb4",
            Role.LinkVisited: "#7b3fb5",
        },
        {
            Role.WindowText: "#767676",
            Role.Text: "#767676",
            Role.ButtonText: "#767676",
            Role.Highlight: "#c9c9c9",
            Role.HighlightedText: "#5a5a5a",
        },
    )


def is_dark(palette: QPalette) -> bool:
    return palette.color(Role.Window).lightness() < 128


def mix(a: QColor, b: QColor, amount: float) -> QColor:
    """`amount` of b over a (0: a, 1: b)."""
    t = max(0.0, min(1.0, amount))
    return QColor.fromRgbF(
        a.redF() + (b.redF() - a.redF()) * t,
        a.greenF() + (b.greenF() - a.greenF()) * t,
        a.blueF() + (b.blueF() - a.blueF()) * t,
    )


def notice_colours(palette: QPalette, *, error: bool) -> tuple[QColor, QColor, QColor]:
    """(background, border, text) for a notice or an error, from the palette."""
    base = palette.color(Role.Base)
    hue = ERROR_HUE if error else palette.color(Role.Highlight)
    return mix(base, hue, 0.16), mix(base, hue, 0.55), palette.color(Role.Text)


def hued_text(palette: QPalette, hue: QColor) -> QColor:
    """Text in a hue (an error's red, a warning's amber) that still reads on the window's
    background in light and dark palettes: the palette's text colour pulled towards the hue."""
    return mix(palette.color(Role.WindowText), hue, 0.55)


def relative_luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: QColor, b: QColor) -> float:
    """WCAG 2 contrast ratio (1 to 21)."""
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


class ThemeManager(QObject):
    """Applies a theme to the whole application and follows the system when asked to."""

    def __init__(self, app: QApplication) -> None:
        super().__init__(app)
        self.app = app
        # what the platform gave us, before any theme was applied
        self.system_style = app.style().name()
        self.system_palette = QPalette(app.palette())
        self._changed = False
        self.current = "system"
        hints = QGuiApplication.styleHints()
        if hasattr(hints, "colorSchemeChanged"):
            hints.colorSchemeChanged.connect(self._scheme_changed)

    def system_scheme(self) -> str:
        """ "dark", "light" or "unknown", as the platform reports it."""
        hints = QGuiApplication.styleHints()
        scheme = getattr(hints, "colorScheme", None)
        if scheme is None:
            return "unknown"
        value = scheme()
        if value == Qt.ColorScheme.Dark:
            return "dark"
        if value == Qt.ColorScheme.Light:
            return "light"
        return "unknown"

    def apply(self, theme: str) -> None:
        self.current = theme if theme in ("light", "dark") else "system"
        if self.current == "system":
            scheme = self.system_scheme()
            if scheme == "dark" and not is_dark(self.system_palette):
                self._set("Fusion", dark_palette())
                self._changed = True
            elif scheme == "light" and is_dark(self.system_palette):
                self._set("Fusion", light_palette())
                self._changed = True
            elif self._changed:
                # an empty palette hands the colours back to the platform (and its updates)
                self._set(self.system_style, QPalette())
                self._changed = False
        else:
            self._set("Fusion", dark_palette() if self.current == "dark" else light_palette())
            self._changed = True
        log.info("theme %s (system scheme: %s)", self.current, self.system_scheme())

    def _set(self, style: str, palette: QPalette) -> None:
        if self.app.style().name().lower() != style.lower():
            new = QStyleFactory.create(style)
            if new is not None:
                self.app.setStyle(new)
        self.app.setPalette(palette)
        # widgets with a style sheet keep the palette they were polished with: polish again
        for widget in self.app.allWidgets():
            if widget.styleSheet():
                widget.style().unpolish(widget)
                widget.style().polish(widget)

    def _scheme_changed(self, *_: Any) -> None:
        if self.current == "system":
            self.apply("system")


def theme_manager(app: QApplication) -> ThemeManager:
    """The application's theme manager (one per QApplication; made on first use)."""
    found = app.findChild(ThemeManager)
    return found if isinstance(found, ThemeManager) else ThemeManager(app)


def chat_font(base: QFont, points: int | None) -> QFont:
    font = QFont(base)
    if points:
        font.setPointSize(points)
    return font


def chat_widgets(window: MainWindow) -> list[QWidget]:
    """The widgets the font-size setting scales: the conversation and the input."""
    names = ("message_view", "input")
    return [w for w in (getattr(window, n, None) for n in names) if isinstance(w, QWidget)]


def apply_font_size(window: MainWindow, points: int | None) -> None:
    base = QApplication.font()
    for widget in chat_widgets(window):
        # a font with nothing resolved lets the widget inherit the application's again
        widget.setFont(chat_font(base, points) if points else QFont())


def apply_appearance(window: MainWindow) -> None:
    """Apply window.settings.theme and font_size (at start-up and from the settings dialog)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        theme_manager(app).apply(window.settings.theme)
    apply_font_size(window, window.settings.font_size)


def install(window: MainWindow) -> None:
    apply_appearance(window)
