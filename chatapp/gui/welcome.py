"""The first-run view: what chatapp is, the starter models, and a two-click way to chat.

Shown in place of the message view while no model is loaded or loading and no
conversation is open. "Download and start chatting" downloads the chosen starter through
the model manager's download queue (same resume, retry and sha256 check), then opens it;
the view gives way to the chat as soon as the model is loaded. "Open a model file…" and
dropping a .gguf onto the window (chatapp.gui.model_drop) use a file already on disk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QBoxLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import catalog
from chatapp.core.catalog import FileGroup, Starter, human_size, sysinfo
from chatapp.core.errors import UserError
from chatapp.gui.i18n import QT_TRANSLATE_NOOP
from chatapp.gui.model_manager_models import Column, ListTableModel
from chatapp.resources import resource_path
from chatapp.service import library as api
from chatapp.service.library import CANCELLED, DONE, FAILED, PAUSED, Job

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

# marked for lupdate here, translated where shown (WelcomeView's self.tr)
TITLE = QT_TRANSLATE_NOOP("WelcomeView", "Welcome to chatapp")
INTRO = QT_TRANSLATE_NOOP(
    "WelcomeView",
    "chatapp lets you chat with an AI language model that runs entirely on this computer. "
    "A model is a file of learned parameters plus the code that runs it: download one "
    "below (or open one you already have), and from then on everything stays on this "
    "computer, with no network needed.",
)
DROP_HINT = QT_TRANSLATE_NOOP(
    "WelcomeView", "You can also drop a .gguf file anywhere on this window."
)


def choose_group(groups: list[FileGroup], quant: str) -> FileGroup | None:
    """The starter's quantization if the repository has it, else its smallest complete file."""
    complete = [g for g in groups if g.complete]
    for g in complete:
        if g.quant == quant:
            return g
    sized = sorted((g for g in complete if g.size), key=lambda g: g.size or 0)
    return sized[0] if sized else (complete[0] if complete else None)


class WelcomeView(QWidget):
    """The widgets only; Welcome drives them."""

    def __init__(
        self,
        starters: list[Starter],
        fit: Callable[[Starter], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.starters = starters
        title = QLabel(f"<h2>{self.tr(TITLE)}</h2>")
        title.setAccessibleName(self.tr(TITLE))
        intro = QLabel(self.tr(INTRO))
        intro.setWordWrap(True)
        self.intro = intro
        pick = QLabel(
            self.tr("<b>Pick a model to start with</b> (the small ones download in a minute):")
        )
        pick.setWordWrap(True)
        self.model: ListTableModel[Starter] = ListTableModel(
            [
                Column(self.tr("Model"), lambda s: s.title),
                Column(self.tr("Parameters"), lambda s: s.params),
                Column(self.tr("Download"), lambda s: f"~{human_size(s.size)}", align_right=True),
                Column(self.tr("On this computer"), fit),
                Column(self.tr("About"), lambda s: s.description),
            ],
            self,
        )
        self.model.set_items(starters)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table, arrows move in it
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName(self.tr("Starter models"))
        self.table.setAccessibleDescription(
            self.tr(
                "Each row: the model, its size, whether it fits this computer's memory, and what "
                "it is good at"
            )
        )
        pick.setBuddy(self.table)
        self.download_button = QPushButton(self.tr("&Download and start chatting"))
        self.download_button.setDefault(True)
        self.download_button.setAccessibleDescription(
            self.tr("Downloads the selected starter model from Hugging Face, then opens it")
        )
        self.open_button = QPushButton(self.tr("&Open a model file…"))
        self.open_button.setAccessibleDescription(
            self.tr("Use a .gguf file that is already on this computer")
        )
        self.manager_button = QPushButton(self.tr("More &models…"))
        self.manager_button.setAccessibleDescription(
            self.tr("The model manager: search Hugging Face, and the models on this computer")
        )
        self.progress = QProgressBar()
        self.progress.setAccessibleName(self.tr("Download progress"))
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setAccessibleName(self.tr("Download status"))  # focusable: it selects
        self.local_label = QLabel()
        self.local_label.setWordWrap(True)
        self.local_label.hide()
        drop = QLabel(self.tr(DROP_HINT))
        drop.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.manager_button)
        buttons.addStretch(1)
        inner = QVBoxLayout(self)
        inner.setContentsMargins(24, 16, 24, 16)
        inner.addWidget(title)
        inner.addWidget(intro)
        inner.addSpacing(8)
        inner.addWidget(pick)
        inner.addWidget(self.table, 1)
        inner.addLayout(buttons)
        inner.addWidget(self.progress)
        inner.addWidget(self.status)
        inner.addWidget(self.local_label)
        inner.addWidget(drop)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        for w in (self.table, self.download_button, self.open_button, self.manager_button):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def select(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.table.selectRow(row)

    def selected(self) -> Starter | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.item(rows[0].row()) if rows else None

    def say(self, text: str) -> None:
        self.status.setText(text)


class Welcome(QObject):
    """Puts the view in the window, downloads a starter through the queue, opens it."""

    def __init__(self, window: MainWindow, models: Any, starters: list[Starter]) -> None:
        super().__init__(window)
        self.window = window
        self.models = models  # chatapp.gui.models_actions.ModelsController
        self.job: Job | None = None
        self.free = sysinfo.free_ram()
        self.view = WelcomeView(starters, self._fit)
        first_fit = next((i for i, s in enumerate(starters) if self._fit(s) == catalog.FIT_OK), 0)
        self.view.select(first_fit)
        self.view.download_button.clicked.connect(self.download_selected)
        self.view.table.doubleClicked.connect(lambda _i: self.download_selected())
        self.view.open_button.clicked.connect(window.choose_model_file)
        self.view.manager_button.clicked.connect(models.show_manager)
        models.bridge.changed.connect(self._job_changed)
        s = window.session
        s.model_loading.connect(self._loading)
        s.model_loaded.connect(lambda _loaded: self.set_shown(False))
        s.model_failed.connect(self._failed_to_load)
        s.conversation_selected.connect(self._conversation_selected)
        self._place()
        self.set_shown(False)
        QTimer.singleShot(0, self, self._first_check)

    def _place(self) -> None:
        """Put the view where the message view is (the input stays below it)."""
        messages = self.window.message_view
        parent = messages.parentWidget()
        layout = parent.layout() if parent is not None else None
        if not isinstance(layout, QBoxLayout) or layout.indexOf(messages) < 0:
            log.warning("welcome view not shown: the message view is not in a box layout")
            self.placed = False
            return
        layout.insertWidget(layout.indexOf(messages), self.view, 1)
        self.placed = True
        # Tab order: the model bar, then the welcome's controls, then the message view
        v = self.view
        chain = [getattr(self.window, "open_button", None), v.table, v.download_button]
        chain += [v.open_button, v.manager_button, messages]
        present = [w for w in chain if isinstance(w, QWidget)]
        for a, b in pairwise(present):
            QWidget.setTabOrder(a, b)

    def _fit(self, starter: Starter) -> str:
        return (
            catalog.estimate_fit(
                starter.size, self.window.settings.context_limit, self.free, quant=starter.quant
            ).label
            or "?"
        )

    # -- visibility ------------------------------------------------------------------------

    @property
    def shown(self) -> bool:
        return not self.view.isHidden()

    def set_shown(self, shown: bool) -> None:
        shown = shown and self.placed
        was_shown = self.shown
        focus = QApplication.focusWidget()
        had_focus = focus is None or focus is self.view or self.view.isAncestorOf(focus)
        self.view.setVisible(shown)
        self.window.message_view.setVisible(not shown)
        if shown:
            self.view.table.setFocus(Qt.FocusReason.OtherFocusReason)
        elif (
            was_shown  # leaving the welcome view; otherwise focus stays where the user put it
            and had_focus
            and self.window.isVisible()
            and self.window.session.model is not None
        ):
            self.window.input.setFocus(Qt.FocusReason.OtherFocusReason)

    def _first_check(self) -> None:
        s = self.window.session
        if s.model is None and s.loading_path is None and s.conversation_id is None:
            self.set_shown(True)
            self._count_local_models()

    def _conversation_selected(self, conversation_id: str) -> None:
        if conversation_id and self.shown:
            self.set_shown(False)

    def _loading(self, path: str) -> None:
        self.view.say(self.tr("Loading {name}…").format(name=Path(path).name))

    def _failed_to_load(self, message: str) -> None:
        if self.window.session.model is None and self.window.session.conversation_id is None:
            self.set_shown(True)
            self.view.say(message)
            self.view.download_button.setEnabled(True)

    def _count_local_models(self) -> None:
        def done(models: list[catalog.LocalModel]) -> None:
            usable = [m for m in models if m.complete]
            if usable:
                self.view.local_label.setText(
                    self.tr(
                        "{n} model(s) already on this computer: "
                        "More models… lists them under Library."
                    ).format(n=len(usable))
                )
                self.view.local_label.show()

        self.window.run_in_background(
            lambda: self.models.library().models(),
            done,
            lambda e: log.info("no library count for the welcome view: %s", e),
        )

    # -- downloading -----------------------------------------------------------------------

    def download_selected(self) -> None:
        starter = self.view.selected()
        if starter is None:
            self.view.say(self.tr("Choose a model in the list first."))
            return
        self.download(starter)

    def download(self, starter: Starter) -> None:
        self.view.download_button.setEnabled(False)
        self.view.say(self.tr("Looking up {name} on Hugging Face…").format(name=starter.title))
        token = self.models.token()

        def found(files: api.RepoFiles) -> None:
            group = choose_group(files.groups, starter.quant)
            if group is None:
                self._give_up(self.tr("{repo} has no usable GGUF file.").format(repo=files.repo_id))
                return
            try:
                self.job = self.models.queue.add(files.repo_id, files.revision, group)
            except UserError as e:
                self._give_up(str(e))
                return
            self.view.progress.setValue(0)
            self.view.progress.show()
            self.view.say(
                self.tr("Downloading {name} ({size})…").format(
                    name=group.name, size=human_size(group.size)
                )
            )
            self._job_changed(self.job)

        def failed(e: Exception) -> None:
            if not isinstance(e, UserError):
                log.error("starter lookup failed", exc_info=e)
            self._give_up(str(e))

        self.window.run_in_background(
            lambda: api.repo_files(starter.repo, token=token), found, failed
        )

    def _give_up(self, message: str) -> None:
        self.view.say(message)
        self.view.progress.hide()
        self.view.download_button.setEnabled(True)

    def _job_changed(self, job: Job) -> None:
        if job is not self.job:
            return
        if job.total:
            self.view.progress.setValue(int(100 * job.done / job.total))
        if job.state == DONE and job.path is not None:
            self.job = None
            self.view.progress.setValue(100)
            self.view.say(
                self.tr("Downloaded and verified {name}. Loading it…").format(name=job.group.name)
            )
            self.window.open_model(str(job.path))
        elif job.state in (FAILED, CANCELLED, PAUSED):
            self.job = None if job.state != PAUSED else job
            what = {FAILED: job.error, CANCELLED: self.tr("The download was cancelled.")}.get(
                job.state, self.tr("The download is paused: resume it in More models… › Downloads.")
            )
            self._give_up(what)


def install(window: MainWindow) -> Welcome | None:
    models = getattr(window, "models_controller", None)
    if models is None:  # needs the model manager's queue (chatapp.gui.models_actions)
        log.warning("welcome view not installed: the model manager is not")
        return None
    welcome = Welcome(window, models, catalog.load_starters(resource_path("models.json")))
    window.welcome = welcome
    return welcome
