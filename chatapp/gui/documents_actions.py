"""Chat with your documents, in the window (docs/documents.md).

install(window) adds:
- attachments (gui/attachments.py): the composer's paperclip, drops on the chat, chips;
- citations (gui/citations.py): an answer's [n] open a card with the passage;
- knowledge collections: Chat > Knowledge collections… (gui/collections_dialog.py) and
  the chat settings panel's Documents section (gui/collections_section.py);
- Settings > Documents (gui/documents_settings.py): RAG-Fusion's rephrasings;
- the turn's retrieval step: a send with attachments or chosen collections carries a
  service.documents.DocumentsStep, the very step `chatapp chat --attach/--docs` uses
  (whole when a file fits the budget, its best chunks otherwise; collections' passages,
  numbered). Regenerate and edit carry the chat's collections and the files attached
  to the question they answer again (read from the question's record). Show prompt
  ("preview") gets the same step for the draft, without taking the chips.

Embedding models for questions and attached files are loaded once, on the inference
thread, and kept (EmbedderCache); indexing runs load their own on the indexer's thread.
Both are closed when the window closes, after the chat service has stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtGui import QAction, QKeySequence

from chatapp.core.docindex import DocIndex, Report
from chatapp.core.errors import UserError
from chatapp.gui.attachments import Attachments
from chatapp.gui.citations import Citations
from chatapp.gui.collections_dialog import CollectionsDialog, IndexJob
from chatapp.gui.collections_section import CollectionsSection, install_into_panel
from chatapp.gui.documents_settings import install_page as install_settings_page
from chatapp.service import TurnOptions
from chatapp.service.documents import DocumentsStep, Embedder, EmbedderCache, index_path

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

SETTINGS_KEY = "documents"  # Settings.extra: {"embedding_model": PATH, "query_rewrites": N}


def load_embedder(path: str) -> Embedder:
    from chatapp.service.machine import embedding_model

    return embedding_model(path)


class DocumentsActions(QObject):
    collections_changed = Signal()
    indexed = Signal(str, object)  # collection name, Report | Exception

    def __init__(self, window: MainWindow, *, loader: Callable[[str], Embedder] = load_embedder):
        super().__init__(window)
        self.window = window
        self.loader = loader
        self.index_file = index_path(window.paths.data)
        self.embedders = EmbedderCache(loader)
        self.retrieved: dict[object, object] = {}  # used on the inference thread only
        self.jobs: dict[str, IndexJob] = {}
        self.dialog: CollectionsDialog | None = None
        self.extra_embedding_models: list[str] = []  # found by the model manager
        self._closed = False

        self.attachments = Attachments(window)
        self.citations = Citations(window)
        self.section = CollectionsSection(self)
        install_into_panel(self.section, window.chat_settings_panel)
        install_settings_page(self)
        self.action = QAction(self.tr("&Knowledge collections…"), self)
        self.action.setShortcut(QKeySequence("Ctrl+Shift+K"))
        self.action.triggered.connect(self.show_collections)
        window.menus["chat"].addAction(self.action)
        window.session.option_hooks.append(self.turn_options)
        window.installEventFilter(self)

    # -- settings ------------------------------------------------------------------------

    def saved(self) -> dict[str, Any]:
        raw = self.window.settings.extra.get(SETTINGS_KEY)
        return raw if isinstance(raw, dict) else {}

    def default_embedding_model(self) -> str:
        path = self.saved().get("embedding_model")
        return path if isinstance(path, str) and path and Path(path).is_file() else ""

    def query_rewrites(self) -> int:
        """RAG-Fusion: how many rephrasings of a question the chat model writes (0: none)."""
        n = self.saved().get("query_rewrites", 0)
        return n if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 8 else 0

    def set_query_rewrites(self, n: int) -> None:
        self.window.settings.extra[SETTINGS_KEY] = {**self.saved(), "query_rewrites": n}
        self.window.save_settings()

    def set_default_embedding_model(self, path: str) -> None:
        self.window.settings.extra[SETTINGS_KEY] = {**self.saved(), "embedding_model": path}
        self.window.save_settings()

    def embedding_models(self) -> list[str]:
        """The embedding models the window knows: the default, those the model manager
        found, those collections use."""
        found = [self.default_embedding_model(), *self.extra_embedding_models]
        try:
            with DocIndex(self.index_file) as index:
                found += [c.embedding_model for c in index.collections()]
        except UserError:
            pass
        return [p for p in dict.fromkeys(found) if p]

    # -- the turn ------------------------------------------------------------------------

    def turn_options(self, opts: TurnOptions, kind: str, message_id: str | None) -> TurnOptions:
        """The retrieval step for a turn the window starts (ChatSession.option_hooks);
        "preview" (Show prompt) gets the step the next send would get, leaving the chips
        in place: the service runs it on the draft, so the prompt shown is the one sent."""
        if kind not in ("send", "regenerate", "edit", "preview"):
            return opts
        if kind == "send":
            collections = self.section.sending()
            files = [a.path for a in self.attachments.take()]
        elif kind == "preview":
            collections = self.section.chosen()
            files = [a.path for a in self.attachments.items]
        else:
            collections = self.section.chosen()
            files = self._files_given(kind, message_id)
        if not collections and not files:
            return opts
        step = DocumentsStep(
            self.index_file,
            collections=tuple(collections),
            attachments=tuple(files),
            embedder=self.embedders,
            attach_embedding_model=self.default_embedding_model(),
            rewrites=self.query_rewrites(),
            # Show prompt's result for the draft, reused by its send (DocumentsStep.memo)
            memo=self.retrieved if kind in ("preview", "send") else None,
        )
        return replace(opts, retrieval=step)

    def _files_given(self, kind: str, message_id: str | None) -> list[Path]:
        """The files attached to the question a regenerate answers again (or an edit
        rewrites), if they are still there: from the question's record, or, for a
        question saved before questions kept theirs, from its answer's passages."""
        thread = self.window.session.thread()
        answer = question = None
        if kind == "regenerate":
            answers = [m for m in thread if m.role.value == "assistant"]
            answer = next((m for m in answers if m.id == message_id), None) if message_id else None
            answer = answer or (answers[-1] if answers else None)
            if answer is not None:
                question = next((m for m in thread if m.id == answer.parent_id), None)
        else:
            ids = [m.id for m in thread]
            at = ids.index(message_id) if message_id in ids else -1
            question = thread[at] if at >= 0 else None
            answer = thread[at + 1] if 0 <= at < len(thread) - 1 else None
        kept = question.meta.get("attachments") if question is not None else None
        if isinstance(kept, list) and kept:
            files = [Path(f["path"]) for f in kept if isinstance(f, dict) and f.get("path")]
        else:
            docs = answer.meta.get("documents") if answer is not None else None
            passages = docs.get("passages") if isinstance(docs, dict) else None
            files = [
                Path(p["file"])
                for p in passages or []
                if isinstance(p, dict)
                and (p.get("whole_file") or isinstance(p.get("chunk_id"), str))
            ]
        return [f for f in dict.fromkeys(files) if f.is_file()]

    # -- collections ---------------------------------------------------------------------

    def show_collections(self) -> CollectionsDialog:
        if self.dialog is None:
            self.dialog = CollectionsDialog(self, self.window)
        else:
            self.dialog.refresh()
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def index(self, name: str) -> IndexJob | None:
        """Index a collection on the indexer's thread (one run per collection at a time)."""
        running = self.jobs.get(name)
        if running is not None and running.running:
            return running
        try:
            with DocIndex(self.index_file) as index:
                c = index.collection(name)
        except UserError as e:
            self.window.show_error(str(e))
            return None
        if c is None:
            self.window.show_error(self.tr("No collection named {name}.").format(name=name))
            return None
        model = c.embedding_model
        loader = self.loader
        job = IndexJob(self.index_file, name, lambda: loader(model) if model else None)
        job.done.connect(lambda result, n=name: self._indexed(n, result))
        self.jobs[name] = job
        return job.start()

    def _indexed(self, name: str, result: Report | Exception) -> None:
        if isinstance(result, Exception):
            self.window.show_error(
                self.tr("Indexing {name} failed: {error}").format(name=name, error=result)
            )
        else:
            self.window.statusBar().showMessage(
                self.tr("{name}: {summary}").format(name=name, summary=result.summary()), 10000
            )
        self.collections_changed.emit()
        self.indexed.emit(name, result)

    def remove_collection(self, name: str, then: Callable[[], None]) -> None:
        def job() -> bool:
            with DocIndex(self.index_file) as index:
                return index.remove_collection(name)

        def done(_removed: bool) -> None:
            self.collections_changed.emit()
            then()

        def failed(e: Exception) -> None:
            self.window.show_error(str(e))

        self.window.run_in_background(job, done, failed)

    # -- lifetime ------------------------------------------------------------------------

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.close()
        return False

    def close(self) -> None:
        """Stop indexing runs, stop the chat service (its inference thread may be using
        an embedding model), then free the embedding models."""
        if self._closed:
            return
        self._closed = True
        for job in self.jobs.values():
            job.cancel()
        for job in self.jobs.values():
            job.indexer.join(30)
        self.window.session.shutdown()
        self.embedders.close()


def install(window: MainWindow) -> DocumentsActions:
    docs = DocumentsActions(window)
    window.documents = docs
    return docs
