"""Render resources/icons/chatapp.svg to the PNG sizes desktops ask for, and a Windows .ico.

    python packaging/render_icons.py

Qt's own SVG renderer does it (no rsvg or Inkscape needed). The PNGs are committed: the
app and the bundle use them, so the running app never needs the SVG image plugin.
The .ico is assembled by ImageMagick's `convert` when it is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 256)


def png_path(size: int) -> Path:
    return ICONS / f"chatapp-{size}.png"


def render() -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])
    renderer = QSvgRenderer(str(ICONS / "chatapp.svg"))
    if not renderer.isValid():
        raise SystemExit("chatapp.svg is not a valid SVG")
    out = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        if not image.save(str(png_path(size))):
            raise SystemExit(f"could not write {png_path(size)}")
        out.append(png_path(size))
    convert = shutil.which("convert")
    if convert:
        ico = ICONS / "chatapp.ico"
        subprocess.run([convert, *(str(png_path(s)) for s in ICO_SIZES), str(ico)], check=True)
        out.append(ico)
    return out


if __name__ == "__main__":
    for p in render():
        print(p.relative_to(ICONS.parents[1]), p.stat().st_size, "bytes")
    sys.exit(0)
