"""Settings > API server: the window's local OpenAI-compatible API (chatapp.gui.server_actions).

Start at launch (off by default), host (loopback by default), port, API key and the CORS
origins browsers may call from, plus a line saying what runs now. The values live in the
settings file's "api_server" group; the switch in the Models menu reads them when it is
turned on, and a running server restarts with new ones after OK or Apply. A host other
than loopback without a key is shown as refused here, and the switch refuses it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.settings import DEFAULT_API_HOST, PORT_RANGE, Settings
from chatapp.gui.settings_dialog import add_settings_page
from chatapp.gui.theme import ERROR_HUE, hued_text
from chatapp.server import is_loopback

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

if TYPE_CHECKING:
    from chatapp.gui.server_actions import ServerSwitch


def parse_origins(text: str) -> list[str]:
    """Origins separated by commas, spaces or new lines; a trailing slash is no part of an
    origin (browsers send none)."""
    parts = text.replace(",", " ").split()
    return [p.rstrip("/") for p in parts if p.strip("/")]


class ServerSettingsPage(QWidget):
    """The page and its SettingsPage protocol (title, widget, apply)."""

    def __init__(self, settings: Settings, switch: ServerSwitch) -> None:
        super().__init__()
        self.setObjectName("api_server_page")
        self.switch = switch
        self.title = self.tr("API server")
        self.widget: QWidget = self

        self.autostart = QCheckBox(self.tr("&Start the API server when chatapp starts"))
        self.autostart.setObjectName("api_autostart")
        self.autostart.setToolTip(
            self.tr("Off by default: the server runs only while the Models menu's switch is on.")
        )
        self.host = QLineEdit()
        self.host.setObjectName("api_host")
        self.host.setPlaceholderText(DEFAULT_API_HOST)
        self.host.setAccessibleName(self.tr("Host"))
        self.host.setAccessibleDescription(
            self.tr(
                "The address to listen on. 127.0.0.1 (loopback) is reachable only from this "
                "computer; any other address needs an API key."
            )
        )
        self.host.setToolTip(self.host.accessibleDescription())
        self.port = QSpinBox()
        self.port.setObjectName("api_port")
        self.port.setRange(*PORT_RANGE)
        self.port.setAccessibleName(self.tr("Port"))
        self.key = QLineEdit()
        self.key.setObjectName("api_key")
        self.key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        self.key.setPlaceholderText(self.tr("none (loopback only)"))
        self.key.setAccessibleName(self.tr("API key"))
        self.key.setAccessibleDescription(
            self.tr("Clients send it as 'Authorization: Bearer KEY' on every request.")
        )
        self.key.setToolTip(self.key.accessibleDescription())
        self.origins = QLineEdit()
        self.origins.setObjectName("api_cors_origins")
        self.origins.setPlaceholderText(self.tr("none: web pages cannot call the API"))
        self.origins.setAccessibleName(self.tr("CORS origins"))
        self.origins.setAccessibleDescription(
            self.tr(
                "Web pages allowed to call the API from a browser, for example "
                "http://localhost:3000; separate several with commas."
            )
        )
        self.origins.setToolTip(self.origins.accessibleDescription())
        self.warning = QLabel()
        self.warning.setObjectName("api_warning")
        self.warning.setWordWrap(True)
        self.status = QLabel()
        self.status.setObjectName("api_status")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow(self.autostart)
        form.addRow(self.tr("&Host:"), self.host)
        form.addRow(self.tr("&Port:"), self.port)
        form.addRow(self.tr("API &key:"), self.key)
        form.addRow(self.tr("&CORS origins:"), self.origins)
        v = QVBoxLayout(self)
        v.addLayout(form)
        v.addWidget(self.warning)
        v.addWidget(self.status)
        v.addStretch(1)
        self.host.textChanged.connect(self._check)
        self.key.textChanged.connect(self._check)
        self.load(settings)

    def load(self, s: Settings) -> None:
        self.autostart.setChecked(s.api_autostart)
        self.host.setText(s.api_host)
        self.port.setValue(s.api_port)
        self.key.setText(s.api_key or "")
        self.origins.setText(", ".join(s.api_cors_origins))
        self._check()
        self.show_status()

    def apply(self, s: Settings) -> None:
        s.api_autostart = self.autostart.isChecked()
        s.api_host = self.host.text().strip() or DEFAULT_API_HOST
        s.api_port = self.port.value()
        s.api_key = self.key.text().strip() or None
        s.api_cors_origins = parse_origins(self.origins.text())
        # after the dialog has validated and saved: the switch follows the new values (the
        # window outlives the dialog; the status line only while the page still exists)
        QTimer.singleShot(0, self.switch.window, self.switch.settings_changed)
        QTimer.singleShot(0, self, self.show_status)

    def refused(self) -> bool:
        host = self.host.text().strip() or DEFAULT_API_HOST
        return not is_loopback(host) and not self.key.text().strip()

    def _check(self) -> None:
        if self.refused():
            self.warning.setText(
                self.tr(
                    "Not loopback: the model would be reachable from other machines, so the "
                    "server will not start without an API key."
                )
            )
            colour = hued_text(self.palette(), ERROR_HUE).name()
            self.warning.setStyleSheet(f"color: {colour};")
            self.warning.show()
        else:
            self.warning.hide()

    def show_status(self) -> None:
        switch = self.switch
        if switch.url:
            text = self.tr("Now: the API serves the loaded model on {url}.").format(url=switch.url)
        else:
            text = self.tr("Now: off (Models › Serve… turns it on).")
        if switch.port != self.port.value():
            text += " " + self.tr("$CHATAPP_API_PORT sets the port: {port}.").format(
                port=switch.port
            )
        self.status.setText(text)


def install_page(window: MainWindow, switch: ServerSwitch) -> None:
    add_settings_page(window, lambda settings: ServerSettingsPage(settings, switch))
