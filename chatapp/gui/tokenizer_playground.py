"""View > Tokenizer playground…: paste text, see how the loaded model cuts it into tokens
(live, with a count), and compare with another downloaded model's tokenizer side by side.

The loaded model tokenizes through the chat service (its inference thread); the other
model's vocabulary is loaded on its own (engine.vocab, vocab-only: no weights) on a
background thread. Rendering is core.tokenview's; colours come from the palette.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer
from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import tokenview as tv
from chatapp.service.machine import tokenize_with

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

Tokens = list[tuple[int, bytes]]
# text, on_done(tokens), on_error(exception): the loaded model's tokenizer
TokenizeFn = Callable[[str, Callable[[Tokens], None], Callable[[BaseException], None]], None]


def palette_colors(widget: QWidget) -> tv.TokenColors:
    pal = widget.palette()
    base, hi = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Highlight)

    def mix(t: float) -> str:
        return QColor(
            round(base.red() + (hi.red() - base.red()) * t),
            round(base.green() + (hi.green() - base.green()) * t),
            round(base.blue() + (hi.blue() - base.blue()) * t),
        ).name()

    from chatapp.gui.chatview.contrast import parse_hex, to_hex
    from chatapp.gui.chatview.tokens import heat_hot

    text = pal.color(QPalette.ColorRole.Text)
    hot = heat_hot(parse_hex(base.name()), parse_hex(hi.name()), parse_hex(text.name()))
    return tv.TokenColors(
        text=text.name(),
        base=base.name(),
        even=mix(0.28),
        odd=mix(0.55),
        special=pal.color(QPalette.ColorRole.PlaceholderText).name(),
        hot=to_hex(hot),
    )


class _Side(QWidget):
    """One model's tokenization: a title line and the token view."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.head = QHBoxLayout()
        self.title = QLabel(title)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setAccessibleName(self.tr("Model"))
        self.head.addWidget(self.title, 1)
        lay.addLayout(self.head)
        self.count = QLabel("")
        lay.addWidget(self.count)
        self.view = QTextBrowser()
        self.view.setOpenLinks(False)
        lay.addWidget(self.view, 1)
        self.tokens: Tokens = []
        self.special: set[int] = set()


class TokenizerPlayground(QDialog):
    def __init__(
        self,
        tokenize_loaded: TokenizeFn | None,
        loaded_name: str,
        loaded_special: Callable[[int, bytes], bool],
        *,
        run_background: Callable[..., None],
        list_models: Callable[[], list[tuple[str, Path]]] | None = None,
        tokenize_file: Callable[[Path, str], tuple[str, Tokens, set[int]]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.tr("Tokenizer playground"))
        self.resize(1000, 640)
        self._tokenize_loaded = tokenize_loaded
        self._loaded_special = loaded_special
        self._run = run_background
        self._list_models = list_models
        self._tokenize_file = tokenize_file or _tokenize_file
        self._generation = 0
        self._file_lock = threading.Lock()
        self.other_path: Path | None = None

        lay = QVBoxLayout(self)
        explain = QLabel(tv.EXPLAIN_TOKENS + "\n\n" + tv.EXPLAIN_BASE_VS_ASSISTANT)
        explain.setWordWrap(True)
        lay.addWidget(explain)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText(self.tr("Paste or type any text…"))
        self.input.setMaximumHeight(self.fontMetrics().lineSpacing() * 7)
        lay.addWidget(self.input)

        split = QSplitter(Qt.Orientation.Horizontal)
        name = loaded_name or self.tr("no model loaded")
        self.left = _Side(self.tr("Loaded model: {name}").format(name=name))
        self.right = _Side(self.tr("Compare with:"))
        self.model_box = QComboBox()
        self.model_box.setMinimumContentsLength(24)
        self.choose_button = QPushButton(self.tr("Other file…"))
        self.right.head.addWidget(self.model_box, 2)
        self.right.head.addWidget(self.choose_button)
        split.addWidget(self.left)
        split.addWidget(self.right)
        lay.addWidget(split, 1)
        self.diff = QLabel("")
        self.diff.setWordWrap(True)
        lay.addWidget(self.diff)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # tokenize when typing pauses, not per keystroke
        self._timer.timeout.connect(self.refresh)
        self.input.textChanged.connect(self._timer.start)
        self.model_box.activated.connect(self._model_chosen)
        self.choose_button.clicked.connect(self._choose_file)
        if tokenize_loaded is None:
            self.left.count.setText(self.tr("Load a model to see its tokens."))
        self._fill_models()

    # -- models to compare with -------------------------------------------------------------

    def _fill_models(self) -> None:
        self.model_box.clear()
        self.model_box.addItem(self.tr("(none)"), None)
        if self._list_models is None:
            return
        self._run(self._list_models, self._models_listed, lambda e: log.warning("%s", e))

    def _models_listed(self, models: list[tuple[str, Path]]) -> None:
        for name, path in models:
            self.model_box.addItem(name, str(path))

    def _model_chosen(self, index: int) -> None:
        data = self.model_box.itemData(index)
        self.set_other_model(Path(data) if data else None)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("Compare with model"), "", self.tr("GGUF models (*.gguf)")
        )
        if path:
            self.model_box.addItem(Path(path).name, path)
            self.model_box.setCurrentIndex(self.model_box.count() - 1)
            self.set_other_model(Path(path))

    def set_other_model(self, path: Path | None) -> None:
        self.other_path = path
        at = self.model_box.findData(str(path) if path else None)
        if at < 0 and path is not None:
            self.model_box.addItem(path.name, str(path))
            at = self.model_box.count() - 1
        self.model_box.setCurrentIndex(max(at, 0))
        if path is None:
            self.right.tokens, self.right.special = [], set()
            self.right.count.setText("")
            self.right.view.clear()
            self.diff.setText("")
            return
        self.refresh()

    # -- tokenizing ---------------------------------------------------------------------------

    def set_text(self, text: str) -> None:
        self.input.setPlainText(text)
        self.refresh()

    def refresh(self) -> None:
        self._timer.stop()
        self._generation += 1
        gen, text = self._generation, self.input.toPlainText()
        if self._tokenize_loaded is not None:
            self._tokenize_loaded(
                text,
                lambda toks: self._loaded_done(gen, toks),
                lambda e: self.left.count.setText(
                    self.tr("Could not tokenize: {error}").format(error=e)
                ),
            )
        other = self.other_path
        if other is not None:
            self.right.count.setText(self.tr("Reading its vocabulary…"))

            def job() -> tuple[str, Tokens, set[int]]:
                with self._file_lock:  # one vocabulary load at a time
                    return self._tokenize_file(other, text)

            self._run(job, lambda r: self._other_done(gen, other, r), self._other_failed)

    def _loaded_done(self, gen: int, tokens: Tokens) -> None:
        if gen != self._generation:
            return  # the text changed since: a newer result is coming
        self.left.tokens = list(tokens)
        self.left.special = {t for t, d in tokens if self._loaded_special(t, d)}
        self._render()

    def _other_done(self, gen: int, path: Path, result: tuple[str, Tokens, set[int]]) -> None:
        if gen != self._generation or path != self.other_path:
            return
        name, tokens, special = result
        self.right.title.setText(self.tr("Compare with: {name}").format(name=name))
        self.right.tokens, self.right.special = list(tokens), set(special)
        self._render()

    def _other_failed(self, e: BaseException) -> None:
        self.right.count.setText(self.tr("Could not read that model: {error}").format(error=e))

    def _render(self) -> None:
        colors = palette_colors(self)
        marks_l, marks_r = tv.differing_indices(self.left.tokens, self.right.tokens)
        compare = self.other_path is not None and bool(self.right.tokens or self.left.tokens)
        for side, marks in ((self.left, marks_l), (self.right, marks_r)):
            spans = tv.spans_from_tokens(side.tokens, special=side.special)
            n = len(side.tokens)
            split = sum(1 for s in spans if s.note)
            extra = self.tr(", {n} holding part of a character").format(n=split) if split else ""
            count = self.tr("1 token") if n == 1 else self.tr("{n} tokens").format(n=n)
            side.count.setText(count + extra)
            side.view.setHtml(tv.token_view_html(spans, colors, marks if compare else ()))
        if self.other_path is None:
            self.right.count.setText("")
            self.right.view.clear()
            self.diff.setText("")
            return
        runs = tv.compare_tokenizations(self.left.tokens, self.right.tokens)
        a, b = len(self.left.tokens), len(self.right.tokens)
        if not runs:
            diff = self.tr("{a} against {b} tokens: both cut the text the same way.")
        elif len(runs) == 1:
            diff = self.tr(
                "{a} against {b} tokens. The two tokenizers cut the text differently in "
                "1 place (underlined)."
            )
        else:
            diff = self.tr(
                "{a} against {b} tokens. The two tokenizers cut the text differently in "
                "{n} places (underlined)."
            )
        self.diff.setText(diff.format(a=a, b=b, n=len(runs)))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # a theme switch: the token colours come from the palette, so draw them again
        # (later: the children get the new palette after this window)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "diff"):
            QTimer.singleShot(0, self, self._render)


def _tokenize_file(path: Path, text: str) -> tuple[str, Tokens, set[int]]:
    return tokenize_with(path, text)


# -- installing into the main window ---------------------------------------------------------


def install(window: MainWindow) -> QAction:
    """View > Tokenizer playground…"""
    action = QAction(
        QCoreApplication.translate("TokenizerPlayground", "&Tokenizer playground…"), window
    )
    action.triggered.connect(lambda: open_playground(window))
    window.menus["view"].addAction(action)
    window.tokenizer_playground_action = action
    return action


def open_playground(window: MainWindow) -> TokenizerPlayground:
    info = window.model_info()
    session = window.session

    def tokenize(text: str, done: Callable[[Tokens], None], fail: Callable[[Any], None]) -> None:
        session.tokenize(text, done, fail)

    def special(token_id: int, data: bytes) -> bool:
        return tv.is_special_token(info, token_id, data)

    def models() -> list[tuple[str, Path]]:
        from chatapp.core import catalog

        lib = catalog.open_library(window.settings.models_dir, window.paths.data)
        return [(m.name, m.path) for m in lib.models() if m.complete]

    dlg = TokenizerPlayground(
        tokenize if info is not None else None,
        info.name if info is not None else "",
        special,
        run_background=window.background.run,
        list_models=models,
        parent=window,
    )
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg
