"""Per-model chat template editor: Jinja text on the left, a live preview of the prompt
for the current conversation on the right (special tokens highlighted, token count),
errors with their line numbers, reset to the model's own template, save.

The template is saved into Settings.user_templates[model file name] only when it renders:
a broken edit never replaces the working template.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.errors import TemplateError
from chatapp.core.prompting import build_prompt
from chatapp.core.settings import Settings
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.gui.prompt_view import SpecialTokenHighlighter, monospace, show_whitespace
from chatapp.gui.theme import ERROR_HUE, hued_text

log = logging.getLogger(__name__)

PREVIEW_DELAY_MS = 250
PREVIEW_TIME_LIMIT_S = 1.0

# prepare(template_text, on_done(PreparedPrompt), on_error(exception)): the chat service's
# prompt for the conversation with this template, delivered on the GUI thread
Prepare = Callable[[str, Callable[[Any], None], Callable[[BaseException], None]], None]


class TemplateEditor(QDialog):
    def __init__(
        self,
        model_file: str,
        metadata: dict[str, Any],
        settings: Settings,
        save_settings: Callable[[], None],
        *,
        messages: list[dict[str, Any]] | None = None,
        system_prompt: str = "",
        bos_token: str = "",
        eos_token: str = "",
        prepare: Prepare | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Chat template: {file}").format(file=model_file))
        self.resize(1100, 640)
        self.model_file = model_file
        self._metadata = metadata
        self._settings = settings
        self._save_settings = save_settings
        self._messages = messages or [{"role": "user", "content": "Hello!"}]
        self._system_prompt = system_prompt
        self._bos, self._eos = bos_token, eos_token
        self._prepare = prepare
        self._asked = 0  # the latest preview asked of prepare(); older answers are dropped
        self._closed = False  # an answer arriving after the dialog closed is dropped
        self.finished.connect(self._on_closed)
        self.default_template = resolve_template(metadata, eos_token=eos_token)
        self.last_good_text: str | None = None  # the last text that rendered
        self.error: str = ""

        layout = QVBoxLayout(self)
        self.source_label = QLabel()
        layout.addWidget(self.source_label)
        split = QSplitter()
        self.editor = QPlainTextEdit()
        self.editor.setFont(monospace())
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setAccessibleName(self.tr("Chat template"))
        self.editor.setAccessibleDescription(
            self.tr("The Jinja template; the preview follows as you type")
        )
        self.preview = QPlainTextEdit()
        self.preview.setAccessibleName(self.tr("Rendered prompt preview"))
        self.preview.setReadOnly(True)
        self.preview.setFont(monospace())
        self.highlighter = SpecialTokenHighlighter(
            self.preview.document(), (bos_token, eos_token, *self.default_template.stop_markers)
        )
        split.addWidget(self.editor)
        split.addWidget(self.preview)
        layout.addWidget(split, 1)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.whitespace_box = QCheckBox(self.tr("Show whitespace"))
        self.whitespace_box.toggled.connect(lambda on: show_whitespace(self.preview, on))
        buttons.addButton(self.whitespace_box, QDialogButtonBox.ButtonRole.ActionRole)
        self.reset_button = QPushButton(self._reset_label())
        self.reset_button.clicked.connect(self.reset_to_default)
        buttons.addButton(self.reset_button, QDialogButtonBox.ButtonRole.ResetRole)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        layout.addWidget(buttons)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self.refresh_preview)
        saved = settings.user_templates.get(model_file)
        self.editor.setPlainText(saved if saved else self.default_template.text)
        self.editor.textChanged.connect(self._timer.start)
        self.refresh_preview()

    def _reset_label(self) -> str:
        source = self.default_template.source
        if source == "gguf":
            return self.tr("Reset to the model file's template")
        if source == "preset":
            return self.tr("Reset to the {name} preset's template").format(
                name=self.default_template.name
            )
        return self.tr("Reset to the default template")

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)
        self.refresh_preview()

    def reset_to_default(self) -> None:
        self.set_text(self.default_template.text)

    def refresh_preview(self) -> None:
        """Render the current text; on error keep the last good preview and say why."""
        self._timer.stop()
        text = self.text()
        is_default = text == self.default_template.text
        self.source_label.setText(
            (
                self.tr("Using the {source} template ({name} is the model's default).")
                if is_default
                else self.tr("Using your own template ({name} is the model's default).")
            ).format(source=self.default_template.source, name=self.default_template.name)
        )
        template = ChatTemplate("editing", "user", text, self.default_template.stop_markers)
        self._clear_error_line()
        try:
            result = build_prompt(
                template,
                self._system_prompt,
                self._messages,
                bos_token=self._bos,
                eos_token=self._eos,
                time_limit=PREVIEW_TIME_LIMIT_S,
            )
        except TemplateError as e:
            self.error = e.message
            self.status.setText(e.message)
            self.status.setStyleSheet(f"color: {hued_text(self.palette(), ERROR_HUE).name()}")
            self._mark_error_line(e)
            self.save_button.setEnabled(False)
            return
        self.error = ""
        self.last_good_text = text
        self.save_button.setEnabled(True)
        if self._prepare is None:
            self._show_preview(result.text, None, result.warning)
            return
        # The preview shows what the service would send with this template: the same
        # function as a send, the model's tokenizer, the BOS it adds.
        self._asked += 1
        asked = self._asked
        self.status.setText(self.tr("Preparing the prompt…"))

        def done(prepared: Any) -> None:
            if asked == self._asked and not self._closed:
                self._show_preview(prepared.text, len(prepared.tokens), prepared.warning)

        def failed(e: BaseException) -> None:
            if asked == self._asked and not self._closed:
                self.error = str(e)
                self.status.setText(str(e))
                self.status.setStyleSheet("color: #b00020")
                self.save_button.setEnabled(False)

        self._prepare(text, done, failed)

    def _on_closed(self, _result: int) -> None:
        self._closed = True

    def _show_preview(self, text: str, count: int | None, warning: str) -> None:
        if self.preview.toPlainText() != text:
            self.preview.setPlainText(text)
        parts = [self.tr("{n:,} characters").format(n=len(text))]
        parts.append(
            self.tr("{n:,} tokens").format(n=count)
            if count is not None
            else self.tr("tokens: not counted")
        )
        if warning:
            parts.append(warning)
        self.status.setText(" · ".join(parts))
        self.status.setStyleSheet("")

    def _mark_error_line(self, error: TemplateError) -> None:
        lineno = getattr(error, "lineno", None)
        if not lineno:
            return
        block = self.editor.document().findBlockByLineNumber(int(lineno) - 1)
        if not block.isValid():
            return
        selection = QTextEdit.ExtraSelection()
        selection.format.setBackground(QColor("#ffd7d7"))
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = QTextCursor(block)
        self.editor.setExtraSelections([selection])

    def _clear_error_line(self) -> None:
        self.editor.setExtraSelections([])

    def save(self) -> None:
        """Store the template for this model file, if it renders; the model's own
        template is stored as no override at all."""
        self.refresh_preview()
        if self.error:
            return  # the previous template stays in use
        text = self.text()
        if text == self.default_template.text or not text.strip():
            self._settings.user_templates.pop(self.model_file, None)
        else:
            self._settings.user_templates[self.model_file] = text
        self._save_settings()
        self.accept()
