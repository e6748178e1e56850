"""The chat settings panel: this conversation's system prompt, sampling and context
policy, with named presets, and a line that says what the next answer will use.

A field left empty inherits (the model's default, then the app's); the placeholder shows
the inherited value. A value outside its range is refused at the field with the reason.
Changes are saved through the chat service and apply to the next answer. The context
meter's "+N with your message" lives here too: the draft is counted with the loaded
model's tokenizer as you type. install(window) adds it as a dock (GUI_EXTENSIONS).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.backend import ModelRef
from chatapp.core.chat_settings import (
    HARDWARE_KEY,
    HARDWARE_RANGES,
    MODEL_DEFAULTS_KEY,
    POLICIES,
    RANGES,
    BadValue,
    ChatSettings,
    check_hardware,
    check_value,
    describe,
    model_hardware,
    presets,
    set_model_entry,
)
from chatapp.core.gpu_fit import GpuLayers
from chatapp.gui.i18n import QT_TRANSLATE_NOOP
from chatapp.gui.wrapping import WrapButton

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

FIELDS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed", "max_tokens")
# marked for lupdate here, translated where shown (self.tr in ChatSettingsPanel)
LABELS = {
    "temperature": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Temperature"),
    "top_p": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Top-p"),
    "top_k": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Top-k"),
    "min_p": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Min-p"),
    "repeat_penalty": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Repeat penalty"),
    "seed": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Seed"),
    "max_tokens": QT_TRANSLATE_NOOP("ChatSettingsPanel", "Max tokens"),
}
COUNT_DELAY_MS = 300


def _caption(text: str, buddy: QWidget) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setBuddy(buddy)
    return label


class ChatSettingsPanel(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.chat = ChatSettings()
        self.conversation_id: str | None = None

        body = QWidget()
        body.setObjectName("chat_settings")
        lay = QVBoxLayout(body)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        form = QFormLayout()
        # a narrow panel (or a large font) puts each label above its field
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.system = QPlainTextEdit()
        self.system.setPlaceholderText(self.tr("No system prompt"))
        self.system.setAccessibleName(self.tr("System prompt of this chat"))
        self.system.setMaximumHeight(110)
        self.save_system = WrapButton(self.tr("Save system prompt"))
        self.save_system.setAccessibleName(self.tr("Save the system prompt"))
        self.save_system.clicked.connect(self._save_system)
        # whole-width rows: a label above its box, buttons as wide as the panel
        lay.addWidget(_caption(self.tr("System prompt"), self.system))
        lay.addWidget(self.system)
        lay.addWidget(self.save_system)
        self.preset = QComboBox()
        self.preset.setAccessibleName(self.tr("Sampling preset"))
        self.preset.activated.connect(self._apply_preset)
        lay.addWidget(_caption(self.tr("Preset"), self.preset))
        lay.addWidget(self.preset)
        em = body.fontMetrics().height()
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        for name in FIELDS:
            edit = QLineEdit()
            edit.setObjectName(f"chat_{name}")
            edit.setAccessibleName(self.tr(LABELS[name]))
            edit.setAccessibleDescription(RANGES[name][3])
            edit.setToolTip(RANGES[name][3])
            edit.editingFinished.connect(lambda n=name: self._field_done(n))
            edit.setMinimumWidth(em * 7)  # room for "default: 0.95"; else the label goes above
            err = QLabel()
            err.setObjectName(f"chat_{name}_error")
            err.setWordWrap(True)
            err.hide()
            self.fields[name], self.errors[name] = edit, err
            form.addRow(self.tr(LABELS[name]), edit)
            form.addRow(err)
        self.policy = QComboBox()
        self.policy.setAccessibleName(self.tr("When the conversation no longer fits the context"))
        for key, text in POLICIES.items():
            self.policy.addItem(text, key)
        self.policy.activated.connect(self._policy_chosen)
        lay.addLayout(form)
        lay.addWidget(_caption(self.tr("Context full"), self.policy))
        lay.addWidget(self.policy)
        self.model_defaults_button = WrapButton(self.tr("Make these the model's defaults"))
        self.model_defaults_button.setAccessibleName(
            self.tr("Make this chat's sampling the model's defaults")
        )
        self.model_defaults_button.clicked.connect(self._save_model_defaults)
        lay.addWidget(self.model_defaults_button)
        # this model's hardware: context length, GPU layers, threads (applied by a reload)
        self.model_title = QLabel()
        self.model_title.setWordWrap(True)
        lay.addWidget(self.model_title)
        hw = QFormLayout()
        hw.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        hw.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.hardware: dict[str, QLineEdit] = {}
        for name, label in (
            ("context_limit", self.tr("Context length")),
            ("n_gpu_layers", self.tr("GPU layers")),
            ("n_threads", self.tr("Threads")),
        ):
            edit = QLineEdit()
            edit.setObjectName(f"model_{name}")
            edit.setAccessibleName(self.tr("{label} for this model").format(label=label))
            edit.setToolTip(HARDWARE_RANGES[name][2])
            edit.setMinimumWidth(em * 7)
            self.hardware[name] = edit
            hw.addRow(label, edit)
        self.hardware_error = QLabel()
        self.hardware_error.setWordWrap(True)
        self.hardware_error.hide()
        hw.addRow(self.hardware_error)
        self.hardware_button = WrapButton(self.tr("Save for this model and reload it"))
        self.hardware_button.setAccessibleName(self.tr("Save the hardware settings for this model"))
        self.hardware_button.clicked.connect(self._save_hardware)
        lay.addLayout(hw)
        lay.addWidget(self.hardware_button)
        self.next_answer = QLabel()
        self.next_answer.setObjectName("next_answer")
        self.next_answer.setWordWrap(True)
        self.next_answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.next_answer.setAccessibleName(self.tr("What the next answer will use"))
        lay.addWidget(self.next_answer)
        lay.addStretch(1)

        for combo in (self.preset, self.policy):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(8)
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        # texts wrap to the width; what does not fit in the height scrolls
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(body)
        self.dock = QDockWidget(self.tr("Chat settings"), window)
        self.dock.setObjectName("chat_settings_dock")
        self.dock.setWidget(scroll)
        # sized by the font, not by its texts: opening it never widens the window
        em = body.fontMetrics().height()
        scroll.setMinimumWidth(em * 12)
        self.dock.setMaximumWidth(em * 26)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.toggle = self.dock.toggleViewAction()
        self.toggle.setText(self.tr("Chat &settings panel"))
        self.toggle.setShortcut(QKeySequence("Ctrl+Shift+S"))
        window.menus["view"].addAction(self.toggle)

        # the context meter's "+N tokens with your message"
        self.draft_label = QLabel()
        self.draft_label.setObjectName("draft_tokens")
        window.statusBar().addPermanentWidget(self.draft_label)
        self._count_timer = QTimer(self)
        self._count_timer.setSingleShot(True)
        self._count_timer.setInterval(COUNT_DELAY_MS)
        self._count_timer.timeout.connect(self._count_draft)
        self._counting = 0
        if hasattr(window, "input"):
            window.input.textChanged.connect(self._count_timer.start)

        s = self.session
        s.conversation_selected.connect(self._on_conversation)
        s.model_loaded.connect(lambda _m: self.refresh())
        s.reply_finished.connect(lambda _mid: self._on_conversation(s.conversation_id or ""))
        self._on_conversation(s.conversation_id or "")

    # -- showing ---------------------------------------------------------------------------

    def _on_conversation(self, conversation_id: str) -> None:
        self.conversation_id = conversation_id or None
        conv = self.window.store.get_conversation(conversation_id) if conversation_id else None
        self.chat = ChatSettings.from_meta(conv.meta if conv else None)
        self.system.setPlainText(conv.system_prompt if conv else self.window.settings.system_prompt)
        self.refresh()

    def refresh(self) -> None:
        has_chat = self.conversation_id is not None
        self.note.setText(
            self.tr("These settings belong to this chat and apply to its next answer.")
            if has_chat
            else self.tr("Start the chat first: new chats use the defaults from Settings.")
        )
        for w in (self.system, self.save_system, self.preset, self.policy, *self.fields.values()):
            w.setEnabled(has_chat)
        inherited = self._inherited()
        own = self.chat.overrides
        for name, edit in self.fields.items():
            value = own.get(name)
            edit.setText(
                "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
            )
            base = getattr(inherited, name) if inherited is not None else None
            edit.setPlaceholderText(
                self.tr("default")
                if base is None
                else self.tr("default: {value}").format(
                    value=f"{base:g}" if isinstance(base, float) else base
                )
            )
        self.preset.clear()
        own_values = self.chat.overrides
        known = presets(self.window.settings.extra)
        active = next((n for n, v in known.items() if v and _as_chat(v) == own_values), None)
        self.preset.addItem(
            self.tr("Custom (this chat's own values)")
            if own_values
            else self.tr("None (defaults)"),
            None,
        )
        for name in known:
            self.preset.addItem(name, name)
        self.preset.setCurrentIndex(max(0, self.preset.findData(active)) if active else 0)
        self.preset.setToolTip(
            self.tr("Preset in use: {name}").format(name=active)
            if active
            else self.tr("Choose a preset to apply its values to this chat")
        )
        self.policy.setCurrentIndex(max(0, self.policy.findData(self.chat.context_policy)))
        self._refresh_model()
        params = self._effective()
        self.next_answer.setText(
            self.tr("Next answer: {what}").format(what=describe(params))
            if params is not None
            else self.tr("Next answer: load a model first.")
        )

    def _ref(self) -> ModelRef | None:
        model = self.session.model
        return model.ref if model is not None else None

    def _inherited(self) -> Any:
        ref = self._ref()
        if ref is None:
            return self.window.settings.sampling()
        return self.session.service.sampling_for(ref, None)

    def _effective(self) -> Any:
        ref = self._ref()
        if ref is None:
            return None
        conv = (
            self.window.store.get_conversation(self.conversation_id)
            if self.conversation_id
            else None
        )
        if conv is not None:
            conv = conv.with_(meta={**conv.meta, "chat_settings": self.chat.to_json()})
        return self.session.service.sampling_for(ref, conv)

    # -- editing ---------------------------------------------------------------------------

    def _field_done(self, name: str) -> None:
        text = self.fields[name].text().strip()
        err = self.errors[name]
        try:
            value = None if not text else check_value(name, float(text))
        except ValueError as e:  # BadValue, or not a number at all
            reason = (
                str(e)
                if isinstance(e, BadValue)
                else self.tr("{name} must be a number").format(name=name)
            )
            err.setText(self.tr("Not saved: {reason}.").format(reason=reason))
            err.show()
            self.fields[name].setAccessibleDescription(
                self.tr("Not saved: {reason}").format(reason=reason)
            )
            return
        err.hide()
        self.fields[name].setAccessibleDescription(RANGES[name][3])
        if value == self.chat.overrides.get(name):
            return
        self.chat = self.chat.with_override(name, value)
        self._save()

    def _apply_preset(self, index: int) -> None:
        name = self.preset.itemData(index)
        if not name:
            return
        values = presets(self.window.settings.extra).get(name, {})
        chat = ChatSettings(context_policy=self.chat.context_policy)
        for k, v in values.items():
            chat = chat.with_override(k, v)
        self.chat = chat
        self._save()

    def _policy_chosen(self, index: int) -> None:
        self.chat = ChatSettings(self.chat.sampling, self.policy.itemData(index))
        self._save()

    def _save_system(self) -> None:
        if self.conversation_id:
            fut = self.session.service.set_chat_settings(
                self.conversation_id, system_prompt=self.system.toPlainText()
            )
            self.session.bridge.when_done(
                fut,
                lambda _c: self.window.show_info(
                    self.tr("System prompt saved: it applies to the next answer.")
                ),
                self._failed,
            )

    def _save(self) -> None:
        if not self.conversation_id:
            return
        fut = self.session.service.set_chat_settings(self.conversation_id, self.chat)
        self.session.bridge.when_done(fut, lambda _c: self.refresh(), self._failed)
        self.refresh()

    # -- this model ------------------------------------------------------------------------

    def _model_file(self) -> str | None:
        ref = self._ref()
        return Path(ref.name).name if ref is not None and ref.is_local else None

    def _refresh_model(self) -> None:
        model_file = self._model_file()
        s = self.window.settings
        self.model_title.setText(
            self.tr("This model ({file}): leave a field empty to use the app's setting.").format(
                file=model_file
            )
            if model_file
            else self.tr("Load a local model to give it its own hardware settings.")
        )
        own = model_hardware(s.extra, model_file) if model_file else {}
        app = {
            "context_limit": s.context_limit,
            "n_gpu_layers": s.n_gpu_layers,
            "n_threads": s.n_threads,
        }
        for name, edit in self.hardware.items():
            edit.setEnabled(model_file is not None)
            edit.setText(str(own[name]) if name in own else "")
            edit.setPlaceholderText(
                self.tr("app: {value}").format(
                    value=app[name] if app[name] is not None else self.tr("auto")
                )
            )
        self.hardware_button.setEnabled(model_file is not None)
        self.model_defaults_button.setEnabled(model_file is not None and bool(self.chat.overrides))

    def _save_hardware(self) -> None:
        model_file = self._model_file()
        if model_file is None:
            return
        values: dict[str, GpuLayers] = {}
        try:
            for name, edit in self.hardware.items():
                text = edit.text().strip()
                if text:
                    try:
                        value: float | str = float(text)
                    except ValueError:
                        value = text  # a word: "auto" GPU layers, or refused as not a number
                    checked = check_hardware(name, value)
                    if checked is not None:
                        values[name] = checked
        except ValueError as e:
            reason = (
                str(e) if isinstance(e, BadValue) else self.tr("each value must be a whole number")
            )
            self.hardware_error.setText(self.tr("Not saved: {reason}.").format(reason=reason))
            self.hardware_error.show()
            return
        self.hardware_error.hide()
        set_model_entry(self.window.settings.extra, HARDWARE_KEY, model_file, values)
        self.window.save_settings()
        model = self.session.model_info
        if model is not None and not self.session.busy:
            self.session.open_model(model.path)  # reload with the new settings

    def _save_model_defaults(self) -> None:
        model_file = self._model_file()
        if model_file is None:
            return
        extra = self.window.settings.extra
        set_model_entry(extra, MODEL_DEFAULTS_KEY, model_file, self.chat.overrides)
        self.window.save_settings()
        self.window.show_info(
            self.tr("New chats with {file} will use these sampling settings.").format(
                file=model_file
            )
        )

    def _failed(self, e: BaseException) -> None:
        self.window.show_error(self.tr("Could not save the chat settings: {error}").format(error=e))

    # -- the draft's tokens --------------------------------------------------------------------

    def _count_draft(self) -> None:
        text = self.window.input.toPlainText()
        if not text.strip() or self.session.model is None:
            self.draft_label.setText("")
            return
        self._counting += 1
        asked = self._counting

        def done(pairs: list[Any]) -> None:
            if asked == self._counting:
                self.draft_label.setText(
                    self.tr("+{n} tokens with your message").format(n=len(pairs))
                )

        def failed(e: BaseException) -> None:
            if asked == self._counting:
                self.draft_label.setText(str(e))

        self.session.tokenize(text, done, failed)


def _as_chat(values: dict[str, Any]) -> dict[str, Any]:
    """A preset's values as a chat holds them (checked and converted like a field)."""
    chat = ChatSettings()
    try:
        for k, v in values.items():
            chat = chat.with_override(k, v)
    except ValueError:
        return {}
    return chat.overrides


def install(window: MainWindow) -> ChatSettingsPanel:
    panel = ChatSettingsPanel(window)
    window.chat_settings_panel = panel
    return panel


__all__ = ["ChatSettingsPanel", "install"]
