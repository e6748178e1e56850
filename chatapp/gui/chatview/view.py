"""The message view: the active branch of a conversation as a QListView of painted rows.

Why a list view with a delegate, not a widget per message: a rich-text QLabel per message
cost ~15 ms and ~250 KB each, laid out all of them on open and again on every send, and
could not be narrower than its longest unbreakable line. Here the model is a plain list,
the delegate lays out (QTextDocument, wrapped to the width, breaking anywhere if it must)
only rows near the visible area, and a send or a streamed token touches one row.

Scrolling: the view follows the bottom while it is there (a conversation opens at its
newest message, a send scrolls to it, a streaming answer stays in view); once the user
scrolls up it holds its position, even while rows above are laid out and change height,
and shows a "Jump to latest" button.

The branch actions (edit, regenerate, continue, delete, switching versions) are signals:
the window wires them to the chat session and the store (chatapp.gui.branch_actions).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRect, Qt, QTimer, Signal
from PySide6.QtGui import (
    QContextMenuEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QDialog,
    QFrame,
    QInputDialog,
    QListView,
    QMenu,
    QMessageBox,
    QToolButton,
    QToolTip,
    QWidget,
)

from chatapp.core.conversation import Message, Role
from chatapp.core.message_info import details as message_details
from chatapp.core.tokenview import tooltip
from chatapp.gui.chatview import toolcards
from chatapp.gui.chatview.delegate import MessageDelegate
from chatapp.gui.chatview.layout import ACTION_LABELS, RowLayout, actions_for
from chatapp.gui.chatview.model import MessageListModel, Row
from chatapp.gui.chatview.tokens import DISPLAYS, TEXT, display_labels, explanation
from chatapp.gui.chatview.widgets import SelectTextDialog, UndoBar

log = logging.getLogger(__name__)

RENDER_INTERVAL_MS = 120
MAX_RENDER_INTERVAL_MS = 400
COPIED_MS = 1500
IDLE_MS = 250  # quiet time before laying out rows ahead of scrolling
IDLE_SLICE_S = 0.012  # at most this long per slice of that work


class MessageView(QListView):
    edit_requested = Signal(str, str)  # message id, new text
    regenerate_requested = Signal(str)  # answer id
    continue_requested = Signal(str)  # answer id
    delete_requested = Signal(str)  # message id (with its replies)
    version_requested = Signal(str, int)  # message id, -1 previous / +1 next version
    copied = Signal(str)  # the text put on the clipboard
    # a row shown as tokens needs them: the window's controller answers with set_spans
    spans_requested = Signal(str)  # message id
    token_clicked = Signal(str, int)  # message id, token index (a token view's click)
    citation_clicked = Signal(str, int)  # answer id, passage number (an answer's "[2]")
    image_clicked = Signal(str)  # an image's sha256 (its thumbnail was clicked: gui.image_attach)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # state first: the setters below already call overridden virtuals
        self._follow = True  # stick to the bottom
        self._adjusting = 0
        self._ready = False  # until constructed
        self._in_layout = False
        self._placeholder = ""
        self._pending: dict[str, tuple[str, str]] = {}
        self._copied: tuple[str, str] | None = None
        self._token_tip = False  # the tooltip shown is a token's
        # text selected by dragging: (message id, anchor, position) in the row's body
        self._selection: tuple[str, int, int] | None = None
        self._press: QPoint | None = None  # where the left button went down
        self._dragged = False
        self.message_model = MessageListModel()
        self.setModel(self.message_model)
        self._delegate = MessageDelegate(self)
        self.setItemDelegate(self._delegate)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # always there, so its appearing never changes the width and the layout
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(True)
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self.viewport().setBackgroundRole(QPalette.ColorRole.Window)
        self.setAccessibleName(self.tr("Messages"))

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RENDER_INTERVAL_MS)
        self._timer.timeout.connect(self._flush)
        # while nothing happens, rows a little further from the screen are laid out in
        # small slices, so scrolling into them later costs a paint, not a layout
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.setInterval(IDLE_MS)
        self._idle.timeout.connect(self._measure_ahead)
        self._width_timer = QTimer(self)  # coalesces the resizes of a drag
        self._width_timer.setSingleShot(True)
        self._width_timer.setInterval(40)
        self._width_timer.timeout.connect(self._width_changed)
        self.render_count = 0  # renders of streaming text (for tests and benchmarks)
        self.render_seconds = 0.0
        self.paint_count = 0

        self.jump_button = QToolButton(self)
        self.jump_button.setText(self.tr("↓ Jump to latest"))
        self.jump_button.setToolTip(self.tr("Scroll to the newest message and follow it"))
        self.jump_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.jump_button.clicked.connect(self.jump_to_latest)
        self.jump_button.hide()
        self.undo_bar = UndoBar(self)

        sb = self.verticalScrollBar()
        sb.valueChanged.connect(self._on_scrolled)
        sb.rangeChanged.connect(self._on_range)
        self.set_placeholder(self.tr("Open a model (File → Open model…) and say hello."))
        self._ready = True

    # -- the surface the window uses -------------------------------------------------------

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.viewport().update()

    def placeholder(self) -> str:
        return self._placeholder if not self.message_model.rows else ""

    def widgets(self) -> list[Row]:
        """The shown messages, oldest first (rows: message_id, role, text, thinking)."""
        return list(self.message_model.rows)

    def widget_for(self, message_id: str) -> Row | None:
        return self.message_model.row_for(message_id)

    # -- token displays (chatview.tokens) ---------------------------------------------------

    @property
    def default_display(self) -> str:
        return self.message_model.default_display

    def set_default_display(self, display: str) -> None:
        """Show every message (and those to come) as text, tokens or a heat map."""
        if display not in DISPLAYS:
            raise ValueError(display)
        self.message_model.default_display = display
        hold = None if self._follow else self._capture()
        for i, row in enumerate(self.message_model.rows):
            if row.display != display:
                row.display = display
                self.message_model.changed(i)
        self._relayout(hold)

    def set_display(self, message_id: str, display: str) -> None:
        """Show one message as text, tokens or a heat map."""
        if display not in DISPLAYS:
            raise ValueError(display)
        i = self.message_model.row_of(message_id)
        if i < 0 or self.message_model.rows[i].display == display:
            return
        self.message_model.rows[i].display = display
        self.message_model.changed(i)
        self._refresh_row(i)

    def want_spans(self, row: Row) -> None:
        """Called while laying out a row shown as tokens that has none: ask once, after
        the layout (the answer may come at once and change the row again)."""
        if row.spans_wanted:
            return
        row.spans_wanted = True
        mid = row.message_id
        QTimer.singleShot(0, self, lambda: self.spans_requested.emit(mid))

    def set_spans(
        self,
        message_id: str,
        spans: list | None,
        *,
        note: str = "",
        sampling: dict | None = None,
    ) -> None:
        """The tokens of a message (core.tokenview.TokenSpan), or a note saying why there
        are none. While an answer streams this is called again with the spans so far."""
        i = self.message_model.row_of(message_id)
        if i < 0:
            return
        row = self.message_model.rows[i]
        row.spans, row.spans_note = spans, note
        row.spans_wanted = False  # delivered, or forgotten (None): asked again when shown
        if sampling is not None:
            row.sampling = dict(sampling)
        if row.display == TEXT:
            return  # kept for when it is shown as tokens
        if row.streaming:  # laid out with the next coalesced text update
            pending = self._pending.get(message_id, (row.text, row.thinking))
            self.update_text(message_id, *pending)
            return
        self.message_model.changed(i)
        self._refresh_row(i)

    def clear(self) -> None:
        self._selection = None
        self._pending.clear()
        self.undo_bar.dismiss()
        self.message_model.reset([])
        self._follow = True
        self._update_jump()

    def show_thread(self, messages: list[Message], *, anchor: str | None = None) -> None:
        """Show a thread. The same conversation is updated in place: rows it shares with
        what is shown stay, the rest are replaced (a send or regenerate touches only the
        tail). Another conversation opens at its newest message. With `anchor`, that
        message keeps its place on screen (switching a version below it)."""
        rows = self.message_model.rows
        same = (
            bool(rows)
            and bool(messages)
            and rows[0].message.conversation_id == (messages[0].conversation_id)
        )
        if not same:
            self._selection = None
            self._pending.clear()
            self.undo_bar.dismiss()
            self.message_model.reset(messages)
            self._follow = True
            self._premeasure_bottom()
            self._relayout()
            return
        keep = 0
        while keep < min(len(rows), len(messages)) and rows[keep].message_id == messages[keep].id:
            keep += 1
        hold = self._capture(anchor) if anchor else None
        if hold is not None:
            self._follow = False  # the anchored row keeps its place, even at the bottom
        for i in range(keep):  # finished answers, new stats, edited text
            m = messages[i]
            if rows[i].message != m and m.id not in self._pending:
                self.message_model.set_message(i, m)
        self.message_model.truncate(keep)
        self.message_model.extend(messages[keep:])
        if hold is None:
            self._follow = True
        self._relayout(hold)

    def add_message(self, msg: Message, *, scroll: bool = True) -> Row:
        row = self.message_model.row_for(msg.id)
        if row is None:
            self.message_model.extend([msg])
            row = self.message_model.rows[-1]
        if scroll:
            self._follow = True
        self._relayout()
        return row

    def update_text(self, message_id: str, text: str, thinking: str = "") -> None:
        """Coalesced: the row is laid out again at most every RENDER_INTERVAL_MS."""
        self._pending[message_id] = (text, thinking)
        if not self._timer.isActive():
            # a long answer is laid out less often, so the GUI's share of the CPU stays
            # small and the model (which wants every core) keeps its speed
            size = len(text) + len(thinking)
            row = self.message_model.row_for(message_id)
            if row is not None and row.display != TEXT:
                size *= 3  # a token display lays out far more (a span per token)
            self._timer.start(min(MAX_RENDER_INTERVAL_MS, RENDER_INTERVAL_MS + size // 25))

    def finish(self, msg: Message) -> None:
        self._pending.pop(msg.id, None)
        i = self.message_model.row_of(msg.id)
        if i < 0:
            self.add_message(msg)
            return
        self.message_model.set_message(i, msg)
        self._refresh_row(i)
        if msg.meta.get("context_dropped"):
            shown = [r.message for r in self.message_model.rows]
            for j in self.message_model.mark_unseen(shown):
                self.message_model.changed(j)
                self._refresh_row(j)

    def set_versions(self, versions: dict[str, tuple[int, int]]) -> None:
        """Which shown messages have other versions: id -> (index, count), 1-based."""
        for i, row in enumerate(self.message_model.rows):
            v = versions.get(row.message_id, (1, 1))
            if v != row.versions:
                row.versions = v
                self.message_model.changed(i)
                self._refresh_row(i)

    def offer_undo(self, text: str, callback: Callable[[], None]) -> None:
        self.undo_bar.offer(text, callback)
        self._place_overlays()

    def scroll_to_bottom(self) -> None:
        self._follow = True
        self._relayout()

    def jump_to_latest(self) -> None:
        self.scroll_to_bottom()

    @property
    def following(self) -> bool:
        """Whether the view sticks to the newest message."""
        return self._follow

    # -- for tests and the context menu ------------------------------------------------------

    def row_layout(self, message_id: str) -> RowLayout | None:
        row = self.message_model.row_for(message_id)
        return self._delegate.layout_for(row) if row is not None else None

    def row_rect(self, message_id: str) -> QRect:
        """The row's rectangle in viewport coordinates (may lie outside the viewport)."""
        i = self.message_model.row_of(message_id)
        return self.visualRect(self.message_model.index(i)) if i >= 0 else QRect()

    def scroll_to_message(self, message_id: str) -> bool:
        """Put the message at the top of the view (a search hit); False if not shown."""
        i = self.message_model.row_of(message_id)
        if i < 0:
            return False
        self._follow = False
        self._ensure_measured_around(i)
        self.scrollTo(self.message_model.index(i), QAbstractItemView.ScrollHint.PositionAtTop)
        self._update_jump()
        return True

    def token_point(self, message_id: str, index: int) -> QPoint | None:
        """The middle of a token (viewport coordinates) in a row shown as tokens."""
        lay = self.row_layout(message_id)
        r = lay.token_rect(index) if lay is not None else None
        return None if r is None else self.row_rect(message_id).topLeft() + r.center()

    def click_point(self, message_id: str, target: str) -> QPoint | None:
        """Where to click (viewport coordinates) for a row's action ("edit", "copy", …),
        "prev"/"next" version, "thinking" or "code:N"; None if it has none."""
        lay = self.row_layout(message_id)
        r = lay.target(target) if lay else None
        if r is None:
            return None
        return self.row_rect(message_id).topLeft() + r.center()

    def copied_target(self, message_id: str) -> str | None:
        c = self._copied
        return c[1] if c and c[0] == message_id else None

    def built_layouts(self) -> int:
        return self._delegate.built

    # -- layout and scrolling ------------------------------------------------------------------

    def _capture(self, message_id: str | None = None) -> tuple[int, int] | None:
        """(row, its top in the viewport) to keep in place: the given message, else the
        row at the top of the viewport."""
        if message_id is not None:
            i = self.message_model.row_of(message_id)
            if i < 0:
                return None
            return (i, self.visualRect(self.message_model.index(i)).top())
        idx = self.indexAt(QPoint(self.viewport().width() // 2, 0))
        if not idx.isValid():
            return None
        return (idx.row(), self.visualRect(idx).top())

    def _restore(self, hold: tuple[int, int] | None) -> None:
        sb = self.verticalScrollBar()
        if self._follow:
            sb.setValue(sb.maximum())
        elif hold is not None and hold[0] < self.message_model.rowCount():
            top = self.rectForIndex(self.message_model.index(hold[0])).top()
            sb.setValue(top - hold[1])

    def _rows_near_view(self) -> range:
        """Rows on screen and within a quarter screen above and below it."""
        n = self.message_model.rowCount()
        if n == 0:
            return range(0)
        h = self.viewport().height()
        value = self.verticalScrollBar().value()
        lo, hi = value - h // 4, value + h + h // 4

        def top(i: int) -> int:
            return self.rectForIndex(self.message_model.index(i)).top()

        a, b = 0, n - 1  # first row whose bottom reaches lo
        while a < b:
            mid = (a + b) // 2
            r = self.rectForIndex(self.message_model.index(mid))
            if r.bottom() < lo:
                a = mid + 1
            else:
                b = mid
        end = a
        while end < n and top(end) <= hi:
            end += 1
        return range(a, end)

    def _measure_near_view(self) -> bool:
        changed = False
        rows = self.message_model.rows
        for i in self._rows_near_view():
            if self._delegate.ensure_measured(rows[i]):
                changed = True
        return changed

    def _ensure_measured_around(self, i: int) -> None:
        rows = self.message_model.rows
        changed = False
        for j in range(max(0, i - 3), min(len(rows), i + 4)):
            changed |= self._delegate.ensure_measured(rows[j])
        if changed:
            self._relayout()

    def doItemsLayout(self) -> None:
        """Every relayout keeps what the user looks at in place: the bottom while
        following, else the row at the top; rows near the view are laid out exactly
        first, so what is painted has its real height."""
        if not self._ready or self._in_layout:
            super().doItemsLayout()
            return
        self._relayout(None if self._follow else self._capture())

    def _premeasure_bottom(self) -> None:
        """Lay out the newest rows, a screen and a bit, before the view's layout: a
        conversation opens at the bottom, so one pass of the layout is right."""
        self._delegate.sync_width()
        want = self.viewport().height() * 5 // 4
        rows = self.message_model.rows
        total = 0
        for row in reversed(rows):
            total += self._delegate.layout_for(row).height
            if total >= want:
                break

    def _layout_now(self) -> None:
        """One pass of QListView's layout, which also settles a layout Qt has queued
        (after rows were inserted or removed), so no second pass follows later."""
        self._in_layout = True
        try:
            self.scheduleDelayedItemsLayout()
            self.executeDelayedItemsLayout()  # -> doItemsLayout -> QListView's layout
        finally:
            self._in_layout = False

    def _relayout(self, hold: tuple[int, int] | None = None) -> None:
        self._adjusting += 1
        self._delegate.sync_width()
        try:
            self._layout_now()
            self._restore(hold)
            for _ in range(4):
                if not self._measure_near_view():
                    break
                self._layout_now()
                self._restore(hold)
        finally:
            self._adjusting -= 1
        self._update_jump()
        self.viewport().update()
        self._idle.start()

    def _refresh_row(self, i: int) -> None:
        """A row's content changed: relayout if its height did, else repaint it."""
        rows = self.message_model.rows
        if not 0 <= i < len(rows):
            return
        row = rows[i]
        old = row.height[3]
        lay = self._delegate.layout_for(row)
        if lay.height != old:
            self._relayout(None if self._follow else self._capture())
        else:
            self.viewport().update(self.visualRect(self.message_model.index(i)))

    def _on_scrolled(self, value: int) -> None:
        if self._adjusting or not self._ready:
            return
        sb = self.verticalScrollBar()
        self._follow = value >= sb.maximum() - 2
        if self._measure_near_view():
            self._relayout(None if self._follow else self._capture())
        self._update_jump()
        self._idle.start()

    def _measure_ahead(self) -> None:
        """Lay out unmeasured rows within two screens of the visible area (above first:
        scrolling up is where long chats are read), a slice at a time."""
        rows = self.message_model.rows
        if not rows:
            return
        if self._pending or self._timer.isActive() or rows[-1].streaming:
            self._idle.start()  # an answer is streaming: its CPU time goes to the model
            return
        n = len(rows)
        h = self.viewport().height()
        value = self.verticalScrollBar().value()
        first = self.indexAt(QPoint(self.viewport().width() // 2, 0)).row()
        if first < 0:
            first = n - 1
        deadline = time.perf_counter() + IDLE_SLICE_S
        changed = False
        done = True
        for order in (range(first, -1, -1), range(first + 1, n)):
            for i in order:
                rect = self.rectForIndex(self.message_model.index(i))
                if rect.bottom() < value - 2 * h or rect.top() > value + 3 * h:
                    break
                if self._delegate.measured(rows[i]):
                    continue
                if time.perf_counter() > deadline:
                    done = False
                    break
                changed |= self._delegate.ensure_measured(rows[i])
        if changed:
            self._relayout(None if self._follow else self._capture())
        if not done:
            self._idle.start()

    def _on_range(self, _lo: int, hi: int) -> None:
        if self._follow and not self._adjusting:
            self.verticalScrollBar().setValue(hi)

    def _update_jump(self) -> None:
        sb = self.verticalScrollBar()
        show = not self._follow and bool(self.message_model.rows) and sb.value() < sb.maximum() - 2
        self.jump_button.setVisible(show)
        if show:
            self._place_overlays()

    def _place_overlays(self) -> None:
        vp = self.viewport().geometry()
        em = self.fontMetrics().height()
        self.jump_button.adjustSize()
        jb = self.jump_button
        bottom = vp.bottom() - em // 2
        if self.undo_bar.isVisible():
            w = min(vp.width() - em, max(self.undo_bar.sizeHint().width(), 24 * em))
            h = self.undo_bar.sizeHint().height()
            self.undo_bar.setGeometry(vp.left() + (vp.width() - w) // 2, bottom - h, w, h)
            bottom -= h + em // 2
        jb.move(vp.left() + (vp.width() - jb.width()) // 2, bottom - jb.height())
        jb.raise_()

    # -- streaming -------------------------------------------------------------------------

    def _flush(self) -> None:
        t0 = time.perf_counter()
        pending, self._pending = self._pending, {}
        for mid, (text, thinking) in pending.items():
            i = self.message_model.row_of(mid)
            if i >= 0:
                self.message_model.set_text(i, text, thinking)
                self._refresh_row(i)
        self.render_count += 1
        self.render_seconds += time.perf_counter() - t0

    # -- events ------------------------------------------------------------------------------

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        if self._ready:
            self._place_overlays()
            # QListView relayouts a top-to-bottom list only when its height changes: a
            # narrower or wider window must wrap every message to the new width too
            if e.size().width() != e.oldSize().width():
                self._width_timer.start()

    def _width_changed(self) -> None:
        if self._delegate.width() != max(120, self.viewport().width()):
            self._relayout(None if self._follow else self._capture())

    def changeEvent(self, e: QEvent) -> None:
        super().changeEvent(e)
        if self._ready and e.type() in (QEvent.Type.PaletteChange, QEvent.Type.FontChange):
            self._delegate.restyle()
            for row in self.message_model.rows:
                row.estimate = (-1, -1, 0)
            self._relayout(None if self._follow else self._capture())

    def paintEvent(self, e: QPaintEvent) -> None:
        super().paintEvent(e)
        self.paint_count += 1
        if not self.message_model.rows and self._placeholder:
            p = QPainter(self.viewport())
            p.setPen(self._delegate.theme.muted)
            r = self.viewport().rect().adjusted(20, 20, -20, -20)
            p.drawText(
                r, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder
            )
            p.end()

    def _hit(self, pos: QPoint) -> tuple[Row, str, object] | None:
        idx = self.indexAt(pos)
        if not idx.isValid():
            return None
        row = self.message_model.rows[idx.row()]
        lay = self._delegate.layout_for(row)
        hit = lay.hit(pos - self.visualRect(idx).topLeft())
        return (row, hit[0], hit[1]) if hit else None

    def mousePressEvent(self, e: QMouseEvent) -> None:
        super().mousePressEvent(e)
        if e.button() != Qt.MouseButton.LeftButton:
            return
        pos = e.position().toPoint()
        self._press, self._dragged = pos, False
        had = self._selection is not None
        self._selection = None
        idx = self.indexAt(pos)
        if idx.isValid() and self._hit(pos) is None:
            row = self.message_model.rows[idx.row()]
            lay = self._delegate.layout_for(row)
            local = pos - self.visualRect(idx).topLeft()
            at = lay.body_position(local) if lay.in_body(local) else None
            if at is not None:
                self._selection = (row.message_id, at, at)
        if had:
            self.viewport().update()

    def _drag_to(self, pos: QPoint) -> None:
        sel = self._selection
        if sel is None:
            return
        i = self.message_model.row_of(sel[0])
        if i < 0:
            self._selection = None
            return
        lay = self._delegate.layout_for(self.message_model.rows[i])
        at = lay.body_position(pos - self.visualRect(self.message_model.index(i)).topLeft())
        if at is not None and at != sel[2]:
            self._selection = (sel[0], sel[1], at)
            self.viewport().update()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        super().mouseMoveEvent(e)
        pos = e.position().toPoint()
        if e.buttons() & Qt.MouseButton.LeftButton and self._press is not None:
            if (pos - self._press).manhattanLength() >= QApplication.startDragDistance():
                self._dragged = True
            if self._dragged:
                self._drag_to(pos)
                self.viewport().setCursor(Qt.CursorShape.IBeamCursor)
                return
        hit = self._hit(pos)
        shape = Qt.CursorShape.PointingHandCursor if hit else self._text_cursor(pos)
        self.viewport().setCursor(shape)
        tip = self.token_tooltip(hit[0], str(hit[2])) if hit and hit[1] == "link" else ""
        if tip:
            QToolTip.showText(e.globalPosition().toPoint(), tip, self.viewport())
        elif QToolTip.isVisible() and self._token_tip:
            QToolTip.hideText()
        self._token_tip = bool(tip)

    def _text_cursor(self, pos: QPoint) -> Qt.CursorShape:
        idx = self.indexAt(pos)
        if idx.isValid():
            lay = self._delegate.layout_for(self.message_model.rows[idx.row()])
            if lay.in_body(pos - self.visualRect(idx).topLeft()):
                return Qt.CursorShape.IBeamCursor
        return Qt.CursorShape.ArrowCursor

    # -- text selected by dragging ------------------------------------------------------------

    def selection_of(self, message_id: str) -> tuple[int, int] | None:
        """The selected range of a row's body (start, end), if the user selected in it."""
        sel = self._selection
        if sel is None or sel[0] != message_id or sel[1] == sel[2]:
            return None
        return (min(sel[1], sel[2]), max(sel[1], sel[2]))

    def selected_text(self) -> str:
        """The text the user selected by dragging over a message ("" if none)."""
        sel = self._selection
        if sel is None:
            return ""
        row = self.message_model.row_for(sel[0])
        if row is None:
            return ""
        start, end = min(sel[1], sel[2]), max(sel[1], sel[2])
        return self._delegate.layout_for(row).selected_text(start, end)

    def clear_selection(self) -> None:
        if self._selection is not None:
            self._selection = None
            self.viewport().update()

    def token_tooltip(self, row: Row, href: str) -> str:
        """A token's id, bytes, probability and candidates, for a "tok:N" link; the
        passage an answer's "[n]" cites, for a "cite:N" link."""
        if href.startswith("cite:"):
            from chatapp.gui.citations import citation_tooltip

            return citation_tooltip(row.message, int(href[5:]))
        if not href.startswith("tok:") or row.spans is None:
            return ""
        i = int(href[4:])
        return tooltip(row.spans[i]) if 0 <= i < len(row.spans) else ""

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        super().mouseReleaseEvent(e)
        if e.button() != Qt.MouseButton.LeftButton:
            return
        dragged, self._press, self._dragged = self._dragged, None, False
        if dragged:  # a selection, not a click: what was selected goes to X11's primary
            self._drag_to(e.position().toPoint())
            text = self.selected_text()
            cb = QGuiApplication.clipboard()
            if text and cb.supportsSelection():
                cb.setText(text, cb.Mode.Selection)
            return
        self.clear_selection()
        hit = self._hit(e.position().toPoint())
        if hit is not None:
            self._activate(*hit)

    def mouseDoubleClickEvent(self, e: QMouseEvent) -> None:
        super().mouseDoubleClickEvent(e)
        idx = self.indexAt(e.position().toPoint())
        if idx.isValid() and self._hit(e.position().toPoint()) is None:
            self.select_text(self.message_model.rows[idx.row()].message_id)

    def select_text(self, message_id: str) -> QDialog | None:
        """The message in a text browser, to select and copy any part of it (rows are
        painted, so the list itself does not select text)."""
        row = self.message_model.row_for(message_id)
        if row is None:
            return None
        html = self._delegate.layout_for(row).html
        dialog = SelectTextDialog(html, self._delegate.theme.link.name(), self)
        top = self.window()
        dialog.resize(max(400, top.width() * 2 // 3), max(300, top.height() * 2 // 3))
        dialog.show()
        return dialog

    def show_details(self, message_id: str) -> QDialog | None:
        """An answer's receipt and statistics: what exactly produced it, and how to check."""
        row = self.message_model.row_for(message_id)
        if row is None:
            return None
        rows = "".join(
            f"<tr><th align=left valign=top>{html.escape(k)}</th>"
            f"<td>{html.escape(v).replace(chr(10), '<br>')}</td></tr>"
            for k, v in message_details(row.message)
        )
        dialog = SelectTextDialog(
            f"<table cellspacing=6>{rows}</table>",
            self._delegate.theme.link.name(),
            self,
            select_all=False,
        )
        dialog.setWindowTitle(self.tr("How this answer was made"))
        dialog.resize(640, 360)
        dialog.show()
        return dialog

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.matches(QKeySequence.StandardKey.Copy) and self.selected_text():
            self._copy_text(self.selected_text())
            return
        if e.matches(QKeySequence.StandardKey.Copy):
            idx = self.currentIndex()
            if idx.isValid():
                self._copy(self.message_model.rows[idx.row()], "copy")
                return
        super().keyPressEvent(e)

    def contextMenuEvent(self, e: QContextMenuEvent) -> None:
        if e.reason() == QContextMenuEvent.Reason.Mouse:
            idx = self.indexAt(e.pos())
        else:
            idx = self.currentIndex()
        if not idx.isValid():
            return
        self.setCurrentIndex(idx)
        menu = self.context_menu(idx)
        menu.exec(e.globalPos())

    def context_menu(self, idx: QModelIndex) -> QMenu:
        """The row's actions as a menu (right click, or the Menu key on the current row)."""
        row = self.message_model.rows[idx.row()]
        is_last = idx.row() == self.message_model.rowCount() - 1
        menu = QMenu(self)
        chosen = self.selected_text() if self.selection_of(row.message_id) else ""
        if chosen:
            copy_sel = menu.addAction(self.tr("Copy selected text"))
            copy_sel.triggered.connect(lambda _=False, t=chosen: self._copy_text(t))
            menu.addSeparator()
        for name in actions_for(row, is_last):
            act = menu.addAction(ACTION_LABELS[name])
            act.triggered.connect(lambda _=False, n=name, r=row: self._activate(r, "action", n))
        select = menu.addAction(self.tr("Select text…"))
        select.triggered.connect(lambda _=False, r=row: self.select_text(r.message_id))
        if row.role is Role.ASSISTANT:
            details = menu.addAction(self.tr("Details (how it was made)…"))
            details.triggered.connect(lambda _=False, r=row: self.show_details(r.message_id))
        show_as = menu.addMenu(self.tr("Show as"))
        for display, label in display_labels().items():
            act = show_as.addAction(label)
            act.setCheckable(True)
            act.setChecked(row.display == display)
            act.triggered.connect(
                lambda _=False, d=display, r=row: self.set_display(r.message_id, d)
            )
        lay = self._delegate.layout_for(row)
        for i in range(len(lay.code_blocks)):
            act = menu.addAction(self.tr("Copy code block {n}").format(n=i + 1))
            act.triggered.connect(lambda _=False, i=i, r=row: self._activate(r, "code", i))
        if row.versions[1] > 1:
            menu.addSeparator()
            prev = menu.addAction(self.tr("Previous version"))
            prev.setEnabled(row.versions[0] > 1)
            prev.triggered.connect(lambda _=False, r=row: self._activate(r, "nav", -1))
            nxt = menu.addAction(self.tr("Next version"))
            nxt.setEnabled(row.versions[0] < row.versions[1])
            nxt.triggered.connect(lambda _=False, r=row: self._activate(r, "nav", 1))
        return menu

    # -- actions ---------------------------------------------------------------------------------

    def _activate(self, row: Row, kind: str, data: object) -> None:
        mid = row.message_id
        if kind == "nav":
            self.version_requested.emit(mid, int(data))  # type: ignore[call-overload]
        elif kind == "thinking":
            row.thinking_open = not row.thinking_open
            i = self.message_model.row_of(mid)
            self.message_model.changed(i)
            self._refresh_row(i)
        elif kind == "code":
            lay = self._delegate.layout_for(row)
            i = int(data)  # type: ignore[call-overload]
            if i < len(lay.code_blocks):
                self._copy(row, f"code:{i}", lay.code_blocks[i])
        elif kind == "link" and str(data).startswith("tok:"):
            self.token_clicked.emit(mid, int(str(data)[4:]))
        elif kind == "link" and str(data).startswith(toolcards.PREFIX):
            action, _, n = str(data)[len(toolcards.PREFIX) :].partition(":")
            if action == "toggle":
                self.toggle_card(mid, int(n))
            elif action == "copy":
                self._copy(row, f"card:{n}", toolcards.copy_text(row, int(n)))
        elif kind == "link" and str(data).startswith("cite:"):
            self.citation_clicked.emit(mid, int(str(data)[5:]))
        elif kind == "link" and str(data).startswith("explain:"):
            self.explain(str(data)[8:])
        elif kind == "link" and str(data).startswith("chatapp-image:"):
            self.image_clicked.emit(str(data).removeprefix("chatapp-image:"))
        elif kind == "link":
            from PySide6.QtCore import QUrl
            from PySide6.QtGui import QDesktopServices

            QDesktopServices.openUrl(QUrl(str(data)))
        elif kind == "action":
            name = str(data)
            if name == "copy":
                self._copy(row, "copy", toolcards.row_text(row))
            elif name == "edit":
                self._edit(row)
            elif name == "regenerate":
                self.regenerate_requested.emit(mid)
            elif name == "continue":
                self.continue_requested.emit(mid)
            elif name == "delete":
                self.delete_requested.emit(mid)

    def set_calls(self, message_id: str, calls: list[dict[str, Any]]) -> None:
        """Show an answer's tool calls (chatview.toolcards) before it is saved with them."""
        i = self.message_model.row_of(message_id)
        if i < 0:
            return
        row = self.message_model.rows[i]
        row.message = row.message.with_(meta={**row.message.meta, "tool_calls": calls})
        self.message_model.changed(i)
        self._refresh_row(i)

    def toggle_card(self, message_id: str, index: int) -> None:
        """Fold or unfold a tool call or result card (chatview.toolcards)."""
        i = self.message_model.row_of(message_id)
        if i < 0:
            return
        row = self.message_model.rows[i]
        row.cards_closed ^= {index}
        self.message_model.changed(i)
        self._refresh_row(i)

    def explain(self, name: str) -> QMessageBox:
        """The app's plain-language explanation of a token view (non-modal)."""
        box = QMessageBox(
            QMessageBox.Icon.Information,
            self.tr("What am I seeing?"),
            explanation(name),
            QMessageBox.StandardButton.Close,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setModal(False)
        box.show()
        return box

    def _copy(self, row: Row, target: str, text: str | None = None) -> None:
        text = row.text if text is None else text
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(text)
        self._copied = (row.message_id, target)
        self.viewport().update()
        QTimer.singleShot(COPIED_MS, self, self._clear_copied)

    def _copy_text(self, text: str) -> None:
        QGuiApplication.clipboard().setText(text)
        self.copied.emit(text)

    def _clear_copied(self) -> None:
        self._copied = None
        self.viewport().update()

    def _edit(self, row: Row) -> None:
        if row.role is not Role.USER:
            return
        text, ok = QInputDialog.getMultiLineText(
            self,
            self.tr("Edit message"),
            self.tr(
                "The edited message is sent as a new version; the original stays, one arrow away."
            ),
            row.text,
        )
        if ok and text.strip() and text.strip() != row.text.strip():
            self.edit_requested.emit(row.message_id, text.strip())
