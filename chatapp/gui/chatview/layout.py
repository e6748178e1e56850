"""How one message is laid out and painted: a bubble with a header, the optional
reasoning section, the body (rich text in a QTextDocument wrapped to the view's width)
and a line of actions.

Everything is measured from the font (em = the line height), so sizes follow the font
and the scale factor. A RowLayout is built only for rows near the visible area; rows
further away get an estimated height from their text length.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from PySide6.QtCore import QCoreApplication, QPoint, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QFont,
    QFontMetrics,
    QPainter,
    QPalette,
    QPen,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFrame,
    QTextOption,
    QTextTable,
)

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.message_info import stats_line
from chatapp.gui.chatview import toolcards
from chatapp.gui.chatview.images import images_html
from chatapp.gui.chatview.model import Row, role_name
from chatapp.gui.chatview.theme import Theme
from chatapp.gui.chatview.tokens import body_html, token_colors
from chatapp.gui.citations import attached_html, sources_html
from chatapp.gui.i18n import QT_TRANSLATE_NOOP, TranslatedTexts
from chatapp.gui.markdown_html import plain_to_html, render

ACTION_LABELS = TranslatedTexts(
    "MessageLayout",
    {
        "copy": QT_TRANSLATE_NOOP("MessageLayout", "Copy"),
        "edit": QT_TRANSLATE_NOOP("MessageLayout", "Edit"),
        "regenerate": QT_TRANSLATE_NOOP("MessageLayout", "Regenerate"),
        "continue": QT_TRANSLATE_NOOP("MessageLayout", "Continue"),
        "delete": QT_TRANSLATE_NOOP("MessageLayout", "Delete"),
    },
)


@dataclass(frozen=True)
class Metrics:
    """Sizes derived from the view's font."""

    font: QFont
    small: QFont
    bold: QFont
    em: int
    small_h: int
    margin_x: int
    margin_y: int
    pad: int
    gap: int
    avg_char: float

    @classmethod
    def of(cls, font: QFont) -> Metrics:
        fm = QFontMetrics(font)
        small = QFont(font)
        if font.pointSizeF() > 0:
            small.setPointSizeF(font.pointSizeF() * 0.88)
        else:
            small.setPixelSize(max(8, round(font.pixelSize() * 0.88)))
        bold = QFont(small)
        bold.setBold(True)
        em = fm.height()
        return cls(
            font=font,
            small=small,
            bold=bold,
            em=em,
            small_h=QFontMetrics(small).height(),
            margin_x=round(em * 0.6),
            margin_y=max(2, round(em * 0.3)),
            pad=round(em * 0.6),
            gap=max(2, round(em * 0.3)),
            avg_char=max(1.0, fm.averageCharWidth() * 1.05),
        )


def passage_count(msg: Message) -> int:
    """How many numbered passages an answer was given (its [n] become links)."""
    docs = msg.meta.get("documents")
    passages = docs.get("passages") if isinstance(docs, dict) else None
    return len(passages) if isinstance(passages, list) else 0


def actions_for(row: Row, is_last: bool) -> list[str]:
    if row.streaming:
        return ["copy"]
    out = ["copy"]
    if row.role is Role.USER:
        out.append("edit")
    elif row.role is Role.ASSISTANT:
        out.append("regenerate")
        cut = row.message.finish_reason in (FinishReason.LENGTH, FinishReason.CANCELLED)
        if cut and row.text and is_last:
            out.append("continue")
    out.append("delete")
    return out


def header_parts(row: Row) -> tuple[list[str], list[str]]:
    """The header's facts: who and when, then how the answer went (a second line when the
    bubble is too narrow for both)."""
    m = row.message
    first, second = [], []
    if m.role is Role.ASSISTANT and m.model:
        first.append(m.model)
    first.append(datetime.fromtimestamp(m.created_at).strftime("%Y-%m-%d %H:%M"))
    if m.finish_reason is FinishReason.STREAMING and toolcards.calls_of(m):
        second.append(QCoreApplication.translate("MessageLayout", "calling a tool…"))
    elif m.finish_reason is FinishReason.STREAMING:
        second.append(QCoreApplication.translate("MessageLayout", "writing…"))
    elif stats_line(m):  # first token, speed, tokens, prompt reuse, why it stopped
        second.append(stats_line(m))
    elif m.finish_reason is FinishReason.ERROR:
        second.append(QCoreApplication.translate("MessageLayout", "failed"))
    if row.unseen:
        second.append(
            QCoreApplication.translate(
                "MessageLayout", "not in the model's context any more (left out to fit)"
            )
        )
    return first, second


def header_meta(row: Row) -> str:
    first, second = header_parts(row)
    return " · ".join(first + second)


def _new_doc(font: QFont, html: str, width: float, theme: Theme) -> QTextDocument:
    doc = QTextDocument()
    doc.setDocumentMargin(0)
    doc.setDefaultFont(font)
    opt = QTextOption()
    # a long URL or an unbroken code line breaks anywhere rather than widening the message
    opt.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    doc.setDefaultTextOption(opt)
    doc.setDefaultStyleSheet(f"a {{ color: {theme.link.name()}; }}")
    doc.setHtml(html)
    doc.setTextWidth(max(10.0, width))
    return doc


def _code_tables(frame: QTextFrame) -> list[QTextTable]:
    """Code blocks are the borderless tables (Markdown tables have a border), in order."""
    out: list[QTextTable] = []
    for child in frame.childFrames():
        if isinstance(child, QTextTable) and child.format().border() == 0:
            out.append(child)
        out.extend(_code_tables(child))
    return out


@dataclass
class RowLayout:
    width: int
    key: tuple[int, int, int]  # (width, theme, rev): rebuilt when any changes
    height: int = 0
    bubble: QRectF = field(default_factory=QRectF)
    header: QRect = field(default_factory=QRect)
    role_text: str = ""
    meta_text: str = ""
    # the answer's statistics on lines of their own, when they do not fit beside the rest
    meta_lines: list[tuple[QRect, str]] = field(default_factory=list)
    nav: dict[str, QRect] = field(default_factory=dict)  # prev, label, next
    versions: tuple[int, int] = (1, 1)
    thinking_toggle: QRect | None = None
    thinking_label: str = ""
    thinking_doc: QTextDocument | None = None
    thinking_origin: QPoint = field(default_factory=QPoint)
    html: str = ""  # the body's rich text, as rendered from the message
    body: QTextDocument | None = None
    body_origin: QPoint = field(default_factory=QPoint)
    code_copy: list[QRect] = field(default_factory=list)
    code_blocks: tuple[str, ...] = ()
    actions: list[tuple[str, QRect]] = field(default_factory=list)
    # a token display: where each token starts in the body's text (from token_base)
    token_offsets: list[int] = field(default_factory=list)
    token_base: int = 0

    def token_at(self, p: QPoint) -> int | None:
        """The token under p (row coordinates) in a token display."""
        if self.body is None or len(self.token_offsets) < 2:
            return None
        local = QPointF(p - self.body_origin)
        pos = self.body.documentLayout().hitTest(local, Qt.HitTestAccuracy.ExactHit)
        pos -= self.token_base
        if pos < 0 or pos >= self.token_offsets[-1]:
            return None
        return bisect_right(self.token_offsets, pos) - 1

    def body_position(self, p: QPoint) -> int | None:
        """The text position in the body nearest to p (row coordinates), for selecting
        by dragging: above the body is its start, below it its end."""
        if self.body is None:
            return None
        local = QPointF(p - self.body_origin)
        last = self.body.characterCount() - 1
        if local.y() < 0:
            return 0
        if local.y() >= self.body.size().height():
            return last
        pos = self.body.documentLayout().hitTest(local, Qt.HitTestAccuracy.FuzzyHit)
        return max(0, min(pos, last))

    def in_body(self, p: QPoint) -> bool:
        if self.body is None:
            return False
        size = self.body.size()
        return QRectF(QPointF(self.body_origin), size).contains(QPointF(p))

    def selected_text(self, start: int, end: int) -> str:
        if self.body is None or start == end:
            return ""
        last = self.body.characterCount() - 1
        cursor = QTextCursor(self.body)
        cursor.setPosition(max(0, min(start, last)))
        cursor.setPosition(max(0, min(end, last)), QTextCursor.MoveMode.KeepAnchor)
        return cursor.selection().toPlainText()

    def token_rect(self, index: int) -> QRect | None:
        """Where a token of a token display is drawn (row coordinates)."""
        if self.body is None or not 0 <= index < len(self.token_offsets) - 1:
            return None
        start = self.token_base + self.token_offsets[index]
        end = self.token_base + self.token_offsets[index + 1]
        block = self.body.findBlock(start)
        rel = start - block.position()
        line = block.layout().lineForTextPosition(rel)
        if end - start > 1 and rel == line.textStart() + line.textLength() - 1:
            # the space a line wraps at is not drawn: the token shows on the next line
            start, rel = start + 1, rel + 1
            line = block.layout().lineForTextPosition(rel)
        x0 = _x(line.cursorToX(rel))
        x1 = _x(line.cursorToX(min(end - block.position(), rel + 2)))
        top = self.body.documentLayout().blockBoundingRect(block).topLeft()
        r = QRectF(top.x() + x0, top.y() + line.y(), max(1.0, x1 - x0), line.height())
        return r.toRect().translated(self.body_origin)

    def hit(self, p: QPoint) -> tuple[str, object] | None:
        """What a click at p (row coordinates) means: ("action", name), ("nav", ±1),
        ("thinking", None), ("code", block index), ("link", href); None for nothing."""
        for name, r in self.actions:
            if r.contains(p):
                return ("action", name)
        if "prev" in self.nav and self.nav["prev"].contains(p) and self.versions[0] > 1:
            return ("nav", -1)
        if (
            "next" in self.nav
            and self.nav["next"].contains(p)
            and self.versions[0] < self.versions[1]
        ):
            return ("nav", 1)
        if self.thinking_toggle is not None and self.thinking_toggle.contains(p):
            return ("thinking", None)
        for i, r in enumerate(self.code_copy):
            if r.contains(p):
                return ("code", i)
        token = self.token_at(p)
        if token is not None:
            return ("link", f"tok:{token}")
        if self.body is not None:
            local = QPointF(p - self.body_origin)
            href = self.body.documentLayout().anchorAt(local)
            if href:
                return ("link", href)
        return None

    def target(self, name: str) -> QRect | None:
        """The rectangle of a clickable part (row coordinates), for keyboard-free tests
        and the context menu: an action name, "prev", "next", "thinking" or "code:N"."""
        for n, r in self.actions:
            if n == name:
                return r
        if name in ("prev", "next"):
            return self.nav.get(name)
        if name == "thinking":
            return self.thinking_toggle
        if name.startswith("code:"):
            i = int(name[5:])
            return self.code_copy[i] if i < len(self.code_copy) else None
        return None


def _x(value: object) -> float:
    """QTextLine.cursorToX's x (PySide6 returns (x, position))."""
    return float(value[0] if isinstance(value, tuple) else value)  # type: ignore[arg-type]


def estimate_height(row: Row, width: int, m: Metrics) -> int:
    """A cheap guess from the text's length, for rows that have not been laid out."""
    inner = max(40, width - 2 * m.margin_x - 2 * m.pad)
    per_line = max(8, int(inner / m.avg_char))
    lines = toolcards.estimate_lines(row, per_line)
    for para in ("" if row.role is Role.TOOL else row.text).split("\n"):
        lines += max(1, math.ceil(len(para) / per_line))
    line_h = round(m.em * 1.05)
    chrome = 2 * m.margin_y + 2 * m.pad + 2 * (m.small_h + m.gap)
    if row.thinking:
        chrome += m.small_h
    return chrome + lines * line_h


def build(row: Row, width: int, theme: Theme, m: Metrics, is_last: bool) -> RowLayout:
    lay = RowLayout(width=width, key=(width, hash(theme.key), row.rev))
    bx = m.margin_x
    bw = max(60, width - 2 * m.margin_x)
    inner_x = bx + m.pad
    inner_w = max(40, bw - 2 * m.pad)
    y = m.margin_y + m.pad

    # header: role, meta (elided to fit), versions "‹ 2/3 ›" on the right
    lay.role_text = role_name(row.role)
    sfm = QFontMetrics(m.small)
    bfm = QFontMetrics(m.bold)
    nav_w = 0
    lay.versions = row.versions
    if row.versions[1] > 1:
        label = f"{row.versions[0]}/{row.versions[1]}"
        arrow_w = max(sfm.horizontalAdvance("‹"), sfm.horizontalAdvance("›")) + m.em
        label_w = sfm.horizontalAdvance(label) + m.gap
        right = inner_x + inner_w
        lay.nav["next"] = QRect(right - arrow_w, y, arrow_w, m.small_h)
        lay.nav["label"] = QRect(right - arrow_w - label_w, y, label_w, m.small_h)
        lay.nav["prev"] = QRect(right - 2 * arrow_w - label_w, y, arrow_w, m.small_h)
        nav_w = 2 * arrow_w + label_w + m.gap
    role_w = bfm.horizontalAdvance(lay.role_text) + m.gap * 2
    meta_w = max(0, inner_w - role_w - nav_w)
    first, second = header_parts(row)
    full = " · ".join(first + second)
    lay.header = QRect(inner_x, y, inner_w, m.small_h)
    y += m.small_h + m.gap
    if second and sfm.horizontalAdvance(full) > meta_w:  # too narrow: stats on lines below
        elide = Qt.TextElideMode.ElideRight
        lay.meta_text = sfm.elidedText(" · ".join(first), elide, meta_w)
        atoms = [a for part in second for a in part.split(" · ")]
        stat_lines: list[str] = []
        for atom in atoms:  # whole facts per line, as many as fit
            joined = f"{stat_lines[-1]} · {atom}" if stat_lines else atom
            if stat_lines and sfm.horizontalAdvance(joined) <= inner_w:
                stat_lines[-1] = joined
            else:
                stat_lines.append(atom)
        for line in stat_lines:
            rect = QRect(inner_x, y, inner_w, m.small_h)
            lay.meta_lines.append((rect, sfm.elidedText(line, elide, inner_w)))
            y += m.small_h
        y += m.gap
    else:
        lay.meta_text = sfm.elidedText(full, Qt.TextElideMode.ElideRight, meta_w)

    # reasoning, collapsed by default
    if row.thinking:
        words = len(row.thinking.split())
        arrow = "▾" if row.thinking_open else "▸"
        lay.thinking_label = QCoreApplication.translate(
            "MessageLayout", "{arrow} Thinking ({words} words)"
        ).format(arrow=arrow, words=words)
        lay.thinking_toggle = QRect(
            inner_x, y, sfm.horizontalAdvance(lay.thinking_label) + m.gap, m.small_h
        )
        y += m.small_h + m.gap
        if row.thinking_open:
            indent = m.pad
            lay.thinking_doc = _new_doc(
                m.small,
                f'<div style="color:{theme.muted.name()};">{plain_to_html(row.thinking)}</div>',
                inner_w - indent,
                theme,
            )
            lay.thinking_origin = QPoint(inner_x + indent, y)
            y += math.ceil(lay.thinking_doc.size().height()) + m.gap

    # body
    if row.display != "text":  # tokens or the heat map (chatview.tokens)
        colors = token_colors(theme, row.role.value)
        html, lay.token_offsets = body_html(
            row.display, row.spans, row.spans_note, row.sampling, colors
        )
    elif row.role is Role.ASSISTANT:
        if row.text:
            rendered = render(row.text, theme.code, passage_count(row.message))
            html, lay.code_blocks = rendered.html, rendered.code_blocks
            if not row.streaming:
                html += sources_html(row.message, theme.muted.name())
        else:
            html = (
                QCoreApplication.translate("MessageLayout", "<i>thinking…</i>")
                if row.thinking
                else "<i>…</i>"
            )
    else:
        html = (
            images_html(row.message)  # its images' thumbnails
            + plain_to_html(row.text)
            + attached_html(row.message, theme.muted.name())
        )
    if row.display == "text":
        html = toolcards.with_cards(row, html, theme)
    lay.html = html
    lay.body = _new_doc(m.font, html, inner_w, theme)
    lay.body_origin = QPoint(inner_x, y)
    if lay.token_offsets:  # the tokens are the document's last block: where they start
        lay.token_base = lay.body.characterCount() - 1 - lay.token_offsets[-1]
    doc_layout = lay.body.documentLayout()
    copy_w = sfm.horizontalAdvance(QCoreApplication.translate("MessageLayout", "Copied ✓")) + m.gap
    for table in _code_tables(lay.body.rootFrame())[: len(lay.code_blocks)]:
        frame = doc_layout.frameBoundingRect(table)
        top = doc_layout.blockBoundingRect(table.cellAt(0, 0).firstCursorPosition().block())
        r = QRect(
            round(frame.right()) - copy_w - m.pad,
            round(top.top()),
            copy_w,
            max(m.small_h, round(top.height())),
        )
        lay.code_copy.append(r.translated(lay.body_origin))
    y += math.ceil(lay.body.size().height()) + m.gap

    # actions
    x = inner_x
    for name in actions_for(row, is_last):
        w = sfm.horizontalAdvance(ACTION_LABELS[name]) + m.em
        lay.actions.append((name, QRect(x, y, w, m.small_h)))
        x += w
    y += m.small_h + m.pad
    lay.bubble = QRectF(bx, m.margin_y, bw, y - m.margin_y)
    lay.height = y + m.margin_y
    return lay


def paint(
    p: QPainter,
    lay: RowLayout,
    row: Row,
    theme: Theme,
    m: Metrics,
    *,
    focused: bool,
    copied: str | None,
    selection: tuple[int, int] | None = None,
) -> None:
    """Paint a row at the painter's origin (the row's top-left); `selection` is the
    body's selected text (document positions) while the user selects by dragging."""
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    radius = m.em * 0.45
    p.setPen(QPen(theme.focus if focused else theme.border, 2 if focused else 1))
    p.setBrush(theme.bubble(row.role.value))
    p.drawRoundedRect(lay.bubble.adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)

    # header
    p.setFont(m.bold)
    p.setPen(theme.text)
    h = lay.header
    p.drawText(h, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, lay.role_text)
    role_w = QFontMetrics(m.bold).horizontalAdvance(lay.role_text) + m.gap * 2
    p.setFont(m.small)
    p.setPen(theme.muted)
    p.drawText(
        h.adjusted(role_w, 0, 0, 0),
        Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        lay.meta_text,
    )
    for rect, line in lay.meta_lines:
        p.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
    if lay.nav:
        i, n = lay.versions
        centre = Qt.AlignmentFlag.AlignCenter
        p.setPen(theme.link if i > 1 else theme.muted)
        p.drawText(lay.nav["prev"], centre, "‹")
        p.setPen(theme.muted)
        p.drawText(lay.nav["label"], centre, f"{i}/{n}")
        p.setPen(theme.link if i < n else theme.muted)
        p.drawText(lay.nav["next"], centre, "›")

    ctx = QAbstractTextDocumentLayout.PaintContext()
    ctx.palette.setColor(QPalette.ColorRole.Text, theme.text)
    ctx.palette.setColor(QPalette.ColorRole.Link, theme.link)

    if lay.thinking_toggle is not None:
        p.setPen(theme.muted)
        p.drawText(
            lay.thinking_toggle,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            lay.thinking_label,
        )
    if lay.thinking_doc is not None:
        o = lay.thinking_origin
        hgt = lay.thinking_doc.size().height()
        p.setPen(QPen(theme.border, max(2, m.gap // 2)))
        p.drawLine(o.x() - m.pad // 2, o.y(), o.x() - m.pad // 2, round(o.y() + hgt))
        p.save()
        p.translate(o)
        tctx = QAbstractTextDocumentLayout.PaintContext()
        tctx.palette.setColor(QPalette.ColorRole.Text, theme.muted)
        lay.thinking_doc.documentLayout().draw(p, tctx)
        p.restore()

    if lay.body is not None:
        if selection is not None and selection[0] != selection[1]:
            cursor = QTextCursor(lay.body)
            last = lay.body.characterCount() - 1
            cursor.setPosition(max(0, min(selection[0], last)))
            cursor.setPosition(max(0, min(selection[1], last)), QTextCursor.MoveMode.KeepAnchor)
            chosen = QAbstractTextDocumentLayout.Selection()
            chosen.cursor = cursor
            fmt = QTextCharFormat()
            fmt.setBackground(theme.selection)
            fmt.setForeground(theme.selected_text)
            chosen.format = fmt
            ctx.selections = [chosen]
        p.save()
        p.translate(lay.body_origin)
        lay.body.documentLayout().draw(p, ctx)
        p.restore()

    p.setFont(m.small)
    for i, r in enumerate(lay.code_copy):
        p.setPen(theme.link)
        text = (
            QCoreApplication.translate("MessageLayout", "Copied ✓")
            if copied == f"code:{i}"
            else QCoreApplication.translate("MessageLayout", "Copy")
        )
        p.drawText(r, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text)
    p.setPen(theme.link)
    for name, r in lay.actions:
        text = (
            QCoreApplication.translate("MessageLayout", "Copied ✓")
            if copied == name
            else ACTION_LABELS[name]
        )
        p.drawText(r, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
