"""Knowledge collections: named sets of folders and files that chats can ask.

The dialog creates, edits and removes collections (in the documents index, the same
file `chatapp docs` uses) and indexes them. Indexing runs on the service's Indexer
thread, with its own index connection and its own embedding model: neither the window
nor the chat's inference thread waits, so a chat answers while a folder indexes. Its
progress arrives here through an IndexJob's signals (queued to the GUI thread); Cancel
stops between batches, and what was indexed stays. The collection's report (a line per
file that could not be indexed) is shown when the run ends, and kept in the index.

Jobs belong to DocumentsActions, not to the dialog: closing the dialog does not stop
an indexing run, and reopening it shows its progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.docindex import VECTOR_STORE, Collection, DocIndex, Report
from chatapp.core.errors import UserError
from chatapp.gui.wrapping import ElidedLabel
from chatapp.service.documents import Embedder, Indexer, Progress

if TYPE_CHECKING:
    from chatapp.gui.documents_actions import DocumentsActions

log = logging.getLogger(__name__)

CHOOSE_FILE = "__choose__"


class IndexJob(QObject):
    """One indexing run of a collection, on the Indexer's thread. Its progress and its
    end are relayed to the GUI thread (the _progressed/_finished signals are emitted on
    the indexer's thread and delivered queued to this object's slots), then announced as
    `updated` and `done` there."""

    _progressed = Signal(object)
    _finished = Signal(object)
    updated = Signal(object)  # Progress, on the GUI thread
    done = Signal(object)  # Report | Exception, on the GUI thread

    def __init__(
        self, index_file: Path, name: str, make_embedder: Callable[[], Embedder | None]
    ) -> None:
        super().__init__()
        self.name = name
        self.progress = Progress(0, 0, "")
        self.result: Report | Exception | None = None
        self._progressed.connect(self._on_progress)
        self._finished.connect(self._on_finished)
        self.indexer = Indexer(
            index_file,
            name,
            make_embedder,
            on_progress=self._progressed.emit,
            on_done=self._finished.emit,
        )

    def _on_progress(self, p: Progress) -> None:
        self.progress = p
        self.updated.emit(p)

    def _on_finished(self, result: Report | Exception) -> None:
        self.result = result
        self.done.emit(result)

    def start(self) -> IndexJob:
        self.indexer.start()
        return self

    @property
    def running(self) -> bool:
        return self.result is None

    def cancel(self) -> None:
        self.indexer.cancel()


def _tr(text: str) -> str:
    return QCoreApplication.translate("CollectionsDialog", text)


def describe(c: Collection) -> str:
    when = (
        datetime.fromtimestamp(c.indexed_at).strftime("%Y-%m-%d %H:%M")
        if c.indexed_at
        else _tr("never")
    )
    model = (
        Path(c.embedding_model).name
        if c.embedding_model
        else _tr("keyword search only (no embedding model)")
    )
    vectors = _tr(" · vectors: {store}").format(store=VECTOR_STORE) if c.embedding_model else ""
    return (
        _tr("{files} files · {chunks} passages · {model} · indexed {when}").format(
            files=c.files, chunks=c.chunks, model=model, when=when
        )
        + vectors
    )


class CollectionsDialog(QDialog):
    def __init__(self, docs: DocumentsActions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.docs = docs
        self.setWindowTitle(self.tr("Knowledge collections"))
        self.collections: list[Collection] = []
        self._job: IndexJob | None = None
        self._connected: set[IndexJob] = set()

        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.list = QListWidget()
        self.list.setAccessibleName(self.tr("Collections"))
        self.list.currentRowChanged.connect(lambda _r: self._show())
        new = QPushButton(self.tr("New…"))
        new.clicked.connect(self._ask_new)
        self.remove_button = QPushButton(self.tr("Remove…"))
        self.remove_button.clicked.connect(self._ask_remove)
        row = QHBoxLayout()
        row.addWidget(new)
        row.addWidget(self.remove_button)
        lv.addWidget(self.list, 1)
        lv.addLayout(row)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        self.title = ElidedLabel()  # a long name never widens the dialog
        self.title.setStyleSheet("font-weight: bold;")
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.paths = QListWidget()
        self.paths.setAccessibleName(self.tr("Folders and files of the collection"))
        self.paths.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        add_folder = QPushButton(self.tr("Add folder…"))
        add_folder.clicked.connect(self._ask_folder)
        add_files = QPushButton(self.tr("Add files…"))
        add_files.clicked.connect(self._ask_files)
        self.remove_path_button = QPushButton(self.tr("Remove from collection"))
        self.remove_path_button.clicked.connect(self._remove_path)
        prow = QHBoxLayout()
        for b in (add_folder, add_files, self.remove_path_button):
            prow.addWidget(b)
        prow.addStretch(1)
        self.model = QComboBox()
        self.model.setAccessibleName(self.tr("Embedding model of the collection"))
        self.model.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.model.setMinimumContentsLength(16)
        self.model.activated.connect(self._model_chosen)
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.index_button = QPushButton(self.tr("Index now"))
        self.index_button.setToolTip(
            self.tr("Read what changed since the last indexing; remove what vanished")
        )
        self.index_button.clicked.connect(lambda: self.index())
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setAccessibleName(self.tr("Indexing progress"))
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.cancel_button.clicked.connect(self.cancel)
        irow = QHBoxLayout()
        irow.addWidget(self.index_button)
        irow.addWidget(self.progress, 1)
        irow.addWidget(self.cancel_button)
        self.current_file = QLabel()
        self.current_file.setEnabled(False)  # muted
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.report.setAccessibleName(self.tr("Indexing report"))
        self.report.setPlaceholderText(self.tr("Files that could not be indexed are listed here."))
        rv.addWidget(self.title)
        rv.addWidget(self.summary)
        rv.addWidget(QLabel(self.tr("Folders and files")))
        rv.addWidget(self.paths, 1)
        rv.addLayout(prow)
        rv.addWidget(QLabel(self.tr("Embedding model (vector search)")))
        rv.addWidget(self.model)
        rv.addWidget(self.model_note)
        rv.addLayout(irow)
        rv.addWidget(self.current_file)
        rv.addWidget(QLabel(self.tr("Report")))
        rv.addWidget(self.report, 1)
        for label in (self.summary, self.model_note, self.current_file):
            # wrapped, and never wider than the dialog (a long file name breaks the line)
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        split = QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        em = self.fontMetrics().height()
        split.setSizes([em * 10, em * 30])
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(buttons)
        self.resize(em * 44, em * 30)
        self.refresh()

    # -- showing -------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        name = select or self.current_name()
        try:
            with DocIndex(self.docs.index_file) as index:
                self.collections = index.collections()
        except UserError as e:
            self.collections = []
            self.docs.window.show_error(str(e))
        self.list.blockSignals(True)
        self.list.clear()
        for c in self.collections:
            item = QListWidgetItem(c.name)
            item.setToolTip(describe(c))
            self.list.addItem(item)
        names = [c.name for c in self.collections]
        self.list.setCurrentRow(names.index(name) if name in names else (0 if names else -1))
        self.list.blockSignals(False)
        self._show()

    def current_name(self) -> str | None:
        item = self.list.currentItem()
        return item.text() if item is not None else None

    def current(self) -> Collection | None:
        name = self.current_name()
        return next((c for c in self.collections if c.name == name), None)

    def _show(self) -> None:
        c = self.current()
        for w in (self.paths, self.model, self.index_button, self.remove_button):
            w.setEnabled(c is not None)
        self.paths.clear()
        if c is None:
            self.title.setText(self.tr("No collections yet: New… makes one."))
            self.summary.setText(
                self.tr(
                    "A collection is a set of folders and files, indexed so a chat can "
                    "answer from them (choose it in the chat settings panel)."
                )
            )
            self.report.setPlainText("")
            self._follow(None)
            return
        self.title.setText(c.name)
        self.summary.setText(describe(c))
        for p in c.paths:
            icon = (
                QStyle.StandardPixmap.SP_DirIcon
                if Path(p).is_dir()
                else QStyle.StandardPixmap.SP_FileIcon
            )
            item = QListWidgetItem(self.style().standardIcon(icon), p)
            item.setData(Qt.ItemDataRole.UserRole, p)
            item.setToolTip(p)
            self.paths.addItem(item)
        self.remove_path_button.setEnabled(bool(c.paths))
        self._fill_models(c.embedding_model)
        self.report.setPlainText("\n".join(c.report))
        self._follow(self.docs.jobs.get(c.name))

    def _fill_models(self, current: str) -> None:
        self.model.clear()
        self.model.addItem(self.tr("None: keyword search only"), "")
        for path in self.docs.embedding_models():
            self.model.addItem(Path(path).name, path)
            self.model.setItemData(self.model.count() - 1, path, Qt.ItemDataRole.ToolTipRole)
        if current and self.model.findData(current) < 0:
            self.model.addItem(Path(current).name, current)
        self.model.addItem(self.tr("Choose a GGUF file…"), CHOOSE_FILE)
        self.model.setCurrentIndex(max(0, self.model.findData(current)))
        self.model_note.setText(
            self.tr("Keyword search and vector search, fused.")
            if current
            else self.tr(
                "Keyword search only. An embedding model (Models > Model manager > "
                "Embedding models) also finds passages in other words."
            )
        )

    def _follow(self, job: IndexJob | None) -> None:
        """Show this job's progress (and only this one's: another job's signals are
        ignored once it is no longer the one shown)."""
        self._job = job
        running = job is not None and job.running
        self.progress.setVisible(running)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.index_button.setEnabled(not running and self.current() is not None)
        self.current_file.setText("")
        if job is not None and running:
            if job not in self._connected:
                self._connected.add(job)
                job.updated.connect(
                    lambda p, j=job: self._on_progress(p) if j is self._job else None
                )
                job.done.connect(lambda r, j=job: self._on_finished(r) if j is self._job else None)
            self._on_progress(job.progress)

    def _on_progress(self, p: Progress) -> None:
        self.progress.setRange(0, max(p.total, 1))
        self.progress.setValue(p.done)
        self.progress.setFormat(self.tr("%v of %m files"))
        self.current_file.setText(
            self.tr("Reading {name}").format(name=Path(p.path).name) if p.path else ""
        )

    def _on_finished(self, result: Report | Exception) -> None:
        name = self._job.name if self._job is not None else None
        self._follow(None)
        self.refresh(name)
        if isinstance(result, Exception):
            self.summary.setText(self.tr("Indexing failed: {error}").format(error=result))
        else:
            self.summary.setText(f"{describe_current(self)}\n{result.summary()}")

    # -- editing -------------------------------------------------------------------------

    def _ask_new(self) -> None:
        name, ok = QInputDialog.getText(self, self.tr("New collection"), self.tr("Name:"))
        if ok and name.strip():
            self.create_collection(name.strip())

    def create_collection(self, name: str) -> bool:
        try:
            with DocIndex(self.docs.index_file) as index:
                if index.collection(name) is not None:
                    raise UserError(f"There is already a collection named {name!r}.")
                index.ensure_collection(name, [], self.docs.default_embedding_model())
        except UserError as e:
            self.docs.window.show_error(str(e))
            return False
        self.refresh(name)
        self.docs.collections_changed.emit()
        return True

    def _ask_remove(self) -> None:
        c = self.current()
        if c is None:
            return
        answer = QMessageBox.question(
            self,
            self.tr("Remove collection"),
            self.tr("Forget the collection {name}? Its files stay where they are.").format(
                name=c.name
            ),
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(c.name)

    def remove(self, name: str) -> None:
        job = self.docs.jobs.get(name)
        if job is not None and job.running:
            self.docs.window.show_error(
                self.tr("{name} is being indexed: cancel that first.").format(name=name)
            )
            return
        self.docs.remove_collection(name, lambda: self.refresh())

    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, self.tr("Add a folder"))
        if folder:
            self.add_paths([folder])

    def _ask_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, self.tr("Add files"))
        if files:
            self.add_paths(files)

    def add_paths(self, paths: list[str]) -> None:
        """Add folders or files to the collection shown, and index it."""
        c = self.current()
        if c is None:
            return
        new = [str(Path(p).absolute()) for p in paths]
        self._update(c, [*c.paths, *[p for p in new if p not in c.paths]], c.embedding_model)
        self.index()

    def _remove_path(self) -> None:
        c = self.current()
        item = self.paths.currentItem()
        if c is None or item is None:
            return
        gone = item.data(Qt.ItemDataRole.UserRole)
        self._update(c, [p for p in c.paths if p != gone], c.embedding_model)
        self.index()

    def _model_chosen(self, i: int) -> None:
        c = self.current()
        if c is None:
            return
        path = self.model.itemData(i)
        if path == CHOOSE_FILE:
            path, _ = QFileDialog.getOpenFileName(
                self, self.tr("An embedding model"), "", self.tr("GGUF models (*.gguf)")
            )
            if not path:
                self._fill_models(c.embedding_model)
                return
        self.set_model(str(path))

    def set_model(self, path: str) -> None:
        """A new embedding model for the collection: every file is embedded again."""
        c = self.current()
        if c is None or path == c.embedding_model:
            return
        self._update(c, c.paths, str(Path(path).resolve()) if path else "")
        self.index()

    def _update(self, c: Collection, paths: list[str], model: str) -> None:
        try:
            with DocIndex(self.docs.index_file) as index:
                index.update_collection(c.name, paths, model)
        except UserError as e:
            self.docs.window.show_error(str(e))
        self.refresh(c.name)

    # -- indexing ------------------------------------------------------------------------

    def index(self, name: str | None = None) -> IndexJob | None:
        name = name or self.current_name()
        if not name:
            return None
        job = self.docs.index(name)
        if job is not None and name == self.current_name():
            self.report.setPlainText("")
            self._follow(job)
        return job

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.cancel_button.setEnabled(False)
            self.current_file.setText(self.tr("Cancelling after this file…"))


def describe_current(dialog: CollectionsDialog) -> str:
    c = dialog.current()
    return describe(c) if c is not None else ""
