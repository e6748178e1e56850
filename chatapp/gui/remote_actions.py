"""Models > "Use a model on a server…": chat with a model on an OpenAI-compatible server
(llama.cpp's server, vLLM, Ollama, another chatapp) in this window.

The dialog takes the server's URL and optional API key, lists its models (off the GUI
thread) and loads the chosen one through the chat service like a local file; the
conversation then remembers "remote:<url>#<model>". The key stays in memory only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from chatapp.core.backend import ModelRef
from chatapp.service.machine import list_remote_models as list_models

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


class RemoteDialog(QDialog):
    def __init__(self, window: MainWindow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.main = window
        self.setWindowTitle(self.tr("Use a model on a server"))
        self.url = QLineEdit("http://127.0.0.1:8080/v1")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText(self.tr("optional"))
        self.models = QComboBox()
        self.models.setEditable(True)
        self.list_button = QPushButton(self.tr("List models"))
        self.list_button.clicked.connect(self.list_models)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.models, 1)
        row.addWidget(self.list_button)
        form = QFormLayout(self)
        form.addRow(self.tr("Server URL"), self.url)
        form.addRow(self.tr("API key"), self.key)
        form.addRow(self.tr("Model"), row)
        form.addRow(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form.addRow(self.buttons)

    def list_models(self) -> None:
        url, key = self.url.text().strip(), self.key.text().strip()
        self.status.setText(self.tr("Asking the server…"))
        self.list_button.setEnabled(False)

        def done(ids: list[str]) -> None:
            self.list_button.setEnabled(True)
            self.models.clear()
            self.models.addItems(ids)
            self.status.setText(
                self.tr("{n} model(s).").format(n=len(ids))
                if ids
                else self.tr("The server lists no models.")
            )

        def failed(e: Exception) -> None:
            self.list_button.setEnabled(True)
            self.status.setText(str(e))

        self.main.run_in_background(lambda: list_models(url, key), done, failed)

    def chosen(self) -> tuple[ModelRef, str] | None:
        url, model = self.url.text().strip(), self.models.currentText().strip()
        if not url or not model:
            return None
        return ModelRef(name=model, endpoint=url), self.key.text().strip()


def use_remote(window: MainWindow, ref: ModelRef, api_key: str) -> None:
    """Load the server's model through the service; success and failure come back as
    the session's usual model events (a failure is one line in the message bar)."""
    session = window.session
    if session.busy:
        window.show_error(
            QCoreApplication.translate(
                "RemoteDialog", "Stop the answer in progress before switching models."
            )
        )
        return
    session.service.load(session.service.load_request(ref, api_key=api_key))


def install(window: MainWindow) -> RemoteDialog | None:
    menu = window.menus["models"]
    action = QAction(QCoreApplication.translate("RemoteDialog", "Use a model on a server…"), menu)

    def open_dialog() -> None:
        dialog = RemoteDialog(window, window if isinstance(window, QWidget) else None)
        window.remote_dialog = dialog
        if dialog.exec() == QDialog.DialogCode.Accepted:
            chosen = dialog.chosen()
            if chosen is not None:
                use_remote(window, *chosen)

    action.triggered.connect(open_dialog)
    menu.addAction(action)
    window.remote_action = action
    return None
