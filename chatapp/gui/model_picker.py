"""The model picker in the chat's header: the library and recently opened files in one
list; choosing one loads it for this chat (one click). A base model (no chat template,
or a name that says so) is marked, with a pointer to completion mode. The status line
says whether the model runs on the CPU or the GPU, and why.

install(window) adds it (GUI_EXTENSIONS). Library scans and GGUF headers are read off
the GUI thread.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, Qt
from PySide6.QtWidgets import QComboBox, QSizePolicy

from chatapp.core import catalog
from chatapp.core.backend import ModelRef
from chatapp.core.errors import UserError
from chatapp.gui.offload_text import offload_text
from chatapp.gui.wrapping import ElidedLabel

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

RECENT_KEY = "recent_models"  # Settings.extra: most recent first
RECENT_MAX = 10
OPEN_FILE = "__open__"
_BASE_NAME = re.compile(r"(^|[-_. ])(base|pt|pretrained)([-_. ]|$)", re.IGNORECASE)


def is_base_model(name: str, has_chat_template: bool) -> bool:
    """A model that continues text rather than answering: no chat template of its own,
    or a name that says so (…-base, …-pt)."""
    return not has_chat_template or bool(_BASE_NAME.search(Path(name).stem))


def remember_recent(extra: dict[str, Any], path: str) -> list[str]:
    recent = [p for p in extra.get(RECENT_KEY, []) if isinstance(p, str) and p != path]
    extra[RECENT_KEY] = [path, *recent][:RECENT_MAX]
    return list(extra[RECENT_KEY])


class ModelPicker(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.combo = QComboBox()
        self.combo.setObjectName("model_picker")
        self.combo.setAccessibleName(self.tr("Model for this chat"))
        self.combo.setToolTip(self.tr("The model this chat uses: pick one to load it"))
        self.combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.combo.setMinimumContentsLength(12)  # wider when there is room
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.hardware = ElidedLabel()  # long on some machines: never widens the window
        self.hardware.setObjectName("hardware_status")
        self._entries: list[tuple[str, str]] = []  # (path, label)
        self._details: dict[str, bool] = {}  # path -> has a chat template
        self._filling = False
        bar = getattr(window, "model_bar", None)
        if bar is not None:
            bar.insertWidget(1, self.combo, 1)
        window.statusBar().addPermanentWidget(self.hardware)
        self.combo.activated.connect(self._chosen)
        s = window.session
        s.model_loaded.connect(self._on_loaded)
        s.model_loading.connect(lambda _p: self.combo.setEnabled(False))
        s.model_failed.connect(lambda _m: self.combo.setEnabled(True))
        s.busy_changed.connect(lambda busy: self.combo.setEnabled(not busy))
        self.refresh()

    # -- the list ------------------------------------------------------------------------

    def refresh(self) -> None:
        w = self.window

        def scan() -> tuple[list[tuple[str, str]], dict[str, bool]]:
            library = catalog.open_library(w.settings.models_dir, w.paths.data)
            try:
                models = library.models()
            except OSError as e:
                log.warning("model library scan failed: %s", e)
                models = []
            entries = [(str(m.path), m.name) for m in models if m.complete]
            known = {p for p, _ in entries}
            for p in w.settings.extra.get(RECENT_KEY, []):
                if not isinstance(p, str) or p in known:
                    continue
                ref = ModelRef.parse(p)
                if not ref.is_local:  # a model on an OpenAI-compatible server
                    entries.append((p, self.tr("{name} (remote)").format(name=ref.label)))
                elif Path(p).exists():
                    entries.append((p, self.tr("{name} (recent)").format(name=Path(p).name)))
            cache = catalog.DetailsCache()
            details: dict[str, bool] = {}
            embedding: set[str] = set()  # embedding models do not chat: not offered here
            for p, _ in entries:
                if not ModelRef.parse(p).is_local:
                    continue
                try:
                    d = cache.details(Path(p))
                except (UserError, OSError, ValueError):
                    continue
                details[p] = d.has_chat_template
                if d.is_embedding:
                    embedding.add(p)
            return [e for e in entries if e[0] not in embedding], details

        w.run_in_background(scan, self._fill, lambda e: log.warning("model list: %s", e))

    def _fill(self, result: tuple[list[tuple[str, str]], dict[str, bool]]) -> None:
        self._entries, self._details = result
        self._filling = True
        self.combo.clear()
        current = self.window.session.model_info
        for path, label in self._entries:
            base = is_base_model(label, self._details.get(path, True))
            text = self.tr("{name}  · base model").format(name=label) if base else label
            self.combo.addItem(text, path)
            if base:
                self.combo.setItemData(
                    self.combo.count() - 1,
                    self.tr(
                        "A base model continues text; it has not learned to answer. "
                        "Completion mode suits it better than a chat."
                    ),
                    Qt.ItemDataRole.ToolTipRole,
                )
        self.combo.addItem(self.tr("Open a .gguf file…"), OPEN_FILE)
        self._select(current.path if current else None)
        self._filling = False

    def _select(self, path: str | None) -> None:
        if path is None:
            self.combo.setCurrentIndex(-1)
            self.combo.setPlaceholderText(self.tr("No model loaded"))
            return
        i = self.combo.findData(path)
        if i < 0:
            self.combo.insertItem(0, Path(path).name, path)
            i = 0
        self.combo.setCurrentIndex(i)

    def _chosen(self, index: int) -> None:
        if self._filling:
            return
        path = self.combo.itemData(index)
        if path == OPEN_FILE:
            self.window.choose_model_file()
            current = self.window.session.model_info
            self._select(current.path if current else None)
            return
        info = self.window.session.model_info
        if path and not ModelRef.parse(str(path)).is_local:
            if info is None or info.path != path:
                from chatapp.gui.remote_actions import use_remote

                # the key is never stored: from the environment, else the server says 401
                use_remote(
                    self.window,
                    ModelRef.parse(str(path)),
                    os.environ.get("CHATAPP_REMOTE_API_KEY", ""),
                )
            return
        if path and (info is None or Path(path) != Path(info.path)):
            self.window.open_model(str(path))

    # -- the loaded model ----------------------------------------------------------------

    def _on_loaded(self, loaded: Any) -> None:
        info = loaded.info
        self.combo.setEnabled(True)
        remember_recent(self.window.settings.extra, info.path)
        if self.combo.findData(info.path) < 0:
            self.refresh()
        else:
            self._filling = True
            self._select(info.path)
            self._filling = False
        if not loaded.ref.is_local:  # the server decides where it runs
            self.hardware.setText(
                self.tr("on the server {endpoint}").format(endpoint=loaded.ref.endpoint)
            )
            return
        self.hardware.setText(
            offload_text(info.offload, long=True)
            if info.offload is not None
            else hardware_text(info.n_gpu_layers, gpu_supported())
        )
        # a model without a chat template: completion_view suggests completion mode


def gpu_supported() -> bool:
    try:
        from chatapp.service.machine import gpu_offload_supported

        return gpu_offload_supported()
    except Exception:  # llama.cpp missing or broken: the status line says CPU  # noqa: BLE001
        return False


def hardware_text(n_gpu_layers: int, supported: bool) -> str:
    """Where the model runs, and why."""
    if n_gpu_layers and supported:
        layers = (
            QCoreApplication.translate("ModelPicker", "all layers")
            if n_gpu_layers < 0
            else QCoreApplication.translate("ModelPicker", "{n} layers").format(n=n_gpu_layers)
        )
        return QCoreApplication.translate("ModelPicker", "GPU ({layers} offloaded)").format(
            layers=layers
        )
    if n_gpu_layers and not supported:
        return QCoreApplication.translate(
            "ModelPicker", "CPU (this llama.cpp build has no GPU support)"
        )
    if supported:
        return QCoreApplication.translate(
            "ModelPicker", "CPU (GPU layers set to 0 in the settings)"
        )
    return QCoreApplication.translate("ModelPicker", "CPU (this llama.cpp build is CPU-only)")


def install(window: MainWindow) -> ModelPicker:
    picker = ModelPicker(window)
    window.model_picker = picker
    return picker
