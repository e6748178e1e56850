"""The message view's token displays, wired to the app: View > Messages as (text, tokens,
confidence as sampled, raw confidence), each message's own Show as, live while an answer
streams, and a click on a token opening its candidates (branch from one).

Where a row's tokens come from:
  an answer     the trace stored with it (exact: the tokens as generated, with the raw
                and the sampled probabilities); while it streams, the chunks so far
  typed text    the loaded model's tokenizer (a vocabulary-only copy of the model file,
                engine.vocab, so tokenizing never waits behind a streaming answer)
The input box's live token count and token view (chatapp.gui.input_tokens) and completion
mode use the same tokenizer (`window.message_tokens.tokenizer`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence

from chatapp.core import tokenview as tv
from chatapp.core.conversation import Role
from chatapp.core.logprobs import TokenTrace, step_from_chunk
from chatapp.gui.chatview.tokens import CONFIDENCE, RAW, TEXT, TOKENS, display_labels
from chatapp.service.machine import vocab_tokenizer

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

Tokens = list[tuple[int, bytes]]

LIVE_MS = 120  # the token displays of a streaming answer: first refresh after this
LIVE_MAX_MS = 600  # and never less often than this, however long the answer

SHORTCUTS = {TEXT: "Ctrl+Shift+1", TOKENS: "Ctrl+Shift+2", CONFIDENCE: "Ctrl+Shift+3", RAW: ""}


class LoadedTokenizer(QObject):
    """The loaded model's tokenizer, usable on the GUI thread at any time: a vocabulary-only
    load of the same file, read in the background after the model loads. `ready` fires
    when it can be used (and again after each model switch)."""

    ready = Signal()

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self._window = window
        self._vocab: Any = None
        self._path: str | None = None
        self._lock = threading.Lock()
        self.unavailable = QCoreApplication.translate(
            "MessageTokens", "Load a model to see how it cuts text into tokens."
        )
        window.session.model_loaded.connect(self._on_loaded)
        info = window.model_info()
        if info is not None:
            self._load(info.path)

    def _on_loaded(self, _loaded: Any) -> None:
        info = self._window.model_info()
        if info is not None:
            self._load(info.path)

    def _load(self, path: str) -> None:
        if path == self._path:
            return
        self._close()
        self._path = path
        if path.startswith("remote:"):
            self.unavailable = QCoreApplication.translate(
                "MessageTokens",
                "The model runs on a server, which does not provide its tokenizer: "
                "token views of typed text need a local model.",
            )
            self.ready.emit()
            return
        self.unavailable = QCoreApplication.translate(
            "MessageTokens", "Reading the model's vocabulary…"
        )

        def job() -> Any:
            return vocab_tokenizer(path)

        def done(vocab: Any) -> None:
            if self._path != path:  # switched again meanwhile
                vocab.close()
                return
            with self._lock:
                self._vocab = vocab
            self.ready.emit()

        def failed(e: Exception) -> None:
            self.unavailable = QCoreApplication.translate(
                "MessageTokens", "Could not read the model's vocabulary: {e}"
            ).format(e=e)
            self.ready.emit()

        self._window.run_in_background(job, done, failed)

    def _close(self) -> None:
        with self._lock:
            vocab, self._vocab = self._vocab, None
        if vocab is not None:
            vocab.close()

    @property
    def available(self) -> bool:
        return self._vocab is not None

    def tokenize(self, text: str) -> Tokens | None:
        with self._lock:
            if self._vocab is None:
                return None
            return self._vocab.tokenize(text)

    def is_special(self, token_id: int) -> bool:
        with self._lock:
            return self._vocab is not None and self._vocab.is_special(token_id)

    def spans(self, text: str) -> list[tv.TokenSpan] | None:
        tokens = self.tokenize(text)
        if tokens is None:
            return None
        special = {t for t, _ in tokens if self.is_special(t)}
        return tv.spans_from_tokens(tokens, special)


class _Live:
    """An answer's tokens while it streams, as spans built once per token from the chunks
    (alternatives carry their text) when they are first looked at: an answer shown as
    text only keeps its chunks. The stored trace replaces them when it is saved. Only
    the notes of the last few tokens can change (a character split across the newest
    tokens), so only those are looked at again."""

    def __init__(self, special: Callable[[int, bytes], bool] = lambda _t, _d: False) -> None:
        self._spans: list[tv.TokenSpan] = []
        self._waiting: list[Any] = []  # chunks with a token, not yet made spans
        self.special = special
        self.pieces: dict[int, bytes] = {}  # token id -> bytes, as the chunks tell them

    def resume(self, spans: list[tv.TokenSpan], pieces: dict[int, bytes]) -> None:
        """Continue: the answer's stored tokens come first (the view starts at its start)."""
        self._spans = list(spans)
        self.pieces.update(pieces)

    def add(self, chunks: list[Any]) -> None:
        self._waiting.extend(c for c in chunks if c.token_id is not None)

    def __len__(self) -> int:
        return len(self._spans) + len(self._waiting)

    @property
    def spans(self) -> list[tv.TokenSpan]:
        if self._waiting:
            chunks, self._waiting = self._waiting, []
            self._build(chunks)
        return self._spans

    def _build(self, chunks: list[Any]) -> None:
        first_new = len(self._spans)
        for c in chunks:
            step = step_from_chunk(c)
            self.pieces[step.token_id] = bytes(c.data)
            for a in (*c.top, *c.sampled_top):
                self.pieces.setdefault(a.token_id, a.text.encode("utf-8"))
            data = self.pieces[step.token_id]
            special = self.special(step.token_id, data)
            self._spans.append(tv.span_from_step(len(self._spans), step, self._data, special))
        if len(self._spans) == first_new:
            return
        # from a token that starts a character, a few before the new ones
        start = max(0, first_new - 4)
        while start > 0 and not tv.starts_character(self._spans[start].data):
            start -= 1
        notes = tv.split_characters([sp.data for sp in self._spans[start:]])
        for k, note in enumerate(notes, start):
            if self._spans[k].note != note:
                self._spans[k] = replace(self._spans[k], note=note)

    def _data(self, token_id: int) -> bytes:
        return self.pieces.get(token_id, b"")


class MessageTokens(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.view = window.message_view
        self.tokenizer = LoadedTokenizer(window)
        self._live: dict[str, _Live] = {}
        self._typed: set[str] = set()  # rows whose spans came from the tokenizer
        # streamed spans reach the view at most every LIVE_MS (a long answer less often)
        self._dirty: set[str] = set()
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.timeout.connect(self._flush_live)
        s = window.session
        self.view.spans_requested.connect(self.provide)
        self.view.token_clicked.connect(self.open_candidates)
        s.reply_started.connect(self._started)
        s.reply_tokens.connect(self._tokens)
        s.reply_finished.connect(self._finished)
        self.tokenizer.ready.connect(self._tokenizer_changed)

    # -- spans -------------------------------------------------------------------------

    def _special(self, trace: TokenTrace) -> Callable[[int], bool]:
        info = self.window.model_info()
        return lambda token_id: tv.is_special_token(info, token_id, trace.data(token_id))

    def provide(self, message_id: str) -> None:
        row = self.view.widget_for(message_id)
        if row is None:
            return
        live = self._live.get(message_id)
        if live is not None:
            self._show_live(message_id, live)
            return
        if row.role is Role.ASSISTANT:
            trace = self.window.store.token_trace(message_id)
            if trace is not None:
                spans = tv.spans_from_trace(trace, self._special(trace))
                self.view.set_spans(message_id, spans, sampling=dict(trace.sampling))
                return
        typed = self.tokenizer.spans(row.text)
        if typed is None:
            self.view.set_spans(message_id, None, note=self.tokenizer.unavailable)
            return
        self._typed.add(message_id)
        note = ""
        if row.role is Role.ASSISTANT:
            note = QCoreApplication.translate(
                "MessageTokens",
                "no tokens were recorded with this answer (a server that returns no "
                "probabilities, or an older answer): the loaded model's tokenization of "
                "its text is shown",
            )
        self.view.set_spans(message_id, typed, note=note)

    def _tokenizer_changed(self) -> None:
        """Typed text is cut by the loaded model's tokenizer: after a switch, again."""
        for row in self.view.widgets():
            if row.message_id in self._typed or (row.spans is None and row.spans_note):
                self._typed.discard(row.message_id)
                self.view.set_spans(row.message_id, None)
                if row.display != TEXT:
                    self.provide(row.message_id)

    # -- streaming ---------------------------------------------------------------------

    def special_token(self, token_id: int, data: bytes) -> bool:
        return tv.is_special_token(self.window.model_info(), token_id, data)

    def _started(self, _conversation_id: str, message_id: str) -> None:
        live = self._live[message_id] = _Live(self.special_token)
        trace = self.window.store.token_trace(message_id)  # a continued answer's tokens
        if trace is not None:
            live.resume(tv.spans_from_trace(trace, self._special(trace)), dict(trace.pieces))

    def _tokens(self, message_id: str, chunks: list[Any]) -> None:
        live = self._live.get(message_id)
        if live is None:
            live = self._live[message_id] = _Live(self.special_token)
        live.add(chunks)
        row = self.view.widget_for(message_id)
        if row is not None and row.display != TEXT:
            self._dirty.add(message_id)
            if not self._live_timer.isActive():
                self._live_timer.start(min(LIVE_MAX_MS, LIVE_MS + len(live) // 4))

    def _flush_live(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for message_id in dirty:
            live = self._live.get(message_id)
            if live is not None:
                self._show_live(message_id, live)

    def _show_live(self, message_id: str, live: _Live) -> None:
        self.view.set_spans(message_id, list(live.spans))

    def _finished(self, message_id: str) -> None:
        self._live.pop(message_id, None)
        self._dirty.discard(message_id)
        # the view reads the stored trace once the saved message replaces the stream
        row = self.view.widget_for(message_id)
        if row is not None:
            self.view.set_spans(message_id, None)
            if row.display != TEXT:
                self.provide(message_id)

    # -- candidates --------------------------------------------------------------------

    def open_candidates(self, message_id: str, index: int) -> Any:
        """A click on a token of an answer: its candidates, and Branch from one."""
        row = self.view.widget_for(message_id)
        if row is None or row.role is not Role.ASSISTANT or row.streaming:
            return None
        from chatapp.gui.answer_tokens import open_for_answer

        return open_for_answer(self.window, row.message, index)


def install(window: MainWindow) -> MessageTokens:
    """View > Messages as: Text / Tokens / Confidence / Raw confidence."""
    controller = MessageTokens(window)
    window.message_tokens = controller
    menu = window.menus["view"].addMenu(QCoreApplication.translate("MessageTokens", "&Messages as"))
    group = QActionGroup(window)
    group.setExclusive(True)
    actions: dict[str, QAction] = {}
    for display, label in display_labels().items():
        act = QAction(label, window)
        act.setCheckable(True)
        if SHORTCUTS[display]:
            act.setShortcut(QKeySequence(SHORTCUTS[display]))
        act.setChecked(display == window.message_view.default_display)
        act.triggered.connect(lambda _=False, d=display: window.message_view.set_default_display(d))
        group.addAction(act)
        menu.addAction(act)
        actions[display] = act
    window.message_display_actions = actions
    return controller
