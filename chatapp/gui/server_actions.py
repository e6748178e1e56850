"""Models > "Serve the loaded model on http://HOST:PORT": the local API switch.

Off by default. When on, the OpenAI-compatible API (chatapp.server) runs on a background
thread over the window's own chat service, so API requests queue with the window's turns
on the one inference thread. Host, port, API key and CORS origins come from the settings
(Settings > API server, chatapp.gui.server_settings); $CHATAPP_API_PORT overrides the
port. Anything but loopback needs an API key: without one the switch refuses and says so.
With "start at launch" set, the switch turns itself on when the window opens. Turned off,
and on quit, the server stops first.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from chatapp.core.errors import UserError
from chatapp.core.settings import DEFAULT_API_PORT, PORT_RANGE
from chatapp.server import ServerConfig, ServerThread, create_app, is_loopback

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

DEFAULT_PORT = DEFAULT_API_PORT
PORT_ENV = "CHATAPP_API_PORT"


def env_port() -> int | None:
    """$CHATAPP_API_PORT when it holds a usable port, else None."""
    try:
        port = int(os.environ[PORT_ENV])
    except (KeyError, ValueError):
        return None
    return port if PORT_RANGE[0] <= port <= PORT_RANGE[1] else None


def api_port(settings: Any = None) -> int:
    """The port the switch serves on: $CHATAPP_API_PORT, else the settings', else 8080."""
    env = env_port()
    if env is not None:
        return env
    return int(getattr(settings, "api_port", DEFAULT_PORT))


def display_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class ServerSwitch:
    def __init__(self, window: MainWindow, port: int | None = None) -> None:
        self.window = window
        self._port = port  # fixed by the caller (tests), else from the settings
        self.server: ServerThread | None = None
        self.running_config: tuple[str, int, str, tuple[str, ...]] | None = None
        menu = window.menus["models"]
        self.action = QAction(menu)
        self.action.setObjectName("serve_action")
        self.action.setCheckable(True)
        self.action.toggled.connect(self._toggled)
        self.update_text()
        menu.addSeparator()
        menu.addAction(self.action)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop)

    # -- what the settings say ---------------------------------------------------------------

    @property
    def host(self) -> str:
        return str(getattr(self.window.settings, "api_host", "127.0.0.1"))

    @property
    def port(self) -> int:
        return self._port if self._port is not None else api_port(self.window.settings)

    @property
    def key(self) -> str:
        return getattr(self.window.settings, "api_key", None) or ""

    @property
    def cors_origins(self) -> tuple[str, ...]:
        return tuple(getattr(self.window.settings, "api_cors_origins", ()) or ())

    def config(self) -> tuple[str, int, str, tuple[str, ...]]:
        return (self.host, self.port, self.key, self.cors_origins)

    def update_text(self) -> None:
        self.action.setText(
            QCoreApplication.translate(
                "ServerSwitch", "Serve the loaded model on http://{host}:{port}"
            ).format(host=display_host(self.host), port=self.port)
        )

    @property
    def url(self) -> str | None:
        return self.server.url + "/v1" if self.server else None

    # -- on and off --------------------------------------------------------------------------

    def _toggled(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def refusal(self) -> str | None:
        """Why the settings cannot be served as they are (None: they can)."""
        if not is_loopback(self.host) and not self.key:
            return QCoreApplication.translate(
                "ServerSwitch",
                "Serving on {host} makes the model reachable from other machines: set an "
                "API key in Settings › API server first (or serve on 127.0.0.1).",
            ).format(host=self.host)
        return None

    def start(self) -> bool:
        if self.server is not None:
            return True
        self.update_text()
        refused = self.refusal()
        try:
            if refused is not None:
                raise UserError(refused)
            config = ServerConfig(api_key=self.key, cors_origins=self.cors_origins)
            app = create_app(self.window.session.service, config)
            self.server = ServerThread(app, self.host, self.port).start()
        except UserError as e:
            self.window.show_error(str(e))
            self._set_checked(False)
            return False
        self.running_config = self.config()
        self._set_checked(True)
        self.window.show_info(
            QCoreApplication.translate(
                "ServerSwitch", "The API serves the loaded model on {url}"
            ).format(url=self.url)
            + (
                QCoreApplication.translate("ServerSwitch", " (API key required)")
                if self.key
                else ""
            )
        )
        return True

    def stop(self) -> None:
        server, self.server = self.server, None
        self.running_config = None
        if server is not None:
            server.stop()
            self.window.show_info(
                QCoreApplication.translate("ServerSwitch", "The API server is off.")
            )
        self._set_checked(False)

    def settings_changed(self) -> None:
        """After Settings > API server: new text; a running server restarts with the new
        host, port, key and origins (and stays off if they cannot be served)."""
        self.update_text()
        if self.server is not None and self.running_config != self.config():
            self.stop()
            self.start()

    def _set_checked(self, on: bool) -> None:
        if self.action.isChecked() != on:
            self.action.blockSignals(True)
            self.action.setChecked(on)
            self.action.blockSignals(False)


def install(window: MainWindow, port: int | None = None) -> ServerSwitch:
    from chatapp.gui.server_settings import install_page

    switch = ServerSwitch(window, port)
    window.server_switch = switch  # keeps it alive with the window
    install_page(window, switch)
    if getattr(window.settings, "api_autostart", False):
        switch.start()  # its errors go to the window's message bar; the switch stays off
    return switch
