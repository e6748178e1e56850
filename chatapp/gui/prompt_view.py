"""The "Show prompt" dialog: exactly what the model receives next, as text with the
special tokens highlighted and, once tokenized, as token ids and pieces."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
)
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextOption,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from chatapp.gui.i18n import QT_TRANSLATE_NOOP
from chatapp.gui.theme import WARNING_HUE, hued_text

log = logging.getLogger(__name__)

# Shapes of special tokens across model families; exact tokens can be added per model.
SPECIAL_PATTERNS = (
    r"<\|[^<>|\s]{1,48}\|>",  # <|im_start|>, <|eot_id|>, <|end|>
    r"<｜[^<>｜]{1,48}｜>",  # DeepSeek's full-width bars
    r"<(?:start|end)_of_(?:turn|image)>",
    r"</?(?:s|bos|eos|pad|unk|think)>",
    r"\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|THINK)\]",
    r"<</?SYS>>",
)


def special_token_regex(extra: Iterable[str] = ()) -> re.Pattern[str]:
    exact = sorted({t for t in extra if t}, key=len, reverse=True)
    parts = [re.escape(t) for t in exact] + list(SPECIAL_PATTERNS)
    return re.compile("|".join(parts))


def special_spans(text: str, extra: Iterable[str] = ()) -> list[tuple[int, int]]:
    """(start, length) of every special token in the text."""
    return [(m.start(), m.end() - m.start()) for m in special_token_regex(extra).finditer(text)]


class SpecialTokenHighlighter(QSyntaxHighlighter):
    """Marks special tokens (role markers, turn ends) so the prompt's structure shows."""

    def __init__(
        self,
        document: Any,
        extra: Iterable[str] = (),
        text_spans: Sequence[tuple[int, int]] = (),
    ) -> None:
        super().__init__(document)
        self._regex = special_token_regex(extra)
        # message text that only looks like special tokens: it was tokenized as text
        self._text_spans = tuple(text_spans)
        self._format = QTextCharFormat()
        self._format.setForeground(QColor("#b0006d"))
        self._format.setBackground(QColor("#fbe3f1"))
        self._format.setFontWeight(QFont.Weight.Bold)

    def set_tokens(self, extra: Iterable[str]) -> None:
        self._regex = special_token_regex(extra)
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:
        at = self.currentBlock().position()
        for m in self._regex.finditer(text):
            a, b = at + m.start(), at + m.end()
            if any(s <= a and b <= e for s, e in self._text_spans):
                continue
            self.setFormat(m.start(), m.end() - m.start(), self._format)


def monospace() -> QFont:
    return QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)


def show_whitespace(editor: QPlainTextEdit, on: bool) -> None:
    """Mark spaces, tabs and line ends: in a prompt, whitespace is content."""
    option = editor.document().defaultTextOption()
    flags = QTextOption.Flag.ShowTabsAndSpaces | QTextOption.Flag.ShowLineAndParagraphSeparators
    option.setFlags(option.flags() | flags if on else option.flags() & ~flags)
    editor.document().setDefaultTextOption(option)


def visible_whitespace(piece: str) -> str:
    return piece.replace("\n", "\\n").replace("\t", "\\t").replace(" ", "·")


class TokenTableModel(QAbstractTableModel):
    """A thin adapter over a list of (token id, piece) pairs."""

    HEADERS = (
        "#",
        QT_TRANSLATE_NOOP("TokenTableModel", "Id"),
        QT_TRANSLATE_NOOP("TokenTableModel", "Piece"),
    )

    def __init__(self, tokens: Sequence[tuple[int, str]] = (), parent: Any = None) -> None:
        super().__init__(parent)
        self._tokens: list[tuple[int, str]] = list(tokens)

    def set_tokens(self, tokens: Sequence[tuple[int, str]]) -> None:
        self.beginResetModel()
        self._tokens = list(tokens)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._tokens)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._tokens):
            return None
        token_id, piece = self._tokens[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return (str(index.row()), str(token_id), visible_whitespace(piece))[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == 2:
            return repr(piece)
        return None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            role == Qt.ItemDataRole.DisplayRole
            and orientation == Qt.Orientation.Horizontal
            and 0 <= section < len(self.HEADERS)
        ):
            return self.tr(self.HEADERS[section])
        return None


class PromptView(QDialog):
    """Read-only view of a rendered prompt. Tokens arrive later (tokenizing may need the
    model's vocabulary loaded in the background): call set_tokens or set_tokens_error."""

    def __init__(
        self,
        text: str,
        *,
        tokens: Sequence[tuple[int, str]] | None = None,
        warning: str = "",
        template_name: str = "",
        special_tokens: Iterable[str] = (),
        text_spans: Sequence[tuple[int, int]] = (),
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Prompt"))
        self.resize(760, 560)
        self._text = text
        layout = QVBoxLayout(self)
        self._template_name = template_name
        self.summary = QLabel()
        self._update_summary(None)
        layout.addWidget(self.summary)
        self.warning = QLabel(warning)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(f"color: {hued_text(self.palette(), WARNING_HUE).name()}")
        self.warning.setVisible(bool(warning))
        layout.addWidget(self.warning)

        self.tabs = QTabWidget()
        self.text_view = QPlainTextEdit()
        self.text_view.setReadOnly(True)
        self.text_view.setFont(monospace())
        self.text_view.setPlainText(text)
        self.text_view.setAccessibleName(self.tr("Prompt text"))
        self.highlighter = SpecialTokenHighlighter(
            self.text_view.document(), special_tokens, text_spans
        )
        self.tabs.addTab(self.text_view, self.tr("Text"))

        self.token_model = TokenTableModel()
        self.token_table = QTableView()
        self.token_table.setModel(self.token_model)
        self.token_table.setAccessibleName(self.tr("Prompt tokens"))
        self.token_table.setFont(monospace())
        self.token_table.verticalHeader().setVisible(False)
        self.token_table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.tokens_status = QLabel(self.tr("Tokenizing…"))
        tokens_page = QWidget()
        tokens_layout = QVBoxLayout(tokens_page)
        tokens_layout.addWidget(self.tokens_status)
        tokens_layout.addWidget(self.token_table)
        self.tabs.addTab(tokens_page, self.tr("Tokens"))
        layout.addWidget(self.tabs)

        self.whitespace_box = QCheckBox(self.tr("Show whitespace"))
        self.whitespace_box.toggled.connect(lambda on: show_whitespace(self.text_view, on))
        layout.addWidget(self.whitespace_box)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = QPushButton(self.tr("Copy text"))
        self.copy_button.clicked.connect(self.copy_text)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        if tokens is not None:
            self.set_tokens(tokens)

    @property
    def text(self) -> str:
        return self._text

    def set_tokens(self, tokens: Sequence[tuple[int, str]]) -> None:
        self.token_model.set_tokens(tokens)
        self.tokens_status.setText(self.tr("{n} tokens").format(n=f"{len(tokens):,}"))
        self._update_summary(len(tokens))

    def _update_summary(self, n_tokens: int | None) -> None:
        parts = (
            [self.tr("Template: {name}").format(name=self._template_name)]
            if self._template_name
            else []
        )
        parts.append(self.tr("{n} characters").format(n=f"{len(self._text):,}"))
        if n_tokens is not None:
            parts.append(self.tr("{n} tokens").format(n=f"{n_tokens:,}"))
        self.summary.setText(" · ".join(parts))

    def set_tokens_error(self, message: str) -> None:
        self.tokens_status.setText(self.tr("Could not tokenize: {error}").format(error=message))

    def copy_text(self) -> None:
        QApplication.clipboard().setText(self._text)
