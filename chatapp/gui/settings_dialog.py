"""File > Settings… (Ctrl+,): models folder, hardware, defaults for new chats, appearance,
privacy, and pages that other parts of the app add.

The dialog edits the window's one Settings object in place (the chat session reads the
same object), validates it with core.settings.validated, saves it and applies the
appearance at once. Hardware values apply the next time a model is loaded.

Extension point: another extension (e.g. the local API server) adds a page with
`add_settings_page(window, factory)`; `factory(settings)` returns a SettingsPage (a title,
a widget, and apply(settings) called on OK/Apply; optionally refusal() -> a reason, which
keeps the dialog open and saves nothing). Pages are built each time the dialog opens, so
the order of installation does not matter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence, QValidator
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import settings as cs
from chatapp.core.gpu_fit import AUTO, GpuLayers
from chatapp.core.settings import Settings, max_threads, validated
from chatapp.gui.i18n import QT_TRANSLATE_NOOP
from chatapp.gui.theme import apply_appearance

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

# marked for lupdate here, translated where shown (context "SettingsDialog")
PRIVACY_TEXT = QT_TRANSLATE_NOOP(
    "SettingsDialog",
    "<p><b>Your conversations stay on this computer.</b> Models run here, with llama.cpp; "
    "chats, prompts and settings are stored only in chatapp's folders on this computer.</p>"
    "<p>chatapp uses the network for two things only: <b>searching for models</b> and "
    "<b>downloading them</b> from Hugging Face (huggingface.co), when you ask it to. "
    "A Hugging Face token, if you set one, is sent only to Hugging Face.</p>"
    "<p>There is <b>no telemetry</b>: no usage statistics, no crash reports, no update "
    "checks. Nothing else leaves this machine.</p>",
)
HARDWARE_NOTE = QT_TRANSLATE_NOOP(
    "SettingsDialog", "Hardware settings apply the next time a model is loaded."
)
THEMES = (
    ("system", QT_TRANSLATE_NOOP("SettingsDialog", "Follow the system")),
    ("light", QT_TRANSLATE_NOOP("SettingsDialog", "Light")),
    ("dark", QT_TRANSLATE_NOOP("SettingsDialog", "Dark")),
)


class SettingsPage(Protocol):
    title: str
    widget: QWidget

    def apply(self, settings: Settings) -> None: ...


PageFactory = Callable[[Settings], SettingsPage]


def add_settings_page(window: MainWindow, factory: PageFactory) -> None:
    """Register a page for the settings dialog (the extension point for other features)."""
    window.settings_pages.append(factory)


def _named(widget: QWidget, name: str, description: str = "") -> QWidget:
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
        widget.setToolTip(description)
    return widget


def _spin(lo: int, hi: int, name: str, description: str = "", special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    if special:
        box.setSpecialValueText(special)
    _named(box, name, description)
    return box


class GpuLayersSpin(QSpinBox):
    """GPU layers: Auto (as many as fit the GPU's free memory), All, or a number (0: the
    CPU only). Inside the box Auto is the value -2 and All -1; layers() and set_layers()
    speak the settings' values ("auto", -1, N)."""

    AUTO_VALUE = -2

    def __init__(self) -> None:
        super().__init__()
        self.setRange(self.AUTO_VALUE, cs.GPU_LAYERS_RANGE[1])

    def _words(self) -> dict[str, int]:
        return {self.tr("Auto").lower(): self.AUTO_VALUE, self.tr("All").lower(): -1}

    def layers(self) -> GpuLayers:
        return AUTO if self.value() == self.AUTO_VALUE else self.value()

    def set_layers(self, value: GpuLayers) -> None:
        self.setValue(self.AUTO_VALUE if value == AUTO else int(value))

    def textFromValue(self, value: int) -> str:
        if value == self.AUTO_VALUE:
            return self.tr("Auto")
        return self.tr("All") if value == -1 else str(value)

    def valueFromText(self, text: str) -> int:
        word = self._words().get(text.strip().lower())
        return word if word is not None else int(text.strip())

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        typed = text.strip().lower()
        if typed and not typed.lstrip("-").isdigit():
            words = self._words()
            if typed in words:
                return (QValidator.State.Acceptable, text, pos)
            if any(w.startswith(typed) for w in words):
                return (QValidator.State.Intermediate, text, pos)
            return (QValidator.State.Invalid, text, pos)
        return super().validate(text, pos)


def _double(lo: float, hi: float, step: float, name: str, description: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(2)
    _named(box, name, description)
    return box


class SettingsDialog(QDialog):
    def __init__(
        self,
        settings: Settings,
        *,
        default_models_dir: Path,
        pages: list[SettingsPage] | None = None,
        on_apply: Callable[[list[str]], None] = lambda _changed: None,
        physical_cores: int | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Settings"))
        self.settings = settings
        self.default_models_dir = default_models_dir
        self.pages = list(pages or [])
        self.on_apply = on_apply
        self.physical_cores = physical_cores
        self.tabs = QTabWidget()
        self.tabs.addTab(self._models_page(), self.tr("Models && hardware"))
        self.tabs.addTab(self._new_chats_page(), self.tr("New chats"))
        self.tabs.addTab(self._appearance_page(), self.tr("Appearance"))
        self.tabs.addTab(self._privacy_page(), self.tr("Privacy"))
        for page in self.pages:
            self.tabs.addTab(page.widget, page.title)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.Apply
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        apply_button = self.buttons.button(QDialogButtonBox.StandardButton.Apply)
        apply_button.clicked.connect(self.apply)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.buttons)
        self.load(settings)
        self.resize(620, 520)

    # -- pages ------------------------------------------------------------------------------

    def _models_page(self) -> QWidget:
        self.models_dir = QLineEdit()
        self.models_dir.setPlaceholderText(str(self.default_models_dir))
        self.models_dir.setClearButtonEnabled(True)
        _named(
            self.models_dir,
            self.tr("Models folder"),
            self.tr("Where downloaded models are kept. Empty: the default folder."),
        )
        browse = QPushButton(self.tr("Browse…"))
        _named(browse, self.tr("Choose the models folder"))
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.models_dir, 1)
        row.addWidget(browse)
        cores = (
            self.tr(" ({n} physical cores)").format(n=self.physical_cores)
            if self.physical_cores
            else ""
        )
        self.context = _spin(
            *cs.CONTEXT_RANGE,
            self.tr("Context length"),
            self.tr(
                "The most tokens a conversation can hold; a model's own trained length caps it. "
                "Longer needs more memory."
            ),
        )
        self.context.setSingleStep(1024)
        self.context.setSuffix(self.tr(" tokens"))
        self.gpu_layers = GpuLayersSpin()
        _named(
            self.gpu_layers,
            self.tr("GPU layers"),
            self.tr(
                "How many of the model's layers run on the GPU (GPU builds of llama.cpp): "
                "Auto offloads as many as fit the GPU's free memory (none on a CPU-only "
                "build), 0 runs on the CPU only, All offloads every layer."
            ),
        )
        self.threads = _spin(
            0,
            max_threads(),
            self.tr("CPU threads"),
            self.tr(
                "Threads llama.cpp uses. Automatic uses one per physical core, usually fastest."
            ),
            special=self.tr("Automatic") + cores,
        )
        form = QFormLayout()
        folder_label = QLabel(self.tr("Models &folder:"))
        folder_label.setBuddy(self.models_dir)  # a row holding a layout gets no buddy itself
        form.addRow(folder_label, row)
        form.addRow(self.tr("&Context length:"), self.context)
        form.addRow(self.tr("&GPU layers:"), self.gpu_layers)
        form.addRow(self.tr("CPU &threads:"), self.threads)
        note = QLabel(self.tr(HARDWARE_NOTE))
        note.setWordWrap(True)
        page = QWidget()
        v = QVBoxLayout(page)
        v.addLayout(form)
        v.addWidget(note)
        v.addStretch(1)
        return page

    def _new_chats_page(self) -> QWidget:
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setPlaceholderText(
            self.tr("For example: Answer briefly, in plain English.")
        )
        _named(
            self.system_prompt,
            self.tr("System prompt"),
            self.tr("Instructions given to the model at the start of every new chat."),
        )
        self.temperature = _double(
            *cs.TEMPERATURE_RANGE,
            0.05,
            self.tr("Temperature"),
            self.tr("Higher is more varied, 0 is greedy."),
        )
        self.top_p = _double(
            *cs.TOP_P_RANGE,
            0.01,
            self.tr("Top-p"),
            self.tr("Sample only from the most likely tokens whose probabilities add up to this."),
        )
        self.min_p = _double(
            *cs.MIN_P_RANGE,
            0.01,
            self.tr("Min-p"),
            self.tr("Drop tokens less likely than this fraction of the most likely one."),
        )
        self.top_k = _spin(
            *cs.TOP_K_RANGE,
            self.tr("Top-k"),
            self.tr("Sample from at most this many tokens."),
            special=self.tr("Off"),
        )
        self.repeat_penalty = _double(
            *cs.REPEAT_PENALTY_RANGE,
            0.05,
            self.tr("Repeat penalty"),
            self.tr("Above 1 discourages repetition."),
        )
        self.max_tokens = _spin(
            0,
            cs.MAX_TOKENS_RANGE[1],
            self.tr("Maximum answer length"),
            self.tr("The most tokens one answer may have."),
            special=self.tr("No limit"),
        )
        self.max_tokens.setSuffix(self.tr(" tokens"))
        self.seed = _spin(
            -1,
            cs.SEED_RANGE[1],
            self.tr("Seed"),
            self.tr("A fixed seed gives the same answer to the same prompt."),
            special=self.tr("Random"),
        )
        self.top_n = _spin(
            cs.TOP_N_RANGE[0],
            cs.TOP_N_RANGE[1],
            self.tr("Alternatives kept per token"),
            self.tr(
                "For every token the model writes, how many of the other candidates are kept "
                "with their probabilities (the heat map and Branch from here use them)."
            ),
            special=self.tr("None"),
        )
        form = QFormLayout()
        form.addRow(self.tr("&System prompt:"), self.system_prompt)
        form.addRow(self.tr("T&emperature:"), self.temperature)
        form.addRow(self.tr("Top-&p:"), self.top_p)
        form.addRow(self.tr("&Min-p:"), self.min_p)
        form.addRow(self.tr("Top-&k:"), self.top_k)
        form.addRow(self.tr("&Repeat penalty:"), self.repeat_penalty)
        form.addRow(self.tr("Maximum &answer length:"), self.max_tokens)
        form.addRow(self.tr("See&d:"), self.seed)
        form.addRow(self.tr("Alternati&ves kept per token:"), self.top_n)
        defaults = QPushButton(self.tr("Restore defaults"))
        _named(defaults, self.tr("Restore the defaults for new chats"))
        defaults.clicked.connect(self._restore_chat_defaults)
        page = QWidget()
        v = QVBoxLayout(page)
        v.addLayout(form)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(defaults)
        v.addLayout(row)
        return page

    def _appearance_page(self) -> QWidget:
        self.theme = QComboBox()
        for value, label in THEMES:
            self.theme.addItem(self.tr(label), value)
        _named(
            self.theme,
            self.tr("Theme"),
            self.tr("Light or dark colours; by default the system's choice."),
        )
        lo, hi = cs.FONT_SIZE_RANGE
        self.font_size = _spin(
            lo - 1,
            hi,
            self.tr("Chat font size"),
            self.tr("The size of the conversation's text."),
            self.tr("System size"),
        )
        self.font_size.setSuffix(self.tr(" pt"))
        form = QFormLayout()
        form.addRow(self.tr("&Theme:"), self.theme)
        form.addRow(self.tr("Chat &font size:"), self.font_size)
        page = QWidget()
        v = QVBoxLayout(page)
        v.addLayout(form)
        v.addStretch(1)
        return page

    def _privacy_page(self) -> QWidget:
        text = QLabel(self.tr(PRIVACY_TEXT))
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        text.setAccessibleName(self.tr("Privacy"))
        self.privacy_label = text
        page = QWidget()
        v = QVBoxLayout(page)
        v.addWidget(text)
        v.addStretch(1)
        return page

    # -- values -----------------------------------------------------------------------------

    def load(self, s: Settings) -> None:
        """Show the values of `s` in the widgets."""
        self.models_dir.setText(s.models_dir or "")
        self.context.setValue(s.context_limit)
        self.gpu_layers.set_layers(s.n_gpu_layers)
        self.threads.setValue(s.n_threads or 0)
        self.system_prompt.setPlainText(s.system_prompt)
        self._load_sampling(s)
        self.theme.setCurrentIndex(max(0, self.theme.findData(s.theme)))
        self.font_size.setValue(s.font_size or self.font_size.minimum())

    def _load_sampling(self, s: Settings) -> None:
        self.temperature.setValue(s.temperature)
        self.top_p.setValue(s.top_p)
        self.min_p.setValue(s.min_p)
        self.top_k.setValue(s.top_k)
        self.repeat_penalty.setValue(s.repeat_penalty)
        self.max_tokens.setValue(s.max_tokens or 0)
        self.seed.setValue(-1 if s.seed is None else s.seed)
        self.top_n.setValue(s.logprobs_top_n)

    def store(self, s: Settings) -> None:
        """Write the widgets' values into `s`."""
        s.models_dir = self.models_dir.text().strip() or None
        s.context_limit = self.context.value()
        s.n_gpu_layers = self.gpu_layers.layers()
        s.n_threads = self.threads.value() or None
        s.system_prompt = self.system_prompt.toPlainText()
        s.temperature = round(self.temperature.value(), 4)
        s.top_p = round(self.top_p.value(), 4)
        s.min_p = round(self.min_p.value(), 4)
        s.top_k = self.top_k.value()
        s.repeat_penalty = round(self.repeat_penalty.value(), 4)
        s.max_tokens = self.max_tokens.value() or None
        s.seed = None if self.seed.value() < 0 else self.seed.value()
        s.logprobs_top_n = self.top_n.value()
        s.theme = str(self.theme.currentData())
        size = self.font_size.value()
        s.font_size = None if size == self.font_size.minimum() else size

    def apply(self) -> bool:
        """Save what the pages show; False (nothing saved) when a page refuses a value:
        its `refusal()` returns the one-line reason, which the page shows itself."""
        for page in self.pages:
            refusal = getattr(page, "refusal", None)
            if refusal is not None and refusal():
                self.tabs.setCurrentWidget(page.widget)
                return False
        s = self.settings
        before = (s.context_limit, s.n_gpu_layers, s.n_threads)
        self.store(s)
        for page in self.pages:
            page.apply(s)
        for line in validated(s):
            log.warning("settings dialog: %s", line)
        changed = ["hardware"] if before != (s.context_limit, s.n_gpu_layers, s.n_threads) else []
        self.load(s)  # show what was kept after validation
        self.on_apply(changed)
        return True

    def accept(self) -> None:
        if self.apply():
            super().accept()

    def _restore_chat_defaults(self) -> None:
        defaults = Settings()
        self.system_prompt.setPlainText(defaults.system_prompt)
        self._load_sampling(defaults)

    def _browse(self) -> None:
        start = self.models_dir.text() or str(self.default_models_dir)
        folder = QFileDialog.getExistingDirectory(self, self.tr("Models folder"), start)
        if folder:
            self.models_dir.setText(folder)


class SettingsActions:
    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.dialog: SettingsDialog | None = None
        self.action = QAction(QCoreApplication.translate("SettingsActions", "&Settings…"), window)
        self.action.setObjectName("settings_action")
        self.action.setShortcut(QKeySequence("Ctrl+,"))
        self.action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.action.setStatusTip(
            QCoreApplication.translate(
                "SettingsActions", "Models folder, hardware, defaults for new chats, appearance"
            )
        )
        self.action.triggered.connect(self.show_dialog)
        window.menus["file"].addAction(self.action)
        window.settings_action = self.action

    def show_dialog(self) -> SettingsDialog:
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.raise_()
            self.dialog.activateWindow()
            return self.dialog
        factories = self.window.settings_pages
        pages = [factory(self.window.settings) for factory in factories]
        try:
            from chatapp.service.machine import physical_cores

            cores: int | None = physical_cores()
        except (ImportError, OSError):
            cores = None
        self.dialog = SettingsDialog(
            self.window.settings,
            default_models_dir=self.window.paths.models,
            pages=pages,
            on_apply=self._applied,
            physical_cores=cores,
            parent=self.window,
        )
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.destroyed.connect(self._forget)
        self.dialog.open()
        return self.dialog

    def _forget(self, *_: Any) -> None:
        self.dialog = None

    def _applied(self, changed: list[str]) -> None:
        self.window.save_settings()
        apply_appearance(self.window)
        if "hardware" in changed and self.window.model_info() is not None:
            self.window.show_info(QCoreApplication.translate("SettingsDialog", HARDWARE_NOTE))


def install(window: MainWindow) -> SettingsActions:
    actions = SettingsActions(window)
    window.settings_actions = actions
    notice = window.settings.notice
    if notice:
        # after the window's own start-up messages, so this one is the one left showing
        QTimer.singleShot(0, window, lambda: window.show_error(notice))
    return actions
