"""Help > About chatapp: versions (chatapp, llama-cpp-python and the llama.cpp backend,
Qt, Python) and "Copy diagnostics", the text a bug report needs.

Installed by the main window through GUI_EXTENSIONS. llama_cpp is reached only through
chatapp.engine.build_info, never imported here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import PySide6
from PySide6.QtCore import Qt, QTimer, QUrl, qVersion
from PySide6.QtGui import QAction, QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chatapp import __version__, diagnostics
from chatapp.gui.appicon import app_icon
from chatapp.paths import AppPaths

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


def qt_versions() -> list[tuple[str, str]]:
    return [("Qt", qVersion()), ("PySide6", PySide6.__version__)]


class AboutDialog(QDialog):
    def __init__(
        self,
        paths: AppPaths,
        *,
        model_info: Any = None,
        models_dir: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.model_info = model_info
        self.models_dir = models_dir
        self.setWindowTitle(self.tr("About chatapp"))
        self.setAccessibleName(self.tr("About chatapp"))
        self.setMinimumWidth(440)

        icon = QLabel()
        icon.setPixmap(app_icon().pixmap(64, 64))
        title = QLabel(self.tr("<b>chatapp {version}</b>").format(version=__version__))
        title.setTextFormat(Qt.TextFormat.RichText)
        blurb = QLabel(
            self.tr(
                "Chat with local GGUF models through llama.cpp. Everything runs on this "
                "computer; the network is used only to find and download models."
            )
        )
        blurb.setWordWrap(True)
        head = QHBoxLayout()
        head.addWidget(icon, 0, Qt.AlignmentFlag.AlignTop)
        text = QVBoxLayout()
        text.addWidget(title)
        text.addWidget(blurb)
        head.addLayout(text, 1)

        form = QFormLayout()
        self.version_labels: dict[str, QLabel] = {}
        for what, version in diagnostics.versions(qt_versions()):
            value = QLabel(version)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setAccessibleName(what)
            form.addRow(f"{what}:", value)
            self.version_labels[what] = value

        self.copy_button = QPushButton(self.tr("&Copy diagnostics"))
        self.copy_button.setAccessibleDescription(
            self.tr("Copies versions, system, folders and the loaded model for a bug report")
        )
        self.copy_button.clicked.connect(self.copy_diagnostics)
        self._restore_copy_text = QTimer(self, singleShot=True, interval=2000)
        self._restore_copy_text.timeout.connect(
            lambda: self.copy_button.setText(self.tr("&Copy diagnostics"))
        )
        log_button = QPushButton(self.tr("Open &log folder"))
        log_button.clicked.connect(self.open_log_folder)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(log_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addLayout(head)
        lay.addLayout(form)
        lay.addWidget(buttons)

    def diagnostics_text(self) -> str:
        return diagnostics.report(
            self.paths, model=self.model_info, models_dir=self.models_dir, extra=qt_versions()
        )

    def copy_diagnostics(self) -> None:
        text = self.diagnostics_text()
        QGuiApplication.clipboard().setText(text)
        log.info("diagnostics copied (%d lines)", text.count("\n"))
        self.copy_button.setText(self.tr("Copied"))
        self._restore_copy_text.start()

    def open_log_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.paths.logs)))


def show_about(window: MainWindow) -> AboutDialog:
    dialog = AboutDialog(
        window.paths,
        model_info=window.model_info(),
        models_dir=window.settings.models_dir,
        parent=window,
    )
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.open()
    return dialog


def install(window: MainWindow) -> None:
    action = QAction(QGuiApplication.translate("AboutDialog", "&About chatapp"), window)
    action.setMenuRole(QAction.MenuRole.AboutRole)
    action.triggered.connect(lambda: show_about(window))
    window.menus["help"].addAction(action)
    window.about_action = action
