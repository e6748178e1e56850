"""File > Export conversation…, Export all…, Import…, and the conversation list's menu.

The window calls `install(window)` once. Exports and imports run through
window.run_in_background with a QProgressDialog, so the window stays responsive; the
background job opens its own Store connection (SQLite connections belong to one thread,
and WAL lets it read and write beside the window's), and its results come back to the
GUI thread as plain data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu, QProgressDialog, QWidget

from chatapp.core.conversation import Conversation, Message
from chatapp.core.errors import UserError
from chatapp.core.export import EXTENSIONS, export_many, render, safe_filename
from chatapp.core.export.images import with_image_data
from chatapp.core.export.importers import PROGRESS_TOTAL, ImportResult, import_file
from chatapp.core.store import Store
from chatapp.gui.i18n import QT_TRANSLATE_NOOP

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

# (file dialog filter, format); one file per conversation, or a zip of them. Marked for
# lupdate here, translated when the dialog opens (ExportActions.filters)
ONE_FILE_FILTERS = [
    (QT_TRANSLATE_NOOP("ExportActions", "Markdown (*.md)"), "md"),
    (QT_TRANSLATE_NOOP("ExportActions", "HTML page (*.html)"), "html"),
    (QT_TRANSLATE_NOOP("ExportActions", "JSON, lossless, importable (*.json)"), "json"),
    (QT_TRANSLATE_NOOP("ExportActions", "Plain text (*.txt)"), "txt"),
    (QT_TRANSLATE_NOOP("ExportActions", "PDF (*.pdf)"), "pdf"),
]
FORMAT_KEY = "export.format"  # in settings.extra: the format chosen last time


class ExportCancelled(UserError):
    """The user pressed Cancel on the progress dialog."""


class _Relay(QObject):
    """Carries progress from the background job to its dialog on the GUI thread.

    The signal is emitted on the worker thread; the slot is a method of this object,
    which lives on the GUI thread, so Qt queues the call there.
    """

    progress = Signal(int, int)

    def __init__(self, dialog: QProgressDialog) -> None:
        super().__init__(dialog)
        self.dialog = dialog
        self.cancel = threading.Event()  # read by the worker thread
        self.progress.connect(self.show_progress)
        # Slots are methods of this QObject: PySide6 6.12 mishandles connections to
        # plain callables such as Event.set (crashes on connect, deadlocks on disconnect).
        dialog.canceled.connect(self.on_canceled)

    @Slot()
    def on_canceled(self) -> None:
        self.cancel.set()

    @Slot(int, int)
    def show_progress(self, done: int, total: int) -> None:
        if self.dialog.maximum() != max(total, 1):
            self.dialog.setMaximum(max(total, 1))
        self.dialog.setValue(min(done, self.dialog.maximum()))


def install(window: MainWindow) -> ExportActions:
    """Add the export/import actions to the window's File menu and list context menu."""
    return ExportActions(window)


class ExportActions(QObject):
    def __init__(self, window: MainWindow) -> None:
        file_menu: QMenu = window.menus["file"]
        super().__init__(file_menu)  # lives as long as the menu
        self.window = window
        self.export_action = QAction(self.tr("Export conversation…"), self)
        self.export_all_action = QAction(self.tr("Export all…"), self)
        self.import_action = QAction(self.tr("Import…"), self)
        self.export_action.setShortcut(QKeySequence("Ctrl+E"))
        self.export_all_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        self.export_action.setStatusTip(
            self.tr("Save the selected conversations as Markdown, HTML…")
        )
        self.export_all_action.setStatusTip(
            self.tr("Save every conversation in one zip with an index")
        )
        self.import_action.setStatusTip(
            self.tr("Import a chatapp JSON export or ChatGPT conversations.json")
        )
        self.export_action.triggered.connect(self.export_selected)
        self.export_all_action.triggered.connect(self.export_all)
        self.import_action.triggered.connect(self.import_interactive)
        file_menu.addSeparator()
        file_menu.addActions([self.export_action, self.export_all_action, self.import_action])
        window.conversation_list_menu_hooks.append(self.add_context_entries)
        self.busy = False
        self._dialog: QProgressDialog | None = None

    # -- menus ---------------------------------------------------------------------

    def add_context_entries(self, menu: QMenu, ids: list[str]) -> None:
        if not ids:
            return
        label = (
            self.tr("Export…")
            if len(ids) == 1
            else self.tr("Export {n} conversations…").format(n=len(ids))
        )
        action = menu.addAction(label)
        action.triggered.connect(lambda: self.export_interactive(list(ids)))

    def export_selected(self) -> None:
        ids = list(self.window.selected_conversation_ids())
        if not ids:
            current = self.window.current_conversation_id()
            ids = [current] if current else []
        if not ids:
            self.window.show_info(self.tr("There is no conversation to export yet."))
            return
        self.export_interactive(ids)

    def export_all(self) -> None:
        ids = [c.id for c in self.window.store.list_conversations()]
        if not ids:
            self.window.show_info(self.tr("There are no conversations to export."))
            return
        self.export_interactive(ids, force_zip=True)

    def filters(self, as_zip: bool) -> list[tuple[str, str]]:
        """(file dialog filter, format), translated: one file each, or a zip of them."""
        one = [(self.tr(label), fmt) for label, fmt in ONE_FILE_FILTERS]
        if not as_zip:
            return one
        return [
            (self.tr("{kind} files in a zip (*.zip)").format(kind=label.split(" (")[0]), fmt)
            for label, fmt in one
        ]

    def export_interactive(self, ids: list[str], *, force_zip: bool = False) -> None:
        """Ask where and in which format (remembered), then export in the background."""
        as_zip = force_zip or len(ids) > 1
        filters = self.filters(as_zip)
        last = self.window.settings.extra.get(FORMAT_KEY)
        fmt = last if last in {f for _, f in filters} else filters[0][1]
        if as_zip:
            name = "chatapp-export.zip"
        else:
            conv = self.window.store.get_conversation(ids[0])
            name = safe_filename(conv.title if conv else "conversation", EXTENSIONS[fmt])
        start = str(Path(self.window.settings.export_dir or Path.home()) / name)
        chosen_filter = next(label for label, f in filters if f == fmt)
        path, chosen = QFileDialog.getSaveFileName(
            self._parent_widget(),
            self.tr("Export"),
            start,
            ";;".join(label for label, _ in filters),
            chosen_filter,
        )
        if not path:
            return
        fmt = dict(filters).get(chosen, fmt)
        suffix = Path(path).suffix.lower()
        by_suffix = {ext: f for f, ext in EXTENSIONS.items()}
        if not as_zip and suffix in by_suffix:  # a typed extension wins over the filter
            fmt = by_suffix[suffix]
        elif suffix != (".zip" if as_zip else EXTENSIONS[fmt]):
            path += ".zip" if as_zip else EXTENSIONS[fmt]
        if self.window.settings.extra.get(FORMAT_KEY) != fmt:
            self.window.settings.extra[FORMAT_KEY] = fmt
            self.window.save_settings()
        self.start_export(ids, fmt, Path(path), as_zip=as_zip)

    def import_interactive(self) -> None:
        start = str(self.window.settings.export_dir or Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self._parent_widget(),
            self.tr("Import conversations"),
            start,
            self.tr("Chat exports (*.json *.zip);;All files (*)"),
        )
        if path:
            self.start_import(Path(path))

    # -- the work --------------------------------------------------------------------

    def start_export(self, ids: Sequence[str], fmt: str, dest: Path, *, as_zip: bool) -> None:
        """Export in the background; reports through window.show_info / show_error."""
        db_path = self.window.store.path
        ids = list(ids)
        progress = self._begin(self.tr("Exporting…"), len(ids))

        def job() -> Path:
            with Store(db_path) as store:

                def load(conv_id: str) -> tuple[Conversation, list[Message]]:
                    conv = store.get_conversation(conv_id)
                    if conv is None:
                        raise UserError(
                            self.tr("A conversation was deleted while it was being exported.")
                        )
                    msgs = store.messages(conv_id, with_tokens=fmt == "json")
                    return conv, with_image_data(store, msgs)

                if as_zip:
                    return export_many(
                        ids, load, fmt, dest, renderer=_renderer(fmt), progress=progress
                    )
                conv, messages = load(ids[0])
                _write_one(conv, messages, fmt, dest)
                progress(1, 1)
                return dest

        def done(path: Path) -> None:
            self._end()
            self._remember_folder(path.parent)
            what = (
                self.tr("1 conversation")
                if len(ids) == 1
                else self.tr("{n} conversations").format(n=len(ids))
            )
            self.window.show_info(self.tr("Exported {what} to {path}").format(what=what, path=path))

        self.window.run_in_background(job, done, self._failed)

    def start_import(self, path: Path, fmt: str = "auto") -> None:
        db_path = self.window.store.path
        progress = self._begin(self.tr("Importing…"), PROGRESS_TOTAL)

        def job() -> ImportResult:
            with Store(db_path) as store:
                return import_file(store, path, fmt, progress)

        def done(result: ImportResult) -> None:
            self._end()
            self._remember_folder(path.parent)
            self.window.refresh_conversations()
            self.window.show_info(result.summary())

        self.window.run_in_background(job, done, self._failed)

    def _failed(self, error: Exception) -> None:
        self._end()
        if isinstance(error, ExportCancelled):
            self.window.show_info(str(error))
        elif isinstance(error, UserError):
            self.window.show_error(str(error))
        else:
            log.error("export/import failed", exc_info=error)
            self.window.show_error(self.tr("Export or import failed: {error}").format(error=error))

    # -- progress --------------------------------------------------------------------

    def _begin(self, label: str, total: int) -> Callable[[int, int], None]:
        """Show a progress dialog; return the thread-safe callback for the job."""
        self.busy = True
        dialog = QProgressDialog(label, self.tr("Cancel"), 0, max(total, 1), self._parent_widget())
        dialog.setWindowTitle(self.tr("chatapp"))
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.setMinimumDuration(400)  # quick jobs finish without a flash of a dialog
        dialog.setAutoClose(False)
        dialog.setAutoReset(False)
        relay = _Relay(dialog)
        cancel = relay.cancel
        self._dialog = dialog

        last = [-1]

        def progress(done: int, total: int) -> None:  # called on the worker thread
            if cancel.is_set():
                raise ExportCancelled(self.tr("Cancelled; nothing was changed."))
            if done != last[0]:  # thousands of equal values would only flood the queue
                last[0] = done
                relay.progress.emit(done, total)

        return progress

    def _end(self) -> None:
        self.busy = False
        if self._dialog is not None:
            # closing would emit canceled; after the job that is harmless, but hide instead
            self._dialog.reset()  # also stops the timer that would show it
            self._dialog.hide()
            self._dialog.deleteLater()
            self._dialog = None

    def _remember_folder(self, folder: Path) -> None:
        settings = self.window.settings
        if settings.export_dir != str(folder):
            settings.export_dir = str(folder)
            self.window.save_settings()

    def _parent_widget(self) -> QWidget | None:
        return self.window if isinstance(self.window, QWidget) else None


def _renderer(fmt: str) -> Callable[[Conversation, Sequence[Message]], bytes] | None:
    if fmt != "pdf":
        return None
    from chatapp.gui.pdf import conversation_pdf

    return conversation_pdf


def _write_one(conv: Conversation, messages: list[Message], fmt: str, dest: Path) -> None:
    from chatapp.core import atomic

    if fmt == "pdf":
        from chatapp.gui.pdf import conversation_pdf

        atomic.write_bytes(dest, conversation_pdf(conv, messages), mode=atomic.USER_FILE)
    else:
        atomic.write_text(dest, render(fmt, conv, messages), mode=atomic.USER_FILE)
