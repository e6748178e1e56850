"""The Models dialog: Discover (search the hub, pick a quantization that fits), Library
(what is on disk: use, import, delete) and Downloads (queue with progress, pause, resume,
cancel).

Everything slow runs off the GUI thread: searches and file lists through run_in_background,
downloads on the DownloadQueue's thread (its changes arrive here through a JobBridge).
Errors are UserErrors shown in the dialog's status line, never an exception dialog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import catalog
from chatapp.core.catalog import (
    FileGroup,
    LocalModel,
    Starter,
    human_size,
    is_projector_file,
    quant_of,
    sysinfo,
)
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.gui.model_manager_models import (
    Column,
    JobBridge,
    ListTableModel,
    ProgressDelegate,
    run_in_thread,
)
from chatapp.gui.theme import ERROR_HUE, hued_text
from chatapp.service import library as api
from chatapp.service.library import (
    DONE,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    DownloadQueue,
    Job,
    find_token,
)
from chatapp.service.machine import can_offload

log = logging.getLogger(__name__)

Runner = Callable[[Callable[[], Any], Callable[[Any], None], Callable[[Exception], None]], None]
PAGE_SIZE = 20


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return ""
    s = int(s)
    if s >= 3600:
        return QCoreApplication.translate("ModelManagerDialog", "{h}h {m:02d}m").format(
            h=s // 3600, m=s % 3600 // 60
        )
    return QCoreApplication.translate("ModelManagerDialog", "{m}m {s:02d}s").format(
        m=s // 60, s=s % 60
    )


def job_status(job: Job) -> str:
    if job.state == RUNNING:
        return (
            QCoreApplication.translate("ModelManagerDialog", "{speed}/s · {eta} left").format(
                speed=human_size(int(job.speed)), eta=_fmt_eta(job.eta)
            )
            if job.speed
            else QCoreApplication.translate("ModelManagerDialog", "starting")
        )
    if job.state == FAILED:
        return job.error
    states = {
        QUEUED: QCoreApplication.translate("ModelManagerDialog", "queued"),
        PAUSED: QCoreApplication.translate("ModelManagerDialog", "paused"),
        DONE: QCoreApplication.translate("ModelManagerDialog", "done"),
    }
    return states.get(job.state, job.state)


def _table(model: ListTableModel[Any], stretch: int = 0) -> QTableView:
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().hide()
    header = view.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    view.setWordWrap(False)
    return view


def _selected(view: QTableView, model: ListTableModel[Any]) -> Any:
    rows = view.selectionModel().selectedRows()
    return model.item(rows[0].row()) if rows else None


class ModelManagerDialog(QDialog):
    def __init__(
        self,
        *,
        settings: Settings,
        library: catalog.Library,
        queue: DownloadQueue,
        bridge: JobBridge,
        open_model: Callable[[str], None],
        run_in_background: Runner = run_in_thread,
        starters: list[Starter] | None = None,
        details: catalog.DetailsCache | None = None,
        confirm: Callable[[str], bool] | None = None,
        token: Callable[[], str | None] | None = None,
        save_settings: Callable[[], None] = lambda: None,
        ask_token: Callable[[], str | None] | None = None,
        free_ram: Callable[[], int | None] = sysinfo.free_ram,
        free_vram: Callable[[], int | None] = sysinfo.free_vram,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Models"))
        self.resize(900, 560)
        self.settings = settings
        self.library = library
        self.queue = queue
        self.open_model = open_model
        self.run = run_in_background
        self.starters = starters or []
        self.details_cache = details or catalog.DetailsCache()
        self.confirm = confirm or self._ask
        self.token = token or (lambda: find_token(self.settings.hf_token))
        self.save_settings = save_settings
        self.ask_token = ask_token or self._ask_token
        self.free_ram = free_ram
        self.page = 0
        self.repo: api.RepoFiles | None = None
        self._free = free_ram()
        # free VRAM counts only where layers can go there: a GPU build, GPU layers not 0
        self._vram = free_vram() if can_offload(settings.n_gpu_layers) else None

        self.tabs = QTabWidget()
        self.tabs.addTab(self._discover_tab(), self.tr("Discover"))
        self.tabs.addTab(self._library_tab(), self.tr("Library"))
        self.tabs.addTab(self._downloads_tab(), self.tr("Downloads"))
        from chatapp.gui.embedding_models_tab import EmbeddingModelsTab  # issue 19

        self.embedding_tab = EmbeddingModelsTab(self)
        self.tabs.addTab(self.embedding_tab, self.tr("Embedding models"))
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName(self.tr("Status"))
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.status)
        # Enter in a field does what that field is for (the search field searches): no
        # button is pressed for it, whichever was first in the tab order
        for button in self.findChildren(QPushButton):
            button.setAutoDefault(False)
        bridge.changed.connect(self._job_changed)
        self.jobs_model.set_items(queue.jobs)
        self.show_starters()
        self.refresh_library()

    # --- helpers -------------------------------------------------------------------------

    def _ask(self, text: str) -> bool:
        answer = QMessageBox.question(self, self.tr("Models"), text)
        return answer == QMessageBox.StandardButton.Yes

    def _start(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_error: Callable[[Exception], None],
    ) -> None:
        """run_in_background, with results dropped if the dialog was closed and deleted."""

        def alive(cb: Callable[[Any], None]) -> Callable[[Any], None]:
            return lambda value: cb(value) if shiboken6.isValid(self) else None

        self.run(fn, alive(on_done), alive(on_error))

    def say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        colour = hued_text(self.palette(), ERROR_HUE).name() if error else ""
        self.status.setStyleSheet(f"color: {colour};" if error else "")

    def _fail(self, e: Exception) -> None:
        if isinstance(e, UserError):
            self.say(str(e), error=True)
        else:
            log.error("model manager task failed", exc_info=e)
            self.say(
                self.tr("Something went wrong: {error}. Details are in the log.").format(error=e),
                error=True,
            )

    def _fit(self, size: int | None, quant: str = "") -> str:
        if size is None:
            return "?"
        return catalog.estimate_fit(
            size, self.settings.context_limit, self._free, free_vram=self._vram, quant=quant
        ).label

    # --- Discover ------------------------------------------------------------------------

    def _discover_tab(self) -> QWidget:
        self.query = QLineEdit(placeholderText=self.tr("Search Hugging Face for GGUF models…"))
        self.sort = QComboBox()
        self.sort.addItems(list(api.SORTS))
        self.search_button = QPushButton(self.tr("Search"))
        self.prev_button, self.next_button = QPushButton("◀"), QPushButton("▶")
        self.prev_button.setToolTip(self.tr("Previous page"))  # tr() after h-desktop's merge (a11y)
        self.next_button.setToolTip(self.tr("Next page"))
        self.prev_button.setAccessibleName(self.tr("Previous page"))
        self.next_button.setAccessibleName(self.tr("Next page"))
        self.query.setAccessibleName(self.tr("Search Hugging Face"))
        self.sort.setAccessibleName(self.tr("Sort results by"))
        self.query.returnPressed.connect(self.search)
        self.search_button.clicked.connect(self.search)
        self.prev_button.clicked.connect(lambda: self.search(self.page - 1))
        self.next_button.clicked.connect(lambda: self.search(self.page + 1))
        self.token_button = QPushButton(self.tr("HF token…"))
        self.token_button.setToolTip(
            self.tr(
                "A Hugging Face access token, for gated and private models "
                "(HF_TOKEN and `huggingface-cli login` are used first)."
            )
        )
        self.token_button.clicked.connect(self.set_token)
        top = QHBoxLayout()
        for widget in (
            self.token_button,
            self.query,
            self.sort,
            self.search_button,
            self.prev_button,
            self.next_button,
        ):
            top.addWidget(widget)

        self.results_model: ListTableModel[Any] = ListTableModel(
            [
                Column(
                    self.tr("Repository"),
                    lambda r: r.repo if isinstance(r, Starter) else r.repo_id,
                ),
                Column(
                    self.tr("About"),
                    lambda r: (
                        f"{r.title}: {r.description}"
                        if isinstance(r, Starter)
                        else self.tr("{downloads} downloads · {likes} likes").format(
                            downloads=f"{r.downloads:,}", likes=f"{r.likes:,}"
                        )
                        + (self.tr(" · gated") if r.gated else "")
                    ),
                ),
                Column(
                    self.tr("Fit"),
                    lambda r: (
                        self.tr("~{size:.1f} GB, {fit}").format(
                            size=r.size_gb, fit=self._fit(r.size, r.quant)
                        )
                        if isinstance(r, Starter)
                        else ""
                    ),
                ),
            ],
            self,
        )
        self.results = _table(self.results_model, stretch=1)
        self.results.setAccessibleName(self.tr("Repositories"))
        self.results.selectionModel().selectionChanged.connect(self._repo_selected)

        self.files_model: ListTableModel[FileGroup] = ListTableModel(
            [
                Column(
                    self.tr("File"),
                    lambda g: (
                        g.name
                        + (self.tr(" ({n} parts)").format(n=len(g.files)) if g.is_split else "")
                        + (self.tr("  + projector (sees images)") if g.projector else "")
                    ),
                ),
                Column(self.tr("Quant"), lambda g: g.quant or "?"),
                # with a vision model's projector: both are downloaded, both take memory
                Column(self.tr("Size"), lambda g: human_size(g.total_size), align_right=True),
                Column(
                    self.tr("Fit ({context} ctx)").format(context=self.settings.context_limit),
                    lambda g: self._fit(g.total_size, g.quant),
                ),
            ],
            self,
        )
        self.files = _table(self.files_model)
        self.files.setAccessibleName(self.tr("Model files in the repository"))
        self.files.doubleClicked.connect(lambda _: self.download_selected())
        self.repo_label = QLabel(self.tr("Choose a repository to see its files."))
        self.download_button = QPushButton(self.tr("Download"))
        self.download_button.clicked.connect(self.download_selected)
        bottom = QHBoxLayout()
        bottom.addWidget(self.repo_label, 1)
        bottom.addWidget(self.download_button)
        lower = QWidget()
        lv = QVBoxLayout(lower)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.files)
        lv.addLayout(bottom)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.results)
        split.addWidget(lower)
        w = QWidget()
        v = QVBoxLayout(w)
        v.addLayout(top)
        v.addWidget(split)
        return w

    def _ask_token(self) -> str | None:
        text, ok = QInputDialog.getText(
            self,
            self.tr("Hugging Face token"),
            self.tr("Access token (from huggingface.co/settings/tokens); empty to remove:"),
            QLineEdit.EchoMode.Password,
            self.settings.hf_token or "",
        )
        return text if ok else None

    def set_token(self) -> None:
        value = self.ask_token()
        if value is None:
            return
        self.settings.hf_token = value.strip() or None
        self.save_settings()
        self.say(self.tr("Token saved.") if self.settings.hf_token else self.tr("Token removed."))

    def show_starters(self) -> None:
        self.results_model.set_items(self.starters)
        self.prev_button.setEnabled(False)
        self.next_button.setEnabled(False)

    def search(self, page: int | bool = 0) -> None:
        page = max(0, int(page))
        query, sort = self.query.text().strip(), self.sort.currentText()
        self.say(self.tr("Searching…"))
        self.search_button.setEnabled(False)
        token = self.token()

        def done(results: list[api.RepoSummary]) -> None:
            self.search_button.setEnabled(True)
            self.page = page
            self.results_model.set_items(results)
            self.prev_button.setEnabled(page > 0)
            self.next_button.setEnabled(len(results) == PAGE_SIZE)
            self.say(
                self.tr("{n} repositories (page {page}).").format(n=len(results), page=page + 1)
                if results
                else self.tr("No GGUF models found.")
            )

        def failed(e: Exception) -> None:
            self.search_button.setEnabled(True)
            self._fail(e)

        self._start(
            lambda: api.search(query, sort=sort, page=page, page_size=PAGE_SIZE, token=token),
            done,
            failed,
        )

    def _repo_selected(self, *_: Any) -> None:
        item = _selected(self.results, self.results_model)
        if item is None:
            return
        repo_id = item.repo if isinstance(item, Starter) else item.repo_id
        prefer = item.quant if isinstance(item, Starter) else ""
        self.files_model.set_items([])
        self.repo_label.setText(self.tr("Loading the files of {repo}…").format(repo=repo_id))
        token = self.token()

        def done(files: api.RepoFiles) -> None:
            self.repo = files
            self.files_model.set_items(files.groups)
            lic = self.tr(" · license {license}").format(license=files.license)
            gated = self.tr(" · gated: accept its license on the model page")
            self.repo_label.setText(
                self.tr("{repo}: {n} GGUF models").format(repo=files.repo_id, n=len(files.groups))
                + (lic if files.license else "")
                + (gated if files.gated else "")
            )
            for row, g in enumerate(files.groups):
                if prefer and g.quant == prefer:
                    self.files.selectRow(row)
            if not files.groups:
                self.say(self.tr("{repo} has no GGUF chat model files.").format(repo=files.repo_id))

        def failed(e: Exception) -> None:
            self.repo_label.setText(repo_id)
            self._fail(e)

        self._start(lambda: api.repo_files(repo_id, token=token), done, failed)

    def download_selected(self) -> Job | None:
        group = _selected(self.files, self.files_model)
        if group is None or self.repo is None:
            self.say(self.tr("Choose a file to download."))
            return None
        if not group.complete:
            self.say(
                self.tr("{name} is missing parts on the hub; it cannot be used.").format(
                    name=group.name
                ),
                error=True,
            )
            return None
        try:
            job = self.queue.add(self.repo.repo_id, self.repo.revision, group)
            if group.projector is not None:  # into the same folder, where loading finds it
                p = group.projector
                self.queue.add(
                    self.repo.repo_id,
                    self.repo.revision,
                    FileGroup(p.name, [p], quant_of(p.name)),
                )
        except UserError as e:
            self._fail(e)
            return None
        self.jobs_model.set_items(self.queue.jobs)
        self.jobs_view.selectRow(self.queue.jobs.index(job))
        self.tabs.setCurrentIndex(2)
        self.say(self.tr("Queued {name}.").format(name=group.name))
        return job

    # --- Library -------------------------------------------------------------------------

    def _library_tab(self) -> QWidget:
        self.library_model: ListTableModel[LocalModel] = ListTableModel(
            [
                Column(
                    self.tr("Model"),
                    lambda m: m.name + ("" if m.complete else self.tr("  (incomplete)")),
                ),
                Column(self.tr("Quant"), lambda m: m.quant or "?"),
                Column(self.tr("Size"), lambda m: human_size(m.size), align_right=True),
                Column(self.tr("Sees"), lambda m: self.tr("images") if m.projector else ""),
                Column(
                    self.tr("Where"),
                    lambda m: {
                        "library": "chatapp",
                        "registered": self.tr("in place"),
                        "hf-cache": self.tr("Hugging Face cache"),
                        "lmstudio": "LM Studio",
                    }.get(m.source, m.source),
                ),
            ],
            self,
        )
        self.library_view = _table(self.library_model)
        self.library_view.setAccessibleName(self.tr("Models on this computer"))
        self.library_view.doubleClicked.connect(lambda _: self.use_selected())
        self.library_view.selectionModel().selectionChanged.connect(self._show_details)
        self.details_label = QLabel()
        self.details_label.setWordWrap(True)
        self.empty_hint = QLabel(
            self.tr(
                "No models here yet. A model you open (File > Open model…) is added here; "
                "Import GGUF… adds a file from disk, and the Discover tab finds one to download."
            )
        )
        self.empty_hint.setWordWrap(True)
        self.empty_hint.hide()
        self.disk_label = QLabel()
        buttons = QHBoxLayout()
        self.use_button = QPushButton(self.tr("Use this model"))
        self.use_button.setDefault(True)
        self.import_button = QPushButton(self.tr("Import GGUF…"))
        self.delete_button = QPushButton(self.tr("Delete…"))
        refresh = QPushButton(self.tr("Refresh"))
        self.use_button.clicked.connect(self.use_selected)
        self.import_button.clicked.connect(self.import_dialog)
        self.delete_button.clicked.connect(self.delete_selected)
        refresh.clicked.connect(self.refresh_library)
        for b in (self.use_button, self.import_button, self.delete_button, refresh):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.disk_label)
        w = QWidget()
        v = QVBoxLayout(w)
        v.addWidget(self.library_view)
        v.addWidget(self.empty_hint)
        v.addWidget(self.details_label)
        v.addLayout(buttons)
        QShortcut(QKeySequence.StandardKey.Delete, self.library_view, self.delete_selected)
        return w

    def refresh_library(self) -> None:
        chosen = _selected(self.library_view, self.library_model)
        models = self.library.models()
        self.library_model.set_items(models)
        if chosen is not None:  # a download finishing does not take the user's choice away
            row = next((i for i, m in enumerate(models) if m.path == chosen.path), None)
            if row is not None:
                self.library_view.selectRow(row)
        self.empty_hint.setVisible(not models)
        self.disk_label.setText(
            self.tr("chatapp's models use {size}").format(size=human_size(self.library.disk_use()))
        )
        self.embedding_tab.refresh()

    def _show_details(self, *_: Any) -> None:
        m = _selected(self.library_view, self.library_model)
        if m is None:
            self.details_label.clear()
            return

        def done(d: catalog.ModelDetails) -> None:
            fit = catalog.estimate_fit(
                m.size,
                self.settings.context_limit,
                self.free_ram(),
                free_vram=self._vram,
                kv_per_token=d.kv_bytes_per_token,
            )
            params = catalog.human_params(d.parameter_count)
            self.details_label.setText(
                self.tr(
                    "{name} · {arch} · {params} parameters · {quant} · trained context {context}"
                    " · chat template: {template} · license {license} · {fit}"
                ).format(
                    name=d.name,
                    arch=d.architecture,
                    params=params,
                    quant=d.quantization,
                    context=d.context_length or "?",
                    template=self.tr("yes") if d.has_chat_template else self.tr("no"),
                    license=d.license or "?",
                    fit=fit.describe(),
                )
            )

        self._start(lambda: self.details_cache.details(m.path), done, self._fail)

    def use_selected(self) -> None:
        m = _selected(self.library_view, self.library_model)
        if m is None:
            self.say(self.tr("Choose a model first."))
            return
        if not m.complete:
            self.say(
                self.tr("{name} is an incomplete split model: some parts are missing.").format(
                    name=m.name
                ),
                error=True,
            )
            return
        self.open_model(str(m.path))
        self.say(self.tr("Opening {name}…").format(name=m.name))

    def import_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Import a GGUF model"), "", self.tr("GGUF models (*.gguf)")
        )
        if path:
            copy = self.confirm(
                self.tr(
                    "Copy the file into chatapp's models folder?\nChoose No to use it where it is."
                )
            )
            self.import_file(Path(path), copy=copy)

    def import_file(self, path: Path, *, copy: bool) -> None:
        self.say(self.tr("Importing {name}…").format(name=path.name))

        def done(m: LocalModel) -> None:
            self.refresh_library()
            self.say(self.tr("Added {name}.").format(name=m.name))

        self._start(lambda: self.library.import_file(path, copy=copy), done, self._fail)

    def delete_selected(self) -> None:
        m = _selected(self.library_view, self.library_model)
        if m is None:
            return
        if not (m.owned or m.source == catalog.SOURCE_REGISTERED):
            self.say(
                self.tr(
                    "{name} belongs to another tool ({source}); chatapp does not delete it."
                ).format(name=m.name, source=m.source)
            )
            return
        question = (
            self.tr("Delete {name} ({size}) from disk?").format(
                name=m.name, size=human_size(m.size)
            )
            if m.owned
            else self.tr("Forget {name}? The file itself stays where it is.").format(name=m.name)
        )
        if not self.confirm(question):
            return
        try:
            self.library.remove(m)
        except UserError as e:
            self._fail(e)
        self.refresh_library()
        self.say(self.tr("Removed {name}.").format(name=m.name))

    # --- Downloads -----------------------------------------------------------------------

    def _downloads_tab(self) -> QWidget:
        def pct(j: Job) -> int:
            return int(100 * j.done / j.total) if j.total else 0

        self.jobs_model: ListTableModel[Job] = ListTableModel(
            [
                Column(self.tr("Download"), lambda j: j.title),
                Column(
                    self.tr("Progress"),
                    lambda j: self.tr("{done} of {total}").format(
                        done=human_size(j.done), total=human_size(j.total)
                    ),
                    progress=pct,
                ),
                Column(self.tr("Status"), job_status),
            ],
            self,
        )
        self.jobs_view = _table(self.jobs_model)
        self.jobs_view.setAccessibleName(self.tr("Downloads"))
        self.jobs_view.setItemDelegateForColumn(1, ProgressDelegate(self.jobs_view))
        self.jobs_view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Fixed)
        self.jobs_view.setColumnWidth(1, 240)
        self.jobs_view.selectionModel().selectionChanged.connect(self._update_job_buttons)
        buttons = QHBoxLayout()
        self.pause_button = QPushButton(self.tr("Pause"))
        self.resume_button = QPushButton(self.tr("Resume"))
        self.cancel_button = QPushButton(self.tr("Cancel"))
        self.use_download_button = QPushButton(self.tr("Use this model"))
        clear = QPushButton(self.tr("Clear finished"))
        self.pause_button.clicked.connect(lambda: self._job_action(self.queue.pause))
        self.resume_button.clicked.connect(lambda: self._job_action(self.queue.resume))
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.use_download_button.clicked.connect(self._use_download)
        clear.clicked.connect(self._clear_finished)
        for b in (
            self.pause_button,
            self.resume_button,
            self.cancel_button,
            self.use_download_button,
            clear,
        ):
            buttons.addWidget(b)
        buttons.addStretch(1)
        w = QWidget()
        v = QVBoxLayout(w)
        v.addWidget(self.jobs_view)
        v.addLayout(buttons)
        self._update_job_buttons()
        return w

    def selected_job(self) -> Job | None:
        return _selected(self.jobs_view, self.jobs_model)

    def _job_action(self, action: Callable[[Job], None]) -> None:
        job = self.selected_job()
        if job is not None:
            action(job)

    def cancel_selected(self) -> None:
        job = self.selected_job()
        if job is not None and self.confirm(
            self.tr("Cancel {name} and delete what was downloaded?").format(name=job.group.name)
        ):
            self.queue.cancel(job)

    def _use_download(self) -> None:
        job = self.selected_job()
        if job is not None and job.state == DONE and job.path is not None:
            self.open_model(str(job.path))

    def _clear_finished(self) -> None:
        self.queue.clear_finished()
        self.jobs_model.set_items(self.queue.jobs)

    def _update_job_buttons(self, *_: Any) -> None:
        job = self.selected_job()
        state = job.state if job else ""
        self.pause_button.setEnabled(state in (QUEUED, RUNNING))
        self.resume_button.setEnabled(state in (PAUSED, FAILED))
        self.cancel_button.setEnabled(state in (QUEUED, RUNNING, PAUSED, FAILED))
        # a projector is not opened on its own: loading its model finds it beside it
        projector = job is not None and is_projector_file(job.group.name)
        self.use_download_button.setEnabled(state == DONE and not projector)

    def _job_changed(self, job: Job) -> None:
        if job not in self.jobs_model.items:
            self.jobs_model.set_items(self.queue.jobs)
        else:
            self.jobs_model.refresh_item(job)
        self._update_job_buttons()
        if job.state == DONE:
            self.refresh_library()
            self.say(
                self.tr("Downloaded and verified {name}. Use it from the Library tab.").format(
                    name=job.group.name
                )
            )
        elif job.state == FAILED:
            self.say(job.error, error=True)
