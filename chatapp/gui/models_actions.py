"""Menu entries for the model manager: Models > Model manager… (Ctrl+M), Models > Import GGUF….

`install(window)` is called once by the main window. It builds the library, the download
queue (restoring unfinished downloads, paused) and opens the dialog on demand.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from chatapp.core import catalog
from chatapp.core.errors import UserError
from chatapp.gui.model_manager import ModelManagerDialog
from chatapp.gui.model_manager_models import JobBridge
from chatapp.resources import resource_path
from chatapp.service import library as api
from chatapp.service.library import Downloader, DownloadQueue, find_token

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)


class ModelsController:
    """What install() keeps alive: library, queue, the dialog once opened."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.bridge = JobBridge()
        self.queue = DownloadQueue(self._downloader, self.bridge.changed.emit)
        self.dialog: ModelManagerDialog | None = None
        try:
            self.queue.restore(self.library().models_dir)
        except (OSError, UserError) as e:
            log.warning("unfinished downloads not restored: %s", e)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def library(self) -> catalog.Library:
        return catalog.open_library(self.window.settings.models_dir, self.window.paths.data)

    def token(self) -> str | None:
        return find_token(self.window.settings.hf_token)

    def _downloader(self) -> Downloader:
        return Downloader(self.library().models_dir, endpoint=api.endpoint(), token=self.token())

    def remember(self, path: str) -> None:
        """A model opened by file belongs in the library (registered where it is)."""
        if not path or path.startswith("remote:"):
            return
        p = Path(path)
        try:
            lib = self.library()
            if not p.is_file() or p.resolve().is_relative_to(lib.models_dir.resolve()):
                return
            if p.resolve() not in lib.registry.paths():
                lib.registry.add(p)
        except OSError as e:  # a read-only data folder: the model still works
            log.warning("could not add %s to the library: %s", p, e)

    def _remember_in_use(self) -> None:
        """The models the chats use (opened before the library kept them)."""
        store = getattr(self.window, "store", None)
        if store is None:
            return
        seen: set[str] = set()
        for conv in store.list_conversations(limit=1000):
            if conv.model_path and conv.model_path not in seen:
                seen.add(conv.model_path)
                self.remember(conv.model_path)

    def show_manager(self) -> ModelManagerDialog:
        self._remember_in_use()
        if self.dialog is None:
            self.dialog = ModelManagerDialog(
                settings=self.window.settings,
                library=self.library(),
                queue=self.queue,
                bridge=self.bridge,
                open_model=self.window.open_model,
                run_in_background=self.window.run_in_background,
                starters=catalog.load_starters(resource_path("models.json")),
                details=catalog.DetailsCache(self.window.paths.cache / "gguf-details.json"),
                token=self.token,
                save_settings=self.window.save_settings,
                parent=self.window if hasattr(self.window, "windowHandle") else None,
            )
        else:
            self.dialog.library = self.library()  # the models folder may have changed
            self.dialog.refresh_library()
        if self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
        else:
            self.dialog.show()
        return self.dialog

    def import_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            None,
            QCoreApplication.translate("ModelsController", "Import a GGUF model"),
            "",
            QCoreApplication.translate("ModelsController", "GGUF models (*.gguf)"),
        )
        if not path:
            return
        answer = QMessageBox.question(
            None,
            QCoreApplication.translate("ModelsController", "Import GGUF"),
            QCoreApplication.translate(
                "ModelsController",
                "Copy the file into chatapp's models folder?\nChoose No to use it where it is.",
            ),
        )
        self.import_path(Path(path), copy=answer == QMessageBox.StandardButton.Yes)

    def import_path(self, path: Path, *, copy: bool) -> None:
        lib = self.library()

        def done(m: catalog.LocalModel) -> None:
            self.window.show_info(
                QCoreApplication.translate(
                    "ModelsController", "Added {name} to the library."
                ).format(name=m.name)
            )
            if self.dialog is not None:
                self.dialog.refresh_library()

        def failed(e: Exception) -> None:
            if not isinstance(e, UserError):
                log.error("import failed", exc_info=e)
            self.window.show_error(str(e))

        self.window.run_in_background(lambda: lib.import_file(path, copy=copy), done, failed)

    def shutdown(self) -> None:
        self.queue.shutdown()


def install(window: MainWindow) -> ModelsController:
    controller = ModelsController(window)
    menu = window.menus["models"]
    manager = QAction(QCoreApplication.translate("ModelsController", "Model manager…"), menu)
    manager.setShortcut(QKeySequence("Ctrl+M"))
    manager.triggered.connect(controller.show_manager)
    importer = QAction(QCoreApplication.translate("ModelsController", "Import GGUF…"), menu)
    importer.triggered.connect(controller.import_gguf)
    menu.addAction(manager)
    menu.addAction(importer)
    window.models_controller = controller  # keeps the queue and the dialog alive
    session = getattr(window, "session", None)
    if session is not None:
        session.model_loaded.connect(lambda loaded: controller.remember(loaded.info.path))
    return controller
