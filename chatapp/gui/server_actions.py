"""Models > "Serve the loaded model on http://127.0.0.1:PORT": the local API switch.

Off by default. When on, the OpenAI-compatible API (chatapp.server) runs on a background
thread over the window's own chat service, on loopback only (no key needed there), so
API requests queue with the window's turns on the one inference thread. The port is
$CHATAPP_API_PORT or 8080. Turned off, and on quit, the server stops first.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from chatapp.core.errors import UserError
from chatapp.server import ServerThread, create_app

log = logging.getLogger(__name__)

DEFAULT_PORT = 8080


def api_port() -> int:
    try:
        return int(os.environ.get("CHATAPP_API_PORT", DEFAULT_PORT))
    except ValueError:
        return DEFAULT_PORT


class ServerSwitch:
    def __init__(self, window: Any, port: int) -> None:
        self.window = window
        self.port = port
        self.server: ServerThread | None = None
        menu = window.menus["models"]
        self.action = QAction(f"Serve the loaded model on http://127.0.0.1:{port}", menu)
        self.action.setCheckable(True)
        self.action.toggled.connect(self._toggled)
        menu.addSeparator()
        menu.addAction(self.action)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    @property
    def url(self) -> str | None:
        return self.server.url + "/v1" if self.server else None

    def _toggled(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def start(self) -> None:
        if self.server is not None:
            return
        try:
            app = create_app(self.window.session.service)
            self.server = ServerThread(app, "127.0.0.1", self.port).start()
        except UserError as e:
            self.window.show_error(str(e))
            self.action.blockSignals(True)
            self.action.setChecked(False)
            self.action.blockSignals(False)
            return
        self.window.show_info(f"The API serves the loaded model on {self.url}")

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            self.window.show_info("The API server is off.")
        if self.action.isChecked():
            self.action.blockSignals(True)
            self.action.setChecked(False)
            self.action.blockSignals(False)


def install(window: Any, port: int | None = None) -> ServerSwitch:
    switch = ServerSwitch(window, api_port() if port is None else port)
    window._server_switch = switch  # keeps it alive with the window
    return switch
