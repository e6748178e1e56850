"""Search every conversation from the window: a field above the conversation list
(Ctrl+F), results with the hit highlighted in place of the list, and a result opens its
conversation on the hit's branch, scrolled to the message.

The query runs off the GUI thread (window.run_in_background) on its own read-only
SQLite connection; typing restarts a short timer, and only the newest query's results
are shown. Installed through the window's GUI_EXTENSIONS; `window.focus_search()` and
the field's objectName "conversation_search" are the handles other parts may use.
"""

from __future__ import annotations

import html
import logging
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractListModel,
    QByteArray,
    QCoreApplication,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QAction,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.search import SearchHit, open_readonly, search, snippet_parts

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

DEBOUNCE_MS = 150
LIMIT = 50
Index = QModelIndex | QPersistentModelIndex


class HitRole(IntEnum):
    HIT = Qt.ItemDataRole.UserRole + 1
    CONVERSATION_ID = Qt.ItemDataRole.UserRole + 2
    MESSAGE_ID = Qt.ItemDataRole.UserRole + 3
    HTML = Qt.ItemDataRole.UserRole + 4  # the snippet as HTML, hits in <b>


def snippet_html(snippet: str) -> str:
    return "".join(
        f"<b>{html.escape(t)}</b>" if hit else html.escape(t) for t, hit in snippet_parts(snippet)
    )


def _plain(snippet: str) -> str:
    return "".join(t for t, _ in snippet_parts(snippet))


def run_search(db_path: Path, query: str, limit: int = LIMIT) -> tuple[str, list[SearchHit]]:
    """On a worker thread: a connection of its own, read-only, closed after."""
    db = open_readonly(db_path)
    try:
        return query, search(db, query, limit)
    finally:
        db.close()


class SearchResultsModel(QAbstractListModel):
    def __init__(self) -> None:
        super().__init__()
        self._hits: list[SearchHit] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._hits)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._hits):
            return None
        h = self._hits[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return h.title if h.message_id is None else f"{h.title}: {_plain(h.snippet)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            where = "title" if h.message_id is None else (h.role or "message")
            return f"{h.title} ({where})\n{_plain(h.snippet)}"
        if role == HitRole.HIT:
            return h
        if role == HitRole.CONVERSATION_ID:
            return h.conversation_id
        if role == HitRole.MESSAGE_ID:
            return h.message_id
        if role == HitRole.HTML:
            return snippet_html(h.snippet)
        return None

    def roleNames(self) -> dict[int, QByteArray]:
        names = dict(super().roleNames())
        names[HitRole.HIT] = QByteArray(b"hit")
        names[HitRole.CONVERSATION_ID] = QByteArray(b"conversationId")
        names[HitRole.MESSAGE_ID] = QByteArray(b"messageId")
        names[HitRole.HTML] = QByteArray(b"snippetHtml")
        return names

    def set_hits(self, hits: list[SearchHit]) -> None:
        self.beginResetModel()
        self._hits = list(hits)
        self.endResetModel()

    def hit_at(self, row: int) -> SearchHit | None:
        return self._hits[row] if 0 <= row < len(self._hits) else None


class HitDelegate(QStyledItemDelegate):
    """A result: the conversation's title, then up to two lines of the matching text with
    the hit in bold (a title hit: the highlighted title alone). Palette colours only."""

    PAD = 6
    LINES = 2

    def _doc(self, option: QStyleOptionViewItem, index: Index, width: int) -> QTextDocument:
        hit: SearchHit = index.data(HitRole.HIT)
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setDocumentMargin(0)
        body = snippet_html(hit.snippet)
        if hit.message_id is None:
            doc.setHtml(f"<div>{body}</div>")
        else:
            names = {
                "user": self.tr("You"),
                "assistant": self.tr("Assistant"),
                "system": self.tr("System"),
            }
            role = names.get(hit.role or "", (hit.role or "").capitalize())
            doc.setHtml(
                f"<div>{html.escape(hit.title)}</div><div><i>{html.escape(role)}:</i> {body}</div>"
            )
        doc.setTextWidth(max(width, 50))
        return doc

    def _max_height(self, option: QStyleOptionViewItem) -> int:
        return option.fontMetrics.lineSpacing() * (self.LINES + 1)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        width = (option.rect.width() or 240) - 2 * self.PAD
        doc = self._doc(option, index, width)
        h = min(int(doc.size().height()), self._max_height(option))
        return QSize(width, h + 2 * self.PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        rect = opt.rect.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        doc = self._doc(opt, index, rect.width())
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        pal = QPalette(opt.palette)
        if selected:
            pal.setColor(QPalette.ColorRole.Text, pal.color(QPalette.ColorRole.HighlightedText))
        ctx.palette = pal
        painter.save()
        painter.translate(rect.topLeft())
        painter.setClipRect(0, 0, rect.width(), min(rect.height(), self._max_height(opt)))
        doc.documentLayout().draw(painter, ctx)
        painter.restore()


class SearchField(QLineEdit):
    """Down and Enter go to the results; Esc clears the search."""

    escape = Signal()
    down = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.text():
            self.escape.emit()
            return
        if event.key() == Qt.Key.Key_Down:
            self.down.emit()
            return
        super().keyPressEvent(event)


class SearchPanel(QWidget):
    """The search field; its results list takes the conversation list's place while a
    search is shown."""

    results_shown = Signal(str)  # the query whose results are now in the list (GUI thread)
    opened = Signal(str, str)  # conversation id, message id ("" for a title hit)

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self.main = window
        self.field = SearchField()
        self.field.setObjectName("conversation_search")
        self.field.setPlaceholderText(self.tr("Search all chats (Ctrl+F)"))
        self.field.setAccessibleName(self.tr("Search all chats"))
        self.field.setClearButtonEnabled(True)
        self.status = QLabel()
        self.status.setObjectName("search_status")
        self.status.setWordWrap(True)
        self.status.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.status.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.field)
        lay.addWidget(self.status)

        self.model = SearchResultsModel()
        self.results = QListView()
        self.results.setObjectName("search_results")
        self.results.setAccessibleName(self.tr("Search results"))
        self.results.setModel(self.model)
        self.results.setItemDelegate(HitDelegate(self.results))
        self.results.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.results.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.results.setResizeMode(QListView.ResizeMode.Adjust)
        self.results.hide()
        self.results.activated.connect(self._activated)
        self.results.clicked.connect(self._activated)
        self.results.installEventFilter(self)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self._start)
        self._running: str | None = None  # the query on the worker thread
        self._shown: str | None = None
        self.find_action: QAction | None = None  # Ctrl+F, when this panel made it
        self.field.textChanged.connect(self._text_changed)
        self.field.returnPressed.connect(self._open_first)
        self.field.escape.connect(self.clear)
        self.field.down.connect(self._to_results)

    # -- the surface ---------------------------------------------------------------------

    def focus_search(self) -> None:
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()

    def clear(self) -> None:
        self.field.clear()
        self.main.conversation_view.setFocus()

    def open_hit(self, hit: SearchHit) -> None:
        """Open the hit's conversation on the hit's branch, scrolled to the message."""
        w = self.main
        session = w.session
        streaming_here = session.busy and session.conversation_id == hit.conversation_id
        if hit.message_id and not streaming_here:
            # (the open chat keeps its branch while an answer streams into it); the
            # service switches the branch, then the chat opens on it
            switched = session.service.conversations.show_branch_of(hit.message_id)
            session.when_saved(switched, lambda _leaf: self._open(hit))
        else:
            self._open(hit)

    def _open(self, hit: SearchHit) -> None:
        w = self.main
        session = w.session
        if w.store.get_conversation(hit.conversation_id) is None:
            w.show_error(self.tr("That chat was deleted after the search."))
            self._start()
            return
        session.select_conversation(hit.conversation_id)
        if hit.message_id:
            mid = hit.message_id
            # after the view has laid out the thread it was just given (and scrolled down)
            QTimer.singleShot(0, self, lambda: scroll_to_message(w.message_view, mid))
        self.opened.emit(hit.conversation_id, hit.message_id or "")

    # -- searching -----------------------------------------------------------------------

    def _text_changed(self, text: str) -> None:
        searching = bool(text.strip())
        self.results.setVisible(searching)
        self.main.conversation_view.setVisible(not searching)
        if not searching:
            self._timer.stop()
            self.status.hide()
            self.model.set_hits([])
            self._shown = None
            return
        self._timer.start()

    def _start(self) -> None:
        query = self.field.text().strip()
        if not query or self._running is not None:
            return  # a running search calls back here when it is done
        self._running = query
        path = self.main.store.path
        self.main.run_in_background(lambda: run_search(path, query), self._done, self._failed)

    def _done(self, result: tuple[str, list[SearchHit]]) -> None:
        query, hits = result
        self._running = None
        if query != self.field.text().strip():  # typed on meanwhile: search again
            self._start()
            return
        self.model.set_hits(hits)
        self._shown = query
        if hits:
            self.status.hide()
        else:
            self.status.setText(self.tr("No chat contains “{query}”.").format(query=query))
            self.status.show()
        if hits:
            self.results.setCurrentIndex(self.model.index(0))
        self.results_shown.emit(query)

    def _failed(self, exc: Exception) -> None:
        self._running = None
        log.warning("search failed: %s", exc)
        self.model.set_hits([])
        self.status.setText(self.tr("Search failed: {error}").format(error=exc))
        self.status.show()
        self.results_shown.emit(self.field.text().strip())

    # -- keys and activation -----------------------------------------------------------

    def _activated(self, index: QModelIndex) -> None:
        hit = self.model.hit_at(index.row())
        if hit is not None:
            self.open_hit(hit)

    def _open_first(self) -> None:
        if self._shown == self.field.text().strip() and self.model.rowCount():
            row = max(self.results.currentIndex().row(), 0)
            self._activated(self.model.index(row))

    def _to_results(self) -> None:
        if self.model.rowCount():
            self.results.setFocus()
            if not self.results.currentIndex().isValid():
                self.results.setCurrentIndex(self.model.index(0))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if obj is self.results and isinstance(event, QKeyEvent):
            key = event.key() if event.type() == QEvent.Type.KeyPress else None
            if key == Qt.Key.Key_Escape:
                self.clear()
                return True
            if key == Qt.Key.Key_Up and self.results.currentIndex().row() <= 0:
                self.field.setFocus()
                return True
        return False


def scroll_to_message(view: Any, message_id: str) -> bool:
    """Scroll the message view so the message's top is in sight. Uses the view's own
    `scroll_to_message` when it has one; else the widget-per-message view's layout."""
    own = getattr(type(view), "scroll_to_message", None)
    if own is not None:
        return bool(own(view, message_id))
    widget_for = getattr(view, "widget_for", None)
    w = widget_for(message_id) if widget_for else None
    if w is None:
        return False
    inner = view.widget()
    if inner is not None and inner.layout() is not None:
        inner.layout().activate()
    top = w.mapTo(inner, QPoint(0, 0)).y()
    view.verticalScrollBar().setValue(max(0, top - 8))
    return True


def install(window: MainWindow) -> SearchPanel:
    panel = SearchPanel(window)
    view = window.conversation_view
    layout = window.list_layout()
    at = layout.indexOf(view)
    layout.insertWidget(at, panel)
    layout.insertWidget(at + 1, panel.results, 1)
    window.search_panel = panel
    window.focus_search = panel.focus_search
    # Ctrl+F: an action the keyboard extension made for it (window.search_action, left
    # disabled until a search is there), or any other with that key; else one of our own
    find = QKeySequence(QKeySequence.StandardKey.Find)
    existing = window.search_action or next(
        (a for a in window.findChildren(QAction) if a.shortcut() == find), None
    )
    if existing is not None:
        existing.triggered.connect(panel.focus_search)
        existing.setEnabled(True)
    else:
        action = QAction(QCoreApplication.translate("SearchPanel", "&Find in chats…"), window)
        action.setShortcut(find)
        action.setToolTip(
            QCoreApplication.translate(
                "SearchPanel", "Search the titles and messages of every chat"
            )
        )
        action.triggered.connect(panel.focus_search)
        window.menus["chat"].insertAction(window.menus["chat"].actions()[0], action)
        window.menus["chat"].insertSeparator(window.menus["chat"].actions()[1])
        panel.find_action = action
    return panel
