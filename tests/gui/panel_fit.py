"""Open the chat settings panel on a narrow real window and report what a person would
see: the window's width before and after, texts cut short, whether it scrolls.

Used in-process by test_new_user.py and, for a scale factor (QT_SCALE_FACTOR is read
when QGuiApplication starts), in a subprocess: `python -m tests.gui.panel_fit WIDTH`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QWidget

from chatapp.gui.wrapping import WrapButton


def cut_texts(root: QWidget) -> list[str]:
    """Visible labels and buttons under root whose text does not fit the space they got."""
    out = []
    for label in root.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        if label.wordWrap():
            if label.heightForWidth(label.width()) > label.height():
                out.append(label.text())
        elif label.sizeHint().width() > label.width():
            out.append(label.text())
    for button in root.findChildren(QPushButton):
        if (
            button.isVisible()
            and not isinstance(button, WrapButton)
            and button.text()
            and button.sizeHint().width() > button.width()
        ):
            out.append(button.text())
    return out


def open_panel(window: Any, width: int, height: int = 700) -> dict[str, Any]:
    """Resize the window, open the panel as Ctrl+Shift+S does, and measure."""
    window.resize(width, height)
    QApplication.processEvents()
    before = window.width()
    panel = window.chat_settings_panel
    panel.toggle.trigger()
    for _ in range(5):  # the dock's layout settles over a few passes
        QApplication.processEvents()
    bar = panel.dock.widget().verticalScrollBar()  # the dock holds a QScrollArea
    central = window.centralWidget()
    return {
        "before": before,
        "after": window.width(),
        "dock_visible": panel.dock.isVisible(),
        "dock_width": panel.dock.width(),
        "chat_width": central.width(),
        "cut": cut_texts(panel.dock),
        "scrolls": bar.maximum() > 0 and bar.isVisible(),
        "ratio": window.devicePixelRatio(),
    }


def main(width: int) -> None:  # pragma: no cover (runs in a subprocess)
    from chatapp.core.settings import Settings
    from chatapp.core.store import Store
    from chatapp.engine.local import LocalBackend
    from chatapp.gui.chat_session import ChatSession
    from chatapp.gui.mainwindow import MainWindow
    from chatapp.paths import app_paths
    from tests.fakes import ScriptedEngine

    app = QApplication(sys.argv[:1])
    paths = app_paths().ensure()
    store = Store(paths.database)
    settings = Settings.load(paths.settings)
    model = Path(paths.data) / "smollm2-135m-instruct-q8_0.gguf"
    model.write_bytes(b"GGUF")
    session = ChatSession(
        store, settings, lambda req: LocalBackend(ScriptedEngine(path=req.ref.name))
    )
    window = MainWindow(store, settings, paths, session)
    window.show()
    loaded: list[Any] = []
    session.model_loaded.connect(loaded.append)
    window.open_model(str(model))
    while not loaded:
        app.processEvents()
    print(json.dumps(open_panel(window, width)))
    window.close()
    store.close()


if __name__ == "__main__":  # pragma: no cover
    main(int(sys.argv[1]))
