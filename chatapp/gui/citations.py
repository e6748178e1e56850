"""Citations in answers: an answer's "[2]" is a link (chatview renders it as "cite:2");
hovering shows the passage in a tooltip, clicking opens its card: the file, the page or
heading, how it ranked and the passage itself, with a button that opens the file (a
PDF at its page, as file:///…#page=N, which browsers and most PDF viewers honour).

The passages are the answer's own record (meta["documents"]["passages"], written by
the service's retrieval step): a card shows what the model was given, not a search run
again.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.catalog import human_size
from chatapp.core.conversation import Message
from chatapp.core.message_info import passage_scores

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

TOOLTIP_CHARS = 400


def passage(msg: Message, number: int) -> dict[str, Any] | None:
    """The passage an answer numbered `number`, from its own record."""
    docs = msg.meta.get("documents")
    passages = docs.get("passages") if isinstance(docs, dict) else None
    for p in passages if isinstance(passages, list) else []:
        if isinstance(p, dict) and p.get("n") == number:
            return p
    return None


def file_url(p: dict[str, Any]) -> QUrl:
    """The passage's file as a URL; a PDF's page as the #page=N fragment."""
    url = QUrl.fromLocalFile(str(p.get("file", "")))
    if isinstance(p.get("page"), int) and str(p.get("file", "")).lower().endswith(".pdf"):
        url.setFragment(f"page={p['page']}")
    return url


def sources_html(msg: Message, muted: str) -> str:
    """The line under an answer that was given passages: each one's number and place,
    a link to its card (so the sources are one click away even when the model did not
    cite them)."""
    docs = msg.meta.get("documents")
    passages = docs.get("passages") if isinstance(docs, dict) else None
    if not isinstance(passages, list) or not passages:
        return ""
    links = " · ".join(
        f'<a href="cite:{p.get("n")}">[{p.get("n")}]&nbsp;{html.escape(str(p.get("where", "")))}</a>'
        for p in passages
        if isinstance(p, dict)
    )
    label = QCoreApplication.translate("Citations", "Sources:")
    return f'<p style="font-size:small; color:{muted};">{label} {links}</p>'


def attached_html(msg: Message, muted: str) -> str:
    """The line under a question with files attached: each file's name (a link that
    opens it, while it is there) and size, from the question's own record
    (meta["attachments"], saved with it by the service)."""
    files = msg.meta.get("attachments")
    if not isinstance(files, list) or not files:
        return ""
    items = []
    for f in files:
        if not isinstance(f, dict) or not f.get("name"):
            continue
        name = html.escape(str(f["name"]))
        path = Path(str(f.get("path", "")))
        size = f.get("size")
        tail = f"&nbsp;({human_size(size)})" if isinstance(size, int) else ""
        if path.is_file():
            url = html.escape(QUrl.fromLocalFile(str(path)).toString(), quote=True)
            items.append(f'<a href="{url}" title="{html.escape(str(path))}">{name}</a>{tail}')
        else:
            gone = QCoreApplication.translate("Citations", "no longer there")
            items.append(f"{name}{tail} ({gone})")
    if not items:
        return ""
    label = QCoreApplication.translate("Citations", "Attached:")
    return f'<p style="font-size:small; color:{muted};">{label} {" · ".join(items)}</p>'


def citation_tooltip(msg: Message, number: int) -> str:
    p = passage(msg, number)
    if p is None:
        return ""
    text = " ".join(str(p.get("text", "")).split())
    if len(text) > TOOLTIP_CHARS:
        text = text[:TOOLTIP_CHARS] + "…"
    return (
        f"<b>[{number}] {html.escape(str(p.get('where', '')))}</b><br>"
        f"{html.escape(text)}<br><i>Click to open the source.</i>"
    )


class CitationCard(QDialog):
    """One cited passage: where it is, how it ranked, its text; Open file."""

    def __init__(
        self,
        p: dict[str, Any],
        parent: QWidget | None = None,
        *,
        open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl,
    ) -> None:
        super().__init__(parent)
        self.passage = p
        self.open_url = open_url
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(self.tr("Source [{n}]").format(n=p.get("n", "?")))
        lay = QVBoxLayout(self)
        self.title = QLabel(f"<b>[{p.get('n', '?')}] {html.escape(str(p.get('where', '')))}</b>")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.file_label = QLabel(str(p.get("file", "")))
        self.file_label.setWordWrap(True)
        self.file_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        where = []
        if isinstance(p.get("page"), int):
            where.append(self.tr("page {page}").format(page=p["page"]))
        if p.get("heading"):
            where.append(self.tr("under “{heading}”").format(heading=p["heading"]))
        self.where_label = QLabel(" · ".join([*where, passage_scores(p)]))
        self.where_label.setWordWrap(True)
        self.text = QPlainTextEdit(str(p.get("text", "")))
        self.text.setReadOnly(True)
        self.text.setAccessibleName(self.tr("The passage"))
        self.open_button = QPushButton(
            self.tr("Open at page {page}").format(page=p["page"])
            if "page=" in file_url(p).fragment()
            else self.tr("Open file")
        )
        self.open_button.clicked.connect(self.open_file)
        self.open_button.setEnabled(Path(str(p.get("file", ""))).exists())
        if not self.open_button.isEnabled():
            self.open_button.setToolTip(self.tr("The file is no longer there."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        for w in (self.title, self.file_label, self.where_label):
            lay.addWidget(w)
        lay.addWidget(self.text, 1)
        lay.addWidget(buttons)
        em = self.fontMetrics().height()
        self.resize(em * 34, em * 22)

    def open_file(self) -> None:
        url = file_url(self.passage)
        log.info("opening a cited source: %s", url.toString())
        self.open_url(url)


class Citations:
    """Wires the message view's citation links to cards (one card per click)."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.open_url: Callable[[QUrl], Any] = QDesktopServices.openUrl
        self.last_card: CitationCard | None = None
        window.message_view.citation_clicked.connect(self.show)

    def show(self, message_id: str, number: int) -> CitationCard | None:
        msg = self.window.store.get_message(message_id)
        p = passage(msg, number) if msg is not None else None
        if p is None:
            self.window.show_error(
                self.window.tr("This answer has no source [{n}].").format(n=number)
            )
            return None
        card = CitationCard(p, self.window, open_url=lambda url: self.open_url(url))
        card.show()
        self.last_card = card
        return card
