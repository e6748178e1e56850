"""The application icon, from the PNGs rendered from resources/icons/chatapp.svg."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from chatapp.resources import resource_path

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def app_icon() -> QIcon:
    """Every rendered size, so Qt never scales a large PNG down to 16 px itself."""
    icon = QIcon()
    for size in SIZES:
        path = resource_path("icons", f"chatapp-{size}.png")
        if path.is_file():
            icon.addFile(str(path))
    return icon
