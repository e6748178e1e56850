"""The Qt part of `chatapp --self-test`: Qt starts, every GUI module imports (a bundle
that lost one fails here, not when a user opens a menu), a window shows, Markdown gets
highlighted, the icon and the About dialog build."""

from __future__ import annotations

import importlib
import os
import sys

from chatapp.display import display_problem


def check_gui() -> str:
    note = ""
    if display_problem():  # no display: check everything but the window system plugin
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        note = ", offscreen (no display)"
    from PySide6.QtCore import qVersion
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from chatapp.gui import mainwindow
    from chatapp.gui.about import AboutDialog
    from chatapp.gui.appicon import app_icon
    from chatapp.gui.markdown_html import to_html
    from chatapp.paths import app_paths

    for name in mainwindow.GUI_EXTENSIONS:
        importlib.import_module(name)
    html = to_html("```python\nprint('hello')\n```")
    if "<span" not in html:
        raise RuntimeError("code blocks are not highlighted (pygments lexers missing?)")
    icon = app_icon()
    if icon.isNull() or not icon.availableSizes():
        raise RuntimeError("the application icon did not load")
    about = AboutDialog(app_paths())
    window = QMainWindow()
    window.setWindowIcon(icon)
    window.show()
    app.processEvents()
    shown = window.isVisible()
    window.close()
    about.deleteLater()
    if not shown:
        raise RuntimeError("a window did not become visible")
    platform = QApplication.platformName()
    return f"Qt {qVersion()} on '{platform}'{note}: GUI modules, window, Markdown, icon, About"
