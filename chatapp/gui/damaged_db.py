"""The dialog at start when the chat database is damaged: say so, name the file, offer to
keep a copy and recover what can be read into a new one (core.store.recover)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from chatapp.core.errors import UserError
from chatapp.core.store import DatabaseDamaged
from chatapp.core.store.recover import recover

log = logging.getLogger(__name__)


def damaged_box(error: DatabaseDamaged, parent: QWidget | None = None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Critical)
    box.setWindowTitle(QCoreApplication.translate("DamagedDb", "chatapp: damaged chat database"))
    box.setText(error.message)
    box.setInformativeText(
        QCoreApplication.translate(
            "DamagedDb",
            "chatapp will not write into it. It can keep the damaged file as a copy and "
            "recover what can still be read into a new database.",
        )
    )
    recover_button = box.addButton(
        QCoreApplication.translate("DamagedDb", "Keep a copy and recover"),
        QMessageBox.ButtonRole.AcceptRole,
    )
    box.addButton(
        QCoreApplication.translate("DamagedDb", "Quit"), QMessageBox.ButtonRole.RejectRole
    )
    box.setDefaultButton(recover_button)
    box.setObjectName("damagedDatabase")
    return box


def offer_recovery(error: DatabaseDamaged, path: Path) -> bool:
    """Ask; on yes, recover and tell how it went. True when the app may start."""
    box = damaged_box(error)
    box.exec()
    if box.buttonRole(box.clickedButton()) != QMessageBox.ButtonRole.AcceptRole:
        return False
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        result = recover(path)
    except UserError as e:
        QApplication.restoreOverrideCursor()
        QMessageBox.critical(
            None,
            QCoreApplication.translate("DamagedDb", "chatapp"),
            QCoreApplication.translate("DamagedDb", "The recovery failed: {error}").format(error=e),
        )
        return False
    QApplication.restoreOverrideCursor()
    QMessageBox.information(
        None, QCoreApplication.translate("DamagedDb", "chatapp"), result.summary()
    )
    return True
