"""Settings > Speed: where the app saves the user time, and what it costs.

- Saved conversation states (KV states on disk, engine.state_disk): the budget
  (settings.kv_state_disk_mb, 0: off), the folder, the space used now (a stat per file,
  off the GUI thread) and "Delete saved states…" (service.saved_states.clear: between two
  writes, on the inference thread). A new budget applies to the loaded model at once.
- Prefill while typing (settings.prefill_while_typing, gui.prefill_typing).
- Speculative decoding (settings.speculative, settings.draft_models; engine.speculative):
  off, prompt lookup or a draft model chosen from the library for the model in use. A
  draft model with another vocabulary is refused with one line, and the dialog keeps it
  open (nothing saved). A changed mode loads the model again, as it must (it is chosen at
  load), unless an answer is being written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QCoreApplication, Qt, QTimer, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import catalog
from chatapp.core.errors import UserError
from chatapp.core.settings import KV_DISK_MB_RANGE, Settings
from chatapp.gui.settings_dialog import add_settings_page
from chatapp.gui.theme import ERROR_HUE, hued_text
from chatapp.gui.wrapping import shortened
from chatapp.service import machine, saved_states

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

MB = saved_states.MB
MODES = ("off", "lookup", "draft")


def _mb(n_bytes: int) -> str:
    """Sizes in the budget's unit (MiB, "MB" as the settings file says)."""
    mb = n_bytes / MB
    return f"{mb:,.1f}" if 0 < mb < 10 else f"{mb:,.0f}"


def main_model(window: MainWindow) -> str | None:
    """The model a draft model is chosen for: the one loaded, else the one new chats
    start with, else the last one used (a path), or None."""
    model = window.session.model
    if model is not None:
        return model.ref.name if model.ref.is_local else None
    return window.settings.default_model or window.settings.last_model or None


class SpeedSettingsPage(QWidget):
    """The page and its SettingsPage protocol (title, widget, apply, refusal)."""

    def __init__(self, settings: Settings, window: MainWindow) -> None:
        super().__init__()
        self.setObjectName("speed_settings_page")
        self.window_ = window
        self.title = self.tr("Speed")
        self.widget: QWidget = self
        self.main = main_model(window)
        self._vocab: dict[tuple[str, str], str] = {}  # (model, draft) -> refusal or ""
        lay = QVBoxLayout(self)
        lay.addWidget(self._states_group())
        lay.addWidget(self._prefill_group())
        lay.addWidget(self._speculation_group())
        lay.addStretch(1)
        self.load(settings)
        self.refresh_usage()
        self._scan_library()

    # -- saved conversation states -----------------------------------------------------

    def _states_group(self) -> QGroupBox:
        box = QGroupBox(self.tr("Saved conversation states"))
        intro = self._note(
            self.tr(
                "A conversation's evaluated prompt is saved when it leaves memory and when "
                "chatapp quits, so after a restart its next answer starts in a moment "
                "instead of reading the whole conversation again."
            )
        )
        self.budget = QSpinBox()
        self.budget.setObjectName("kv_state_disk_mb")
        self.budget.setRange(*KV_DISK_MB_RANGE)
        self.budget.setSingleStep(256)
        self.budget.setSuffix(self.tr(" MB"))
        self.budget.setSpecialValueText(self.tr("Off"))
        self.budget.setMinimumWidth(self.budget.fontMetrics().horizontalAdvance("0") * 14)
        self.budget.setAccessibleName(self.tr("Disk space for saved states"))
        self.budget.setAccessibleDescription(
            self.tr(
                "The most disk space saved states may take; the least recently used go "
                "first. Off: no state is saved or restored."
            )
        )
        self.budget.setToolTip(self.budget.accessibleDescription())
        self.budget.valueChanged.connect(self._show_usage_text)
        self.folder = QLineEdit(str(saved_states.state_folder()))
        self.folder.setObjectName("kv_state_folder")
        self.folder.setReadOnly(True)
        self.folder.setAccessibleName(self.tr("Folder of saved states"))
        self.folder.setToolTip(self.folder.text())
        self.folder.setCursorPosition(0)
        self.open_folder = QPushButton(self.tr("Open"))
        self.open_folder.setAccessibleName(self.tr("Open the folder of saved states"))
        self.open_folder.clicked.connect(self._open_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.open_folder)
        self.used = QLabel(self.tr("Counting…"))
        self.used.setObjectName("kv_state_used")
        self.used.setWordWrap(True)
        self.used.setAccessibleName(self.tr("Space used by saved states"))
        self.used.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.delete = QPushButton(self.tr("&Delete saved states…"))
        self.delete.setObjectName("kv_state_delete")
        self.delete.setAccessibleName(self.tr("Delete saved states"))
        self.delete.setEnabled(False)  # until counted
        self.delete.clicked.connect(self.delete_states)
        used_row = QHBoxLayout()
        used_row.addWidget(self.used, 1)
        used_row.addWidget(self.delete)
        self._usage: saved_states.StatesUsage | None = None
        form = QFormLayout(box)
        form.addRow(intro)
        budget_row = QHBoxLayout()
        budget_row.addWidget(self.budget)
        budget_row.addStretch(1)
        budget_label = QLabel(self.tr("Disk &space:"))
        budget_label.setBuddy(self.budget)
        form.addRow(budget_label, budget_row)
        folder_label = QLabel(self.tr("&Folder:"))
        folder_label.setBuddy(self.folder)
        form.addRow(folder_label, folder_row)
        form.addRow(self.tr("Used:"), used_row)
        return box

    def refresh_usage(self) -> None:
        """Count the folder off the GUI thread; the label and the button follow."""

        def done(result: saved_states.StatesUsage) -> None:
            if shiboken6.isValid(self):  # the dialog may have closed meanwhile
                self._usage = result
                self._show_usage_text()

        def failed(e: Exception) -> None:
            if shiboken6.isValid(self):
                self.used.setText(self.tr("Could not read the folder: {error}").format(error=e))

        self.window_.run_in_background(saved_states.usage, done, failed)

    def _show_usage_text(self) -> None:
        u = self._usage
        if u is None:
            return
        if u.states == 0:
            text = self.tr("Nothing saved")
        else:
            text = (
                self.tr("{used} MB in 1 saved conversation state")
                if u.states == 1
                else self.tr("{used} MB in {n} saved conversation states")
            ).format(used=_mb(u.bytes), n=u.states)
            if self.budget.value() > 0:
                text = self.tr("{text} (of {budget} MB)").format(
                    text=text, budget=f"{self.budget.value():,}"
                )
        self.used.setText(text)
        self.delete.setEnabled(u.states > 0)

    def delete_states(self) -> None:
        u = self._usage
        if u is None or u.states == 0:
            return
        answer = QMessageBox.question(
            self,
            self.tr("Delete saved states"),
            (
                self.tr("Delete the saved conversation state ({used} MB)?")
                if u.states == 1
                else self.tr("Delete the {n} saved conversation states ({used} MB)?")
            ).format(n=u.states, used=_mb(u.bytes))
            + "\n\n"
            + self.tr(
                "No chat is deleted: a conversation whose state is gone is read again the "
                "next time it is answered, which takes longer."
            ),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        self.delete.setEnabled(False)
        self.used.setText(self.tr("Deleting…"))
        session = self.window_.session
        session.bridge.when_done(
            saved_states.clear(session.service), self._deleted, self._delete_failed
        )

    def _deleted(self, n: int) -> None:
        log.info("settings: %d saved KV states deleted", n)
        if shiboken6.isValid(self):
            self.refresh_usage()

    def _delete_failed(self, e: BaseException) -> None:
        if shiboken6.isValid(self):
            self.used.setText(self.tr("Could not delete the saved states: {error}").format(error=e))
            self.delete.setEnabled(True)

    def _open_folder(self) -> None:
        folder = saved_states.state_folder()
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    # -- prefill while typing --------------------------------------------------------------

    def _prefill_group(self) -> QGroupBox:
        box = QGroupBox(self.tr("Prefill while typing"))
        self.prefill = QCheckBox(self.tr("&Read the conversation while I type"))
        self.prefill.setObjectName("prefill_while_typing")
        self.prefill.setAccessibleDescription(
            self.tr(
                "When a chat is opened and while you type, the model reads the conversation "
                "and your words in the background, so the answer starts sooner after Enter. "
                "The answer is the same either way."
            )
        )
        self.prefill.setToolTip(self.prefill.accessibleDescription())
        v = QVBoxLayout(box)
        v.addWidget(self.prefill)
        v.addWidget(
            self._note(
                self.tr(
                    "Uses the processor while you type; the answer itself is the same either way."
                )
            )
        )
        return box

    # -- speculative decoding --------------------------------------------------------------

    def _speculation_group(self) -> QGroupBox:
        box = QGroupBox(self.tr("Speculative decoding"))
        self.mode = QComboBox()
        self.mode.setObjectName("speculative")
        for value, label in zip(
            MODES, (self.tr("Off"), self.tr("Prompt lookup"), self.tr("Draft model")), strict=True
        ):
            self.mode.addItem(label, value)
        self.mode.setAccessibleName(self.tr("Speculative decoding"))
        self.mode.setAccessibleDescription(
            self.tr(
                "Guess a few tokens ahead and let the model check them in one step. Prompt "
                "lookup copies them from earlier in the conversation (quoting, rewriting "
                "code); a draft model, a small model with the same vocabulary, writes them."
            )
        )
        self.mode.setToolTip(self.mode.accessibleDescription())
        self.draft = QComboBox()
        self.draft.setObjectName("draft_model")
        self.draft.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.draft.setMinimumContentsLength(16)
        self.draft.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.draft.setAccessibleName(self.tr("Draft model"))
        name = Path(self.main).name if self.main else ""
        self.draft.setAccessibleDescription(
            self.tr("The small model that drafts for {model}.").format(model=name)
            if name
            else self.tr("Open a model first: a draft model is chosen for each model.")
        )
        self.draft.setToolTip(self.draft.accessibleDescription())
        self.draft_label = QLabel(
            self.tr("Dr&aft for {model}:").format(model=shortened(name))
            if name
            else self.tr("Dr&aft model:")
        )
        self.draft_label.setBuddy(self.draft)
        self.problem = QLabel()
        self.problem.setObjectName("speculative_problem")
        self.problem.setWordWrap(True)
        self.problem.hide()
        hint = self._note(
            self.tr(
                "Off by default. On a 2-core computer, prompt lookup wrote answers that copy "
                "text (code edits, quotes) about 1.2 times as fast and others at the same "
                "speed; a draft model was slower. Either one loads the model with flash "
                "attention, so answers can differ slightly from the default; the drafts "
                "never change them. A new choice loads the model again."
            )
        )
        hint.setObjectName("speculative_hint")
        form = QFormLayout(box)
        form.addRow(self.tr("&Mode:"), self.mode)
        form.addRow(self.draft_label, self.draft)
        form.addRow(self.problem)
        form.addRow(hint)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.draft.currentIndexChanged.connect(self._draft_changed)
        return box

    def _scan_library(self) -> None:
        """The library's chat models, off the GUI thread (as the model picker lists them)."""
        w = self.window_

        def scan() -> list[tuple[str, str]]:
            library = catalog.open_library(w.settings.models_dir, w.paths.data)
            chat = catalog.models_of_kind(library, catalog.DetailsCache(), embedding=False)
            return [(str(m.path), m.name) for m in chat]

        def done(models: list[tuple[str, str]]) -> None:
            if shiboken6.isValid(self):
                self._fill_drafts(models)

        w.run_in_background(scan, done, lambda e: log.warning("draft model list: %s", e))

    def _fill_drafts(self, models: list[tuple[str, str]]) -> None:
        chosen = self.draft.currentData()
        self.draft.blockSignals(True)
        self.draft.clear()
        self.draft.addItem(self.tr("(choose a model)"), None)
        for path, label in models:
            self.draft.addItem(label, path)
        if chosen and self.draft.findData(chosen) < 0:  # set by hand, not in the library
            self.draft.addItem(Path(chosen).name, chosen)
        self.draft.setCurrentIndex(max(0, self.draft.findData(chosen)))
        self.draft.blockSignals(False)
        self._draft_changed()

    def _mode_changed(self) -> None:
        drafting = self.mode.currentData() == "draft"
        self.draft.setEnabled(drafting and self.main is not None)
        self.draft_label.setEnabled(drafting)
        self._draft_changed()

    def _draft_changed(self) -> None:
        """Check the vocabulary of the draft chosen, off the GUI thread."""
        self._show_problem("")
        pair = self._pair()
        if pair is None or pair in self._vocab:
            self._show_problem(self._vocab.get(pair, "") if pair else "")
            return
        model, draft = pair

        def done(why: str) -> None:
            if shiboken6.isValid(self):
                self._vocab[pair] = why
                if self._pair() == pair:
                    self._show_problem(why)

        def failed(e: Exception) -> None:
            done(_refusal_text(e))

        self.window_.run_in_background(lambda: machine.draft_refusal(model, draft), done, failed)

    def _pair(self) -> tuple[str, str] | None:
        draft = self.draft.currentData()
        if self.mode.currentData() != "draft" or not self.main or not draft:
            return None
        return self.main, str(draft)

    def _show_problem(self, text: str) -> None:
        self.problem.setText(text)
        self.problem.setVisible(bool(text))
        if text:
            colour = hued_text(self.palette(), ERROR_HUE).name()
            self.problem.setStyleSheet(f"color: {colour};")

    def refusal(self) -> str:
        """Why the values cannot be saved (one line, shown on the page), or ""."""
        why = ""
        if self.mode.currentData() == "draft":
            draft = self.draft.currentData()
            if not self.main:
                why = self.tr("Open a model first: a draft model is chosen for each model.")
            elif not draft:
                why = self.tr("Choose the draft model for {model}.").format(
                    model=Path(self.main).name
                )
            elif not Path(draft).is_file():
                why = self.tr("The draft model {path} is not there.").format(path=draft)
            else:
                pair = (self.main, str(draft))
                if pair not in self._vocab:  # OK came before the check: it is quick
                    try:
                        self._vocab[pair] = machine.draft_refusal(*pair)
                    except (UserError, OSError) as e:
                        self._vocab[pair] = _refusal_text(e)
                why = self._vocab[pair]
        self._show_problem(why)
        return why

    # -- values -------------------------------------------------------------------------

    def load(self, s: Settings) -> None:
        self.budget.setValue(s.kv_state_disk_mb)
        self.prefill.setChecked(s.prefill_while_typing)
        draft = s.draft_models.get(Path(self.main).name) if self.main else None
        self.draft.blockSignals(True)
        self.draft.clear()
        self.draft.addItem(self.tr("(choose a model)"), None)
        if draft:
            self.draft.addItem(Path(draft).name, draft)
            self.draft.setCurrentIndex(1)
        self.draft.blockSignals(False)
        self.mode.setCurrentIndex(max(0, self.mode.findData(s.speculative)))
        self._mode_changed()

    def apply(self, s: Settings) -> None:
        budget_before = s.kv_state_disk_mb
        name = Path(self.main).name if self.main else None
        spec_before = (s.speculative, s.draft_models.get(name) if name else None)
        s.kv_state_disk_mb = self.budget.value()
        s.prefill_while_typing = self.prefill.isChecked()
        s.speculative = str(self.mode.currentData())
        draft = self.draft.currentData()
        if name and draft:
            s.draft_models = {**s.draft_models, name: str(draft)}
        spec_after = (s.speculative, s.draft_models.get(name) if name else None)
        # after the dialog has validated and saved (the window outlives the page)
        window = self.window_
        if s.kv_state_disk_mb != budget_before:
            mb = s.kv_state_disk_mb
            QTimer.singleShot(0, window, lambda: _apply_budget(window, mb))
        if spec_after != spec_before:
            QTimer.singleShot(0, window, lambda: reload_for_speculation(window))
        QTimer.singleShot(0, self, self.refresh_usage)

    def _note(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setWordWrap(True)
        label.setEnabled(False)  # drawn as a hint, as the other pages' notes
        label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        return label


def _refusal_text(e: BaseException) -> str:
    text = getattr(e, "message", None) or str(e)
    return str(text).splitlines()[0] if text else type(e).__name__


def _apply_budget(window: MainWindow, mb: int) -> None:
    """The loaded model's states on disk take the new budget now (a load takes it from
    the settings)."""
    session = window.session
    try:
        fut = saved_states.set_budget(session.service, mb)
    except RuntimeError as e:  # the service is shutting down
        log.debug("budget not applied: %s", e)
        return
    session.bridge.when_done(fut, lambda _took: None, lambda e: log.warning("budget: %s", e))


def reload_for_speculation(window: MainWindow) -> None:
    """Speculative decoding is chosen when a model loads: load the model in use again,
    or say when the change applies if an answer is being written."""
    session = window.session
    model = session.model
    if model is None or not model.ref.is_local:
        return
    if session.busy:
        window.show_info(
            QCoreApplication.translate(
                "SpeedSettingsPage",
                "Speculative decoding changes when the model is loaded again.",
            ),
            action=(
                QCoreApplication.translate("SpeedSettingsPage", "Load again"),
                lambda: reload_for_speculation(window),
            ),
        )
        return
    # the projector the user picked by hand, if any, stays
    session.open_model(model.ref.name, session.chosen_projector(model.ref.name))


def install(window: MainWindow) -> None:
    add_settings_page(window, lambda settings: SpeedSettingsPage(settings, window))


__all__ = ["SpeedSettingsPage", "install", "main_model", "reload_for_speculation"]
