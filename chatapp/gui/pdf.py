"""PDF export: the HTML export (restyled for Qt) laid out by QTextDocument, printed by QPdfWriter.

Qt needs a QGuiApplication for fonts; inside the window one exists, elsewhere (the CLI
runs this module as a child process, so the CLI itself never imports Qt) an offscreen
one is made. QTextDocument and QPdfWriter are reentrant, so a PDF can be made on a
worker thread (window.run_in_background) as long as each call uses its own objects.

    python -m chatapp.gui.pdf IN.html OUT.pdf [--title TITLE]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QEventLoop, QIODevice, QMarginsF
from PySide6.QtGui import (
    QGuiApplication,
    QPageLayout,
    QPageSize,
    QPdfWriter,
    QTextDocument,
    QTextOption,
)

from chatapp.core import atomic
from chatapp.core.conversation import Conversation, Message
from chatapp.core.export import print_html

log = logging.getLogger(__name__)

_app: QGuiApplication | None = None  # kept alive when we had to create one


def ensure_gui_application() -> None:
    """Qt's text layout needs a QGuiApplication; make an offscreen one if there is none."""
    global _app
    if QGuiApplication.instance() is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _app = QGuiApplication([sys.argv[0] if sys.argv else "chatapp", "-platform", "offscreen"])


def pdf_bytes(html: str, *, title: str = "") -> bytes:
    """Lay out the HTML on A4 pages and return the PDF file's bytes."""
    ensure_gui_application()
    # Painting into a QPdfWriter off the GUI thread is supported (like QImage/QPrinter),
    # but QTextDocument starts timers, which need an event dispatcher: a plain Python
    # worker thread has none until an event loop object is made for it.
    _loop = QEventLoop()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    writer.setTitle(title)
    writer.setCreator("chatapp")
    writer.setResolution(144)
    writer.setPageLayout(
        QPageLayout(
            QPageSize(QPageSize.PageSizeId.A4),
            QPageLayout.Orientation.Portrait,
            QMarginsF(15, 15, 15, 15),
            QPageLayout.Unit.Millimeter,
        )
    )
    doc = QTextDocument()
    # a code line or URL with no break point wraps anywhere rather than off the page
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    doc.setDefaultTextOption(option)
    doc.setHtml(html)
    doc.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, title)
    doc.print_(writer)
    del writer  # finishes the file
    buffer.close()
    return bytes(data.data())


def conversation_pdf(conv: Conversation, messages: Sequence[Message]) -> bytes:
    return pdf_bytes(print_html(conv, messages), title=conv.title)


def write_pdf(conv: Conversation, messages: Sequence[Message], path: str | Path) -> None:
    atomic.write_bytes(path, conversation_pdf(conv, messages), mode=atomic.USER_FILE)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m chatapp.gui.pdf")
    p.add_argument("html", type=Path)
    p.add_argument("pdf", type=Path)
    p.add_argument("--title", default="")
    args = p.parse_args(argv)
    html = args.html.read_text(encoding="utf-8")
    atomic.write_bytes(args.pdf, pdf_bytes(html, title=args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
