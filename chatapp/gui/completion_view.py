"""View > Completion mode: a document the model continues as written.

A base model has only learned to continue text; a chat template would only confuse it.
Here the document is sent exactly as written, with nothing added but the BOS token the
model's vocabulary asks for (ChatService.continue_text), and the continuation streams into
the document. The same token displays as the message view: the document as tokens
(exactly the tokens sent, once sent), and the last continuation coloured by confidence,
sampled or raw, with each token's candidates on hover. The document is kept on disk
(completion.txt in the app's data folder) and comes back next time.

When a model without a chat template loads, the window suggests this mode.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from chatapp.core import tokenview as tv
from chatapp.core.atomic import write_text
from chatapp.core.logprobs import top_n_setting
from chatapp.gui.chatview.tokens import RAW, TEXT, TOKENS, display_labels
from chatapp.gui.message_tokens import _Live
from chatapp.gui.tokenizer_playground import palette_colors
from chatapp.service import TurnOptions

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

SHORTCUT = "Ctrl+Shift+M"
FILE_NAME = "completion.txt"


class _Relay(QObject):
    """Chunks from the inference thread to the GUI thread (a queued signal)."""

    chunk = Signal(object)

    def __init__(self, target: CompletionWindow) -> None:
        super().__init__()
        self.chunk.connect(target._on_chunk)


class CompletionWindow(QWidget):
    finished = Signal()  # a continuation ended (done, stopped or failed)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window, Qt.WindowType.Window)
        self.main = window
        self.setWindowTitle(self.tr("Completion mode"))
        self.setAccessibleName(self.tr("Completion mode"))
        self.resize(900, 640)
        self._cancel: threading.Event | None = None
        self._live: _Live | None = None
        self._sampling: dict[str, Any] = {}
        self._sent: list[tuple[int, bytes]] = []  # the tokens of the last send
        self._sent_ready = False  # their bytes are known
        self._sent_text = ""  # the document as it was sent
        self._generated = ""  # what the model added to it
        self.last_result: Any = None
        self._relay = _Relay(self)

        lay = QVBoxLayout(self)
        explain = QLabel(self.tr(tv.EXPLAIN_BASE_VS_ASSISTANT))
        explain.setWordWrap(True)
        lay.addWidget(explain)
        self.model_line = QLabel()
        self.model_line.setWordWrap(True)
        lay.addWidget(self.model_line)

        self.stack = QStackedWidget()
        self.editor = QPlainTextEdit()
        self.editor.setAccessibleName(self.tr("Document"))
        self.editor.setPlaceholderText(
            self.tr("Write the start of a document; the model continues it (Ctrl+Enter).")
        )
        self.tokens_view = QTextBrowser()
        self.tokens_view.setAccessibleName(self.tr("The document as tokens"))
        self.tokens_view.setOpenLinks(False)
        self.stack.addWidget(self.editor)
        self.stack.addWidget(self.tokens_view)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        lay.addWidget(self.legend)
        lay.addWidget(self.stack, 1)

        controls = QHBoxLayout()
        self.display = QComboBox()
        self.display.setAccessibleName(self.tr("Show the document as"))
        for key, label in display_labels().items():
            self.display.addItem(label, key)
        self.display.currentIndexChanged.connect(lambda _i: self.redraw())
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(1, 8192)
        self.max_tokens.setValue(200)
        self.max_tokens.setPrefix(self.tr("up to "))
        self.max_tokens.setSuffix(self.tr(" tokens"))
        self.max_tokens.setAccessibleName(self.tr("Most tokens to add"))
        sampling = window.settings.sampling()
        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.1)
        self.temperature.setValue(sampling.temperature)
        self.temperature.setPrefix(self.tr("temperature "))
        self.temperature.setAccessibleName(self.tr("Temperature"))
        self.temperature.setToolTip(self.tr(tv.EXPLAIN_SAMPLING))
        self.continue_button = QPushButton(self.tr("Continue"))
        self.continue_button.setToolTip(self.tr("The model continues the document (Ctrl+Enter)"))
        self.continue_button.clicked.connect(self.run)
        self.stop_button = QPushButton(self.tr("Stop"))
        self.stop_button.setToolTip(self.tr("Stop (Esc)"))
        self.stop_button.clicked.connect(self.stop)
        self.stop_button.setEnabled(False)
        for w in (self.display, self.max_tokens, self.temperature):
            controls.addWidget(w)
        controls.addStretch(1)
        controls.addWidget(self.continue_button)
        controls.addWidget(self.stop_button)
        lay.addLayout(controls)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setAccessibleName(self.tr("What was sent"))
        lay.addWidget(self.status)

        QShortcut(QKeySequence("Ctrl+Return"), self, self.run)
        QShortcut(QKeySequence("Ctrl+Enter"), self, self.run)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, self.stop)
        window.session.model_loaded.connect(lambda _m: self._describe_model())
        window.tokens().tokenizer.ready.connect(self.redraw)
        self.editor.setPlainText(self._load_document())
        self._describe_model()
        self.redraw()

    # -- the document on disk ----------------------------------------------------------

    def _path(self) -> Path:
        return Path(self.main.paths.data) / FILE_NAME

    def _load_document(self) -> str:
        try:
            return self._path().read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as e:
            log.warning("completion document: %s", e)
            return ""

    def save_document(self) -> None:
        try:
            self._path().parent.mkdir(parents=True, exist_ok=True)
            write_text(self._path(), self.editor.toPlainText())
        except OSError as e:  # a full disk: the text stays in the window
            self.status.setText(self.tr("Could not save the document: {e}").format(e=e))

    def closeEvent(self, e: QCloseEvent) -> None:
        self.stop()
        self.save_document()
        super().closeEvent(e)

    # -- the model ---------------------------------------------------------------------

    def _describe_model(self) -> None:
        info = self.main.model_info()
        if info is None:
            self.model_line.setText(self.tr("No model loaded: open one to continue text."))
        elif not info.metadata.get("tokenizer.chat_template"):
            self.model_line.setText(
                self.tr("{name} is a base model (no chat template): this is its mode.").format(
                    name=info.name
                )
            )
        else:
            self.model_line.setText(
                self.tr(
                    "{name} has a chat template; here it is not used: your text is sent as written."
                ).format(name=info.name)
            )

    # -- running -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def run(self) -> bool:
        if self.running:
            return False
        session = self.main.session
        if session.model_info is None:
            self.status.setText(self.tr("Load a model first (File > Open model…)."))
            return False
        text = self.editor.toPlainText()
        if not text:
            self.status.setText(self.tr("Write something for the model to continue."))
            return False
        # this view's two fields over the app's and the model's settings (service.resolver)
        options = TurnOptions(
            overrides={
                "temperature": self.temperature.value(),
                "max_tokens": self.max_tokens.value(),
            }
        )
        assert session.model is not None
        sampling = session.service.turn_settings(session.model.ref, None, options).sampling
        self._cancel = threading.Event()
        self._live = _Live(self.main.tokens().special_token)
        self._sampling = sampling.as_dict()  # what shaped the sampled probabilities
        self._sent, self._sent_ready, self._sent_text, self._generated = [], False, text, ""
        self.editor.setReadOnly(True)
        self.continue_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.status.setText(self.tr("Continuing…"))
        future = session.service.continue_text(
            text,
            options=options,
            logprobs=max(1, top_n_setting(self.main.settings)),
            listener=self._relay.chunk.emit,  # on the inference thread: queued to here
            cancel=self._cancel,
        )
        session.bridge.when_done(future, self._done, self._failed)
        return True

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def _on_chunk(self, chunk: Any) -> None:
        if self._live is None:
            return
        self._live.add([chunk])
        if chunk.channel == "answer" and chunk.text:
            self._generated += chunk.text
            cursor = self.editor.textCursor()
            cursor.movePosition(cursor.MoveOperation.End)
            cursor.insertText(chunk.text)
            self.editor.setTextCursor(cursor)
            if self.stack.currentIndex() == 1:
                self.redraw()

    def _end(self) -> None:
        self._cancel = None
        self.editor.setReadOnly(False)
        self.continue_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.save_document()
        self.finished.emit()

    def _done(self, result: Any) -> None:
        self.last_result = result
        # the editor already holds the streamed text; the result is the whole of it
        if self._generated != result.text and self.editor.toPlainText() == (
            self._sent_text + self._generated
        ):
            self.editor.setPlainText(self._sent_text + result.text)
        self._generated = result.text
        ids = list(result.prompt.tokens)
        self._sent = [(t, b"") for t in ids]
        self._fill_sent_bytes(ids)
        stats = result.stats
        info = self.main.model_info()
        bos = bool(info and info.add_bos and ids)
        self.status.setText(
            self.tr(
                "Sent {n} tokens ({bos}your text, no template); the model added {k} tokens"
                " at {speed:.1f} tokens/s ({why})."
            ).format(
                n=len(ids),
                bos=self.tr("BOS + ") if bos else "",
                k=stats.completion_tokens,
                speed=stats.tokens_per_second,
                why=stats.finish_reason.value,
            )
        )
        self._end()
        self.redraw()

    def _fill_sent_bytes(self, ids: list[int]) -> None:
        def done(pairs: list[tuple[int, bytes]]) -> None:
            if [t for t, _ in pairs] == [t for t, _ in self._sent]:
                self._sent, self._sent_ready = list(pairs), True
                self.redraw()

        fut = self.main.session.service.describe_tokens(ids)
        self.main.session.bridge.when_done(fut, done, lambda e: log.warning("tokens: %s", e))

    def _failed(self, e: BaseException) -> None:
        self.status.setText(self.tr("The model could not continue: {e}").format(e=e))
        self._end()

    # -- displays ----------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return str(self.display.currentData())

    def spans(self) -> tuple[list[tv.TokenSpan], int]:
        """The document's tokens: those sent (exact) and the continuation's (with their
        probabilities) when the document is still what was sent plus what came back;
        else the loaded model's tokenization of the text. Also how many lead (sent)."""
        text = self.editor.toPlainText()
        live = self._live
        if (
            live is not None
            and live.spans
            and self._sent_ready
            and text == self._sent_text + self._generated
        ):
            tok = self.main.tokens().tokenizer
            lead = tv.spans_from_tokens(self._sent, lambda t: tok.is_special(t))
            n = len(lead)
            gen = live.spans
            gen = [replace(s, index=s.index + n) for s in gen]
            return lead + gen, n
        spans = self.main.tokens().tokenizer.spans(text) or []
        return spans, len(spans)

    def redraw(self) -> None:
        mode = self.mode
        if mode == TEXT:
            self.stack.setCurrentIndex(0)
            self.legend.setText("")
            return
        self.stack.setCurrentIndex(1)
        colors = palette_colors(self.tokens_view)
        tokenizer = self.main.tokens().tokenizer
        spans, lead = self.spans()
        if not spans and not tokenizer.available:
            self.legend.setText(tokenizer.unavailable)
            self.tokens_view.setHtml("")
            return
        if mode == TOKENS:
            self.legend.setText(
                self.tr("{n} tokens. ").format(n=len(spans)) + self.tr(tv.EXPLAIN_TOKENS)
            )
            body = tv.token_view_html(spans, colors)
        else:
            raw = mode == RAW
            self.legend.setText(tv.legend_html(colors, self._sampling or None, raw=raw))
            body = tv.heatmap_html(spans, colors, raw=raw)
            if lead == len(spans):
                body = (
                    "<p><i>"
                    + self.tr("Continue the document to see the model's confidence.")
                    + "</i></p>"
                    + body
                )
        self.tokens_view.setHtml(body)
        bar = self.tokens_view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        # a theme switch: the token colours come from the palette, so draw them again
        # (later: the children get the new palette after this window)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "status"):
            QTimer.singleShot(0, self, self.redraw)


def open_completion(window: MainWindow) -> CompletionWindow:
    w = window.completion_window
    if w is None:
        w = CompletionWindow(window)
        window.completion_window = w
    w.show()
    w.raise_()
    w.activateWindow()
    return w


def _suggest(window: MainWindow, _loaded: Any) -> None:
    from chatapp.gui.model_picker import is_base_model

    info = window.model_info()
    if info is None or info.path.startswith("remote:"):
        return
    has_template = bool(info.metadata.get("tokenizer.chat_template"))
    if not (
        is_base_model(Path(info.path).name, has_template) or is_base_model(info.name, has_template)
    ):
        return
    text = window.tr(
        "{name} looks like a base model (it has no chat template of its own): it "
        "continues text rather than answering. Completion mode (View > Completion mode, "
        "{key}) suits it better."
    ).format(name=info.name, key=SHORTCUT)
    window.show_info(
        text, action=(window.tr("Open completion mode"), lambda: open_completion(window))
    )
    notices = getattr(window, "model_notices", None)
    if notices is not None:
        notices.add(text)  # about this model: it goes when another one loads


def install(window: MainWindow) -> QAction:
    action = QAction(window.tr("&Completion mode…"), window)
    action.setShortcut(QKeySequence(SHORTCUT))
    action.triggered.connect(lambda: open_completion(window))
    window.menus["view"].addAction(action)
    window.completion_action = action
    window.session.model_loaded.connect(lambda m: _suggest(window, m))
    return action
