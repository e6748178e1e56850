"""Files attached to the next message: the composer's paperclip, drag and drop onto the
chat, and a row of removable chips above the input.

A file is checked when it is added, off the GUI thread (its text is extracted as the
send will extract it): an encrypted or scanned PDF, binary data named .txt or a file
over the size limit is refused with one line, and nothing else changes (the typed text
and the other chips stay). The send takes the chips (documents_actions turns them into
the turn's retrieval step, as `chatapp chat --attach` does); a send that could not be
saved gives them back with the text.

Kinds: an attachment has a kind with its own check and chip icon. Documents are the
only kind here; images (issue 21) add IMAGE to AttachmentKind, a checker in CHECKERS
and a suffix test in kind_for, and the send routes them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLayoutItem,
    QSizePolicy,
    QStyle,
    QToolButton,
    QWidget,
)

from chatapp.core.catalog import human_size
from chatapp.ingest.extract import SUPPORTED, ExtractError, extract, kind_of

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

_DRAG = (QEvent.Type.DragEnter, QEvent.Type.DragMove)


class AttachmentKind(Enum):
    DOCUMENT = "document"  # text out of it goes into the question (chatapp.ingest)


@dataclass(frozen=True)
class Attachment:
    path: Path
    kind: AttachmentKind
    size: int
    detail: str  # "pdf · 3 pages", shown on the chip

    @property
    def name(self) -> str:
        return self.path.name


def kind_for(path: Path) -> AttachmentKind | None:
    """The attachment kind of a file by its name; None for one the app cannot read."""
    if kind_of(path) is not None:
        return AttachmentKind.DOCUMENT
    return None


def check_document(path: Path) -> Attachment:
    """The document as the send will read it; ExtractError with one line if it cannot."""
    doc = extract(path)
    pages = {s.page for s in doc.sections if s.page is not None}
    detail = (
        f"{doc.kind} · {len(pages)} page{'s' if len(pages) != 1 else ''}"
        if pages
        else f"{doc.kind} · {len(doc.text.split()):,} words"
    )
    return Attachment(path, AttachmentKind.DOCUMENT, doc.size, detail)


CHECKERS: dict[AttachmentKind, Callable[[Path], Attachment]] = {
    AttachmentKind.DOCUMENT: check_document,
}
ICONS = {AttachmentKind.DOCUMENT: QStyle.StandardPixmap.SP_FileIcon}


def check(paths: Sequence[Path]) -> tuple[list[Attachment], list[str]]:
    """(the files that can be attached, one line for each that cannot)."""
    ok: list[Attachment] = []
    problems: list[str] = []
    for path in paths:
        kind = kind_for(path)
        if kind is None:
            problems.append(
                f"Cannot attach {path.name}: chatapp reads PDF, DOCX, Markdown, HTML, "
                "text and source code files."
            )
            continue
        if not path.is_file():
            problems.append(f"Cannot attach {path.name}: it is not a file.")
            continue
        try:
            ok.append(CHECKERS[kind](path))
        except ExtractError as e:
            problems.append(f"Cannot attach {path.name}: {e}.")
        except Exception as e:  # a library's surprise must not take the window down
            log.exception("checking %s failed", path)
            problems.append(f"Cannot attach {path.name}: {e}.")
    return ok, problems


def dropped_files(mime: QMimeData | None) -> list[Path]:
    """The local files in a drag, unless it carries a .gguf (model_drop opens that)."""
    if mime is None or not mime.hasUrls():
        return []
    files = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
    if any(p.suffix.lower() == ".gguf" for p in files):
        return []
    return files


class FlowLayout(QLayout):
    """Items left to right, wrapping to the next line when the width runs out (Qt's flow
    layout example): chips of any number never widen their parent."""

    def __init__(self, parent: QWidget | None = None, spacing: int = 4) -> None:
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing = spacing
        self.setContentsMargins(0, 0, 0, 0)

    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int) -> QLayoutItem | None:
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int) -> QLayoutItem | None:
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), move=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, move=True)

    def sizeHint(self) -> QSize:
        return self.minimumSize()

    def minimumSize(self) -> QSize:
        size = QSize()
        for item in self._items:
            size = size.expandedTo(item.minimumSize())
        m = self.contentsMargins()
        return size + QSize(m.left() + m.right(), m.top() + m.bottom())

    def _arrange(self, rect: QRect, *, move: bool) -> int:
        m = self.contentsMargins()
        area = rect.adjusted(m.left(), m.top(), -m.right(), -m.bottom())
        x, y, line = area.x(), area.y(), 0
        for item in self._items:
            hint = item.sizeHint()
            w = min(hint.width(), area.width())
            if x > area.x() and x + w > area.right() + 1:
                x, y, line = area.x(), y + line + self._spacing, 0
            if move:
                item.setGeometry(QRect(QPoint(x, y), QSize(w, hint.height())))
            x += w + self._spacing
            line = max(line, hint.height())
        return y + line - rect.y() + m.bottom()


class Chip(QFrame):
    """One attachment: icon, name, detail, and ✕ to remove it."""

    removed = Signal(object)  # the Attachment

    def __init__(self, item: Attachment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.setObjectName("attachment_chip")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # colours from the palette, so light and dark themes both read
        self.setStyleSheet(
            "#attachment_chip { background: palette(alternate-base);"
            " border: 1px solid palette(mid); border-radius: 6px; }"
        )
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 1, 1, 1)
        lay.setSpacing(4)
        icon = QLabel()
        size = self.fontMetrics().height()
        icon.setPixmap(self.style().standardIcon(ICONS[item.kind]).pixmap(size, size))
        self.label = QLabel(item.name)
        self.label.setToolTip(f"{item.path}\n{item.detail} · {human_size(item.size)}")
        self.label.setMaximumWidth(self.fontMetrics().height() * 14)
        metrics = self.label.fontMetrics()
        self.label.setText(
            metrics.elidedText(
                self.label.text(), Qt.TextElideMode.ElideMiddle, self.label.maximumWidth()
            )
        )
        self.detail = QLabel(item.detail)
        self.detail.setEnabled(False)  # the palette's muted text
        # a narrow window cuts the detail first, the name stays readable
        self.detail.setMinimumWidth(1)
        self.remove_button = QToolButton()
        self.remove_button.setText("✕")
        self.remove_button.setAutoRaise(True)
        self.remove_button.setToolTip(self.tr("Remove {name}").format(name=item.name))
        self.remove_button.setAccessibleName(self.tr("Remove {name}").format(name=item.name))
        self.remove_button.clicked.connect(lambda: self.removed.emit(self.item))
        lay.addWidget(icon)
        lay.addWidget(self.label)
        lay.addWidget(self.detail)
        lay.addWidget(self.remove_button)


class Attachments(QObject):
    """The composer's attachments: the paperclip, drops, the chips and what a send takes."""

    changed = Signal()

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.items: list[Attachment] = []
        self.sent: list[Attachment] = []  # what the last send took (given back if it failed)
        self.checking = 0

        self.bar = QWidget()
        self.bar.setObjectName("attachment_bar")
        row = QHBoxLayout(self.bar)
        row.setContentsMargins(0, 0, 0, 0)
        self.button = QToolButton()
        self.button.setObjectName("attach_button")
        self.button.setText(self.tr("Attach…"))
        self.button.setIcon(window.style().standardIcon(QStyle.StandardPixmap.SP_FileIcon))
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setAutoRaise(True)
        self.button.setToolTip(
            self.tr(
                "Attach files to the next message (PDF, DOCX, Markdown, HTML, text, code); "
                "or drop them on the chat"
            )
        )
        self.button.setAccessibleName(self.tr("Attach files"))
        self.button.clicked.connect(self.choose)
        self.chips_widget = QWidget()
        self.chips = FlowLayout(self.chips_widget)
        self.chips_widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status = QLabel()
        self.status.setEnabled(False)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignTop)
        row.addWidget(self.chips_widget, 1)
        row.addWidget(self.status, 0, Qt.AlignmentFlag.AlignTop)
        self._place()

        self.watched: list[QObject] = [window, window.input, window.input.viewport()]
        for w in self.watched:
            w.installEventFilter(self)
        window.setAcceptDrops(True)
        window.session.input_restored.connect(lambda _text: self.give_back())
        window.input.submitted.connect(self._nothing_typed)
        window.send_button.clicked.connect(lambda: self._nothing_typed(window.input.toPlainText()))

    def _nothing_typed(self, text: str) -> None:
        """Files but no question: say what is missing (an empty send does nothing)."""
        if self.items and not text.strip():
            self.window.show_info(self.tr("Type a question about the attached files, then send."))

    def _place(self) -> None:
        """Above the input's row (found by the input, whatever else extensions added)."""
        lay = self.window.chat_layout
        for i in range(lay.count()):
            item = lay.itemAt(i)
            sub = item.layout() if item is not None else None
            if sub is not None and sub.indexOf(self.window.input) >= 0:
                lay.insertWidget(i, self.bar)
                return
        lay.addWidget(self.bar)

    # -- adding --------------------------------------------------------------------------

    def choose(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self.window,
            self.tr("Attach files"),
            "",
            self.tr("Documents ({patterns});;All files (*)").format(
                patterns=" ".join(f"*{s}" for s in sorted(SUPPORTED))
            ),
        )
        if files:
            self.add([Path(f) for f in files])

    def add(self, paths: Sequence[Path]) -> None:
        """Check the files off the GUI thread; the good ones become chips, each bad one a
        line in the message bar."""
        have = {a.path for a in self.items}
        fresh = [p for p in dict.fromkeys(Path(p).absolute() for p in paths) if p not in have]
        if not fresh:
            return
        self.checking += 1
        self.status.setText(self.tr("Reading {n} file(s)…").format(n=len(fresh)))

        def done(result: tuple[list[Attachment], list[str]]) -> None:
            self.checking -= 1
            self.status.setText("")
            ok, problems = result
            known = {a.path for a in self.items}
            for a in ok:
                if a.path not in known:
                    self.items.append(a)
            self._rebuild()
            if problems:
                self.window.show_error(" ".join(problems))

        def failed(e: Exception) -> None:
            self.checking -= 1
            self.status.setText("")
            self.window.show_error(self.tr("Cannot attach: {error}").format(error=e))

        self.window.run_in_background(lambda: check(fresh), done, failed)

    def chip_widgets(self) -> list[Chip]:
        out = []
        for i in range(self.chips.count()):
            got = self.chips.itemAt(i)
            w = got.widget() if got is not None else None
            if isinstance(w, Chip):
                out.append(w)
        return out

    def remove(self, item: Attachment) -> None:
        if item in self.items:
            self.items.remove(item)
            self._rebuild()

    def _rebuild(self) -> None:
        while self.chips.count():
            got = self.chips.takeAt(0)
            w = got.widget() if got is not None else None
            if w is not None:
                w.deleteLater()
        for a in self.items:
            chip = Chip(a)
            chip.removed.connect(self.remove)
            self.chips.addWidget(chip)
        self.changed.emit()

    # -- what a send takes ---------------------------------------------------------------

    def take(self) -> list[Attachment]:
        """The attachments for the message being sent; the chips go."""
        self.sent, self.items = list(self.items), []
        self._rebuild()
        return self.sent

    def give_back(self) -> None:
        """The send could not be saved: its attachments come back with its text."""
        if self.sent and not self.items:
            self.items, self.sent = self.sent, []
            self._rebuild()

    # -- drops ---------------------------------------------------------------------------

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in _DRAG and isinstance(event, (QDragEnterEvent, QDragMoveEvent)):
            if dropped_files(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            files = dropped_files(event.mimeData())
            if files:
                event.acceptProposedAction()
                log.info("files dropped on the chat: %s", [str(f) for f in files])
                self.add(files)
                return True
        return False
