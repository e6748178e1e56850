"""Shared helpers for the message view tests: conversations to open, pixels to read."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QColor, QImage, QPalette, QWheelEvent
from PySide6.QtWidgets import QApplication

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import Store
from chatapp.gui.chatview.contrast import contrast


def fill(store: Store, turns: int, *, title: str = "Long chat") -> str:
    """A conversation of `turns` question/answer pairs (2 * turns messages); its id."""
    conv = store.create_conversation(title, created_at=1_700_000_000)
    parent = None
    rows = []
    t = 1_700_000_000.0
    from chatapp.core.conversation import Message, new_id

    for i in range(turns):
        q = Message(
            new_id(), conv.id, parent, Role.USER, f"Question {i}: " + "why " * (i % 9), created_at=t
        )
        a = Message(
            new_id(),
            conv.id,
            q.id,
            Role.ASSISTANT,
            f"Answer {i}. "
            + "Because of reasons. " * (i % 13 + 1)
            + (f"\n\n```python\nprint({i})\n```" if i % 5 == 0 else ""),
            created_at=t + 1,
            model="m.gguf",
            finish_reason=FinishReason.STOP,
        )
        rows += [q, a]
        parent = a.id
        t += 2
    store.insert_messages(rows)
    store.set_current_leaf(conv.id, parent)
    return conv.id


def open_conversation(w, conversation_id: str) -> None:
    w.refresh_conversations()
    row = w.conversations.row_of(conversation_id)
    w.conversation_view.setCurrentIndex(w.conversations.index(row))
    assert w.current_conversation_id() == conversation_id


def visible(view, message_id: str) -> bool:
    """The whole message (or, if taller than the viewport, its end) is on screen."""
    r = view.row_rect(message_id)
    vp = view.viewport().rect()
    return r.isValid() and r.bottom() <= vp.bottom() + 1 and r.bottom() >= vp.top()


def wheel(view, steps: int) -> None:
    """Scroll like a mouse wheel (positive: up)."""
    vp = view.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    ev = QWheelEvent(
        pos,
        QPointF(vp.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(vp, ev)


def dark_palette() -> QPalette:
    p = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2d2d2d",
        QPalette.ColorRole.WindowText: "#f0f0f0",
        QPalette.ColorRole.Base: "#1e1e1e",
        QPalette.ColorRole.AlternateBase: "#2a2a2a",
        QPalette.ColorRole.Text: "#f0f0f0",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#f0f0f0",
        QPalette.ColorRole.Highlight: "#2a82da",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        # a typical dark theme's link blue: only 3.9:1 on #1e1e1e, the view must fix it
        QPalette.ColorRole.Link: "#2a6fc9",
        QPalette.ColorRole.PlaceholderText: "#6a6a6a",
    }
    for role, c in colours.items():
        p.setColor(role, QColor(c))
    return p


def text_contrast(img: QImage, rect: QRect) -> tuple[float, QColor, QColor]:
    """(ratio, text colour, background) inside rect: the background is the most common
    colour, the text the pixel that differs most from it (glyph stems are solid)."""
    counts: dict[tuple[int, int, int], int] = {}
    r = rect.intersected(img.rect())
    for y in range(r.top(), r.bottom() + 1):
        for x in range(r.left(), r.right() + 1):
            c = img.pixelColor(x, y)
            key = (c.red(), c.green(), c.blue())
            counts[key] = counts.get(key, 0) + 1
    bg = max(counts, key=lambda k: counts[k])
    fg = max(counts, key=lambda k: contrast(k, bg))
    return contrast(fg, bg), QColor(*fg), QColor(*bg)
