"""Message colours from the widget's palette, with a readable contrast guaranteed.

Nothing is hard-coded: bubbles are the palette's Base mixed with a little Highlight (your
messages) or Text (borders, code blocks), and every foreground is checked against every
background it is drawn on with the WCAG contrast ratio, and pushed towards Text until it
reaches 4.5:1, so a theme whose Link or muted colour is too faint still reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette

from chatapp.gui.chatview.contrast import RGB, luminance, mix, readable, to_hex
from chatapp.gui.markdown_html import CodeTheme


def _rgb(c: QColor) -> RGB:
    return (c.red(), c.green(), c.blue())


def _qc(c: RGB) -> QColor:
    return QColor(*c)


@dataclass(frozen=True)
class Theme:
    key: tuple[int, ...]
    dark: bool
    background: QColor  # behind the bubbles
    user: QColor
    assistant: QColor
    system: QColor
    border: QColor
    focus: QColor
    text: QColor
    muted: QColor  # headers, captions, reasoning (readable on every bubble)
    link: QColor  # links and action labels (readable on every bubble)
    code: CodeTheme
    selection: QColor  # behind text selected by dragging (Highlight)
    selected_text: QColor

    def bubble(self, role: str) -> QColor:
        return {"user": self.user, "system": self.system}.get(role, self.assistant)


def theme_from(pal: QPalette) -> Theme:
    group = QPalette.ColorGroup.Active
    base = _rgb(pal.color(group, QPalette.ColorRole.Base))
    window = pal.color(group, QPalette.ColorRole.Window)
    text = _rgb(pal.color(group, QPalette.ColorRole.Text))
    highlight = _rgb(pal.color(group, QPalette.ColorRole.Highlight))
    link = _rgb(pal.color(group, QPalette.ColorRole.Link))
    dark = luminance(base) < luminance(text)
    user = mix(base, highlight, 0.16)
    system = mix(base, text, 0.08)
    code_bg = mix(base, text, 0.07)
    backgrounds = (base, user, system, code_bg)

    def everywhere(fg: RGB) -> RGB:
        for _ in range(3):  # moving towards Text only ever helps, so this settles fast
            for bg in backgrounds:
                fg = readable(fg, bg, text)
        return fg

    muted = everywhere(mix(text, base, 0.4))
    code = CodeTheme(
        background=to_hex(code_bg),
        text=to_hex(everywhere(text)),
        caption=to_hex(muted),
        rule=to_hex(mix(base, text, 0.25)),
        style="github-dark" if dark else "default",
    )
    return Theme(
        key=(*tuple(c for rgb in (base, text, highlight, link) for c in rgb), window.rgba()),
        dark=dark,
        background=window,
        user=_qc(user),
        assistant=_qc(base),
        system=_qc(system),
        border=_qc(mix(base, text, 0.18)),
        focus=_qc(highlight),
        text=_qc(everywhere(text)),
        muted=_qc(muted),
        link=_qc(everywhere(link)),
        code=code,
        selection=pal.color(group, QPalette.ColorRole.Highlight),
        selected_text=pal.color(group, QPalette.ColorRole.HighlightedText),
    )
