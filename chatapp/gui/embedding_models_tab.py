"""The model manager's Embedding models tab: a starter list of GGUF embedding models with
fit labels (download one through the same queue as chat models), the embedding models
already on this computer, and which one documents use by default (new collections, and
attached files too long to go in whole).

An embedding model is recognised from its GGUF metadata (core.catalog.embedding_models):
it is listed here and never offered as a chat model (the model picker leaves it out).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from chatapp.core import catalog
from chatapp.core.catalog import LocalModel, human_size
from chatapp.core.catalog.embedding_models import STARTER_EMBEDDINGS, StarterEmbedding
from chatapp.core.errors import UserError
from chatapp.gui.model_manager_models import Column, ListTableModel
from chatapp.service import library as api

if TYPE_CHECKING:
    from chatapp.gui.model_manager import ModelManagerDialog

log = logging.getLogger(__name__)

SETTINGS_KEY = "documents"  # Settings.extra[...]["embedding_model"], as `chatapp chat` reads it


def embedding_models_in(library: catalog.Library, cache: catalog.DetailsCache) -> list[LocalModel]:
    """The library's models whose GGUF says they embed (reads headers: off the GUI thread)."""
    return catalog.models_of_kind(library, cache, embedding=True)


def default_embedding_model(extra: dict[str, Any]) -> str:
    raw = extra.get(SETTINGS_KEY)
    path = raw.get("embedding_model") if isinstance(raw, dict) else None
    return path if isinstance(path, str) else ""


class EmbeddingModelsTab(QWidget):
    def __init__(self, dialog: ModelManagerDialog) -> None:
        super().__init__()
        self.dialog = dialog
        free = dialog._free
        self.free_mb = int(free / 1e6) if free else 0
        self.starters_model: ListTableModel[StarterEmbedding] = ListTableModel(
            [
                Column(self.tr("Model"), lambda s: s.name),
                Column(self.tr("Size"), lambda s: f"{s.size_mb} MB", align_right=True),
                Column(self.tr("Dimensions"), lambda s: str(s.dim), align_right=True),
                Column(self.tr("Fit"), self._fit),
                Column(self.tr("About"), lambda s: s.note),
            ],
            self,
        )
        from chatapp.gui.model_manager import _table

        self.starters = _table(self.starters_model, stretch=4)
        self.starters.setAccessibleName(self.tr("Embedding models to download"))
        self.starters_model.set_items(list(STARTER_EMBEDDINGS))
        self.download_button = QPushButton(self.tr("Download"))
        self.download_button.clicked.connect(self.download_selected)
        self.local_model: ListTableModel[LocalModel] = ListTableModel(
            [
                Column(self.tr("Embedding model on this computer"), lambda m: m.name),
                Column(self.tr("Size"), lambda m: human_size(m.size), align_right=True),
                Column(self.tr("Used by default"), self._is_default),
            ],
            self,
        )
        self.local = _table(self.local_model)
        self.local.setAccessibleName(self.tr("Embedding models on this computer"))
        self.use_button = QPushButton(self.tr("Use for documents"))
        self.use_button.setToolTip(
            self.tr(
                "The embedding model new collections use, and attached files that are "
                "too long to go into the question whole"
            )
        )
        self.use_button.clicked.connect(self.use_selected)
        self.current = QLabel()
        self.current.setWordWrap(True)
        intro = QLabel(
            self.tr(
                "Embedding models turn passages into vectors, so a question finds them in "
                "other words too. They do not chat: they are never offered as a chat model."
            )
        )
        intro.setWordWrap(True)
        top = QHBoxLayout()
        top.addStretch(1)
        top.addWidget(self.download_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.current, 1)
        bottom.addWidget(self.use_button)
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addWidget(self.starters, 1)
        lay.addLayout(top)
        lay.addWidget(self.local, 1)
        lay.addLayout(bottom)
        self._show_current()

    def _fit(self, s: StarterEmbedding) -> str:
        return s.fit_label(self.free_mb) if self.free_mb else "?"

    def _is_default(self, m: LocalModel) -> str:
        return "✓" if str(m.path) == default_embedding_model(self.dialog.settings.extra) else ""

    def _show_current(self) -> None:
        path = default_embedding_model(self.dialog.settings.extra)
        self.current.setText(
            self.tr("Documents use {name}.").format(name=Path(path).name)
            if path
            else self.tr("No embedding model chosen: collections search by keywords only.")
        )

    def refresh(self) -> None:
        d = self.dialog
        library, cache = d.library, d.details_cache
        d._start(lambda: embedding_models_in(library, cache), self._fill, d._fail)

    def _fill(self, models: list[LocalModel]) -> None:
        self.local_model.set_items(models)
        self._show_current()

    def download_selected(self) -> None:
        rows = self.starters.selectionModel().selectedRows()
        if not rows:
            self.dialog.say(self.tr("Choose an embedding model to download."))
            return
        starter = self.starters_model.item(rows[0].row())
        if starter is None:
            return
        d = self.dialog
        token = d.token()
        d.say(self.tr("Looking up {name}…").format(name=starter.name))

        def find() -> tuple[str, str, Any]:
            files = api.repo_files(starter.repo, token=token)
            return files.repo_id, files.revision, api.find_group(files, starter.filename)

        def queue(found: tuple[str, str, Any]) -> None:
            repo, revision, group = found
            try:
                job = d.queue.add(repo, revision, group)
            except UserError as e:
                d._fail(e)
                return
            d.jobs_model.set_items(d.queue.jobs)
            d.jobs_view.selectRow(d.queue.jobs.index(job))
            d.tabs.setCurrentIndex(2)
            d.say(self.tr("Queued {name}.").format(name=group.name))

        d._start(find, queue, d._fail)

    def use_selected(self) -> None:
        rows = self.local.selectionModel().selectedRows()
        if not rows:
            self.dialog.say(self.tr("Choose an embedding model on this computer first."))
            return
        m = self.local_model.item(rows[0].row())
        if m is None:
            return
        extra = self.dialog.settings.extra
        saved = extra.get(SETTINGS_KEY)
        extra[SETTINGS_KEY] = {
            **(saved if isinstance(saved, dict) else {}),
            "embedding_model": str(m.path),
        }
        self.dialog.save_settings()
        self.local_model.set_items(list(self.local_model.items))
        self._show_current()
        self.dialog.say(
            self.tr(
                "{name} embeds documents from now on (new collections, long attachments)."
            ).format(name=m.name)
        )
