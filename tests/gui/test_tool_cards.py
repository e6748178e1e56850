"""Tool call and result cards in the message view: a 2,000-message chat full of them
opens laying out only what is seen; 300-character lines and long URLs wrap at 800 px;
the cards read under a dark palette; they fold and copy with a click."""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QGuiApplication, QTextTable

from chatapp.core.conversation import FinishReason, Message, Role, new_id
from chatapp.gui.chatview.toolcards import DISPLAY_LIMIT
from chatapp.gui.chatview.view import MessageView
from tests.gui.helpers_view import dark_palette, open_conversation, text_contrast, visible

LONG_LINE = "z" * 300
LONG_URL = "https://example.com/" + "/".join(f"segment{i:03d}" for i in range(40)) + "?q=1"
BRANCHES = ("chatapp.gui.branch_actions",)


def _call(i: int, args: dict[str, Any], name: str = "calculator") -> dict[str, Any]:
    return {"id": f"call_{i}", "name": name, "arguments": args}


def _tool_turns(conv_id: str, turns: int, t: float = 1_700_000_000.0) -> list[Message]:
    """`turns` x (question, call, result, answer): 4 * turns messages."""
    rows: list[Message] = []
    parent = None
    for i in range(turns):
        q = Message(new_id(), conv_id, parent, Role.USER, f"What is {i}+{i}?", created_at=t)
        call = Message(
            new_id(),
            conv_id,
            q.id,
            Role.ASSISTANT,
            "",
            created_at=t + 1,
            model="m.gguf",
            finish_reason=FinishReason.TOOL_CALLS,
            meta={"tool_calls": [_call(i, {"expression": f"{i}+{i}"})]},
        )
        result = Message(
            new_id(),
            conv_id,
            call.id,
            Role.TOOL,
            str(2 * i),
            created_at=t + 2,
            meta={"tool_call_id": f"call_{i}", "name": "calculator", "seconds": 0.0012},
        )
        answer = Message(
            new_id(),
            conv_id,
            result.id,
            Role.ASSISTANT,
            f"It is {2 * i}.",
            created_at=t + 3,
            model="m.gguf",
            finish_reason=FinishReason.STOP,
        )
        rows += [q, call, result, answer]
        parent = answer.id
        t += 4
    return rows


def test_a_long_chat_of_tool_cards_lays_out_only_what_is_seen(qtbot: Any, make_window: Any) -> None:
    w = make_window(extensions=BRANCHES)
    w.resize(1000, 700)
    conv = w.store.create_conversation("tools", created_at=1_700_000_000)
    rows = _tool_turns(conv.id, 500)  # 2,000 messages
    w.store.insert_messages(rows)
    w.store.set_current_leaf(conv.id, rows[-1].id)
    open_conversation(w, conv.id)
    view = w.message_view
    assert len(view.widgets()) == 2000
    assert visible(view, rows[-1].id)
    assert view.built_layouts() < 60
    middle_result = rows[1002]
    assert middle_result.role is Role.TOOL
    view.scroll_to_message(middle_result.id)
    html = view.row_layout(middle_result.id).html
    assert "Result of calculator" in html and "0.0012 s" in html
    assert "Tool call: calculator" in view.row_layout(rows[1001].id).html
    assert view.built_layouts() < 120


def _messages(conv: str = "c") -> list[Message]:
    big = "\n".join(f"line {i}: " + "data " * 20 for i in range(400))
    return [
        Message("u", conv, None, Role.USER, "Fetch it", created_at=1_700_000_000),
        Message(
            "a",
            conv,
            "u",
            Role.ASSISTANT,
            "",
            created_at=1_700_000_001,
            model="m.gguf",
            finish_reason=FinishReason.TOOL_CALLS,
            meta={
                "tool_calls": [
                    _call(0, {"url": LONG_URL, "note": LONG_LINE}, "web__fetch"),
                    {
                        "id": "call_1",
                        "name": "calculator",
                        "arguments": {},
                        "raw": '{"name": "calculator", "arguments": {"expression": ',
                        "error": "The call is not valid JSON.",
                    },
                ]
            },
        ),
        Message(
            "r",
            conv,
            "a",
            Role.TOOL,
            f"{LONG_URL}\n{LONG_LINE}\n{big}",
            created_at=1_700_000_002,
            meta={"tool_call_id": "call_0", "name": "web__fetch", "seconds": 1.25},
        ),
        Message(
            "e",
            conv,
            "r",
            Role.TOOL,
            "calculator: division by zero",
            created_at=1_700_000_003,
            meta={"tool_call_id": "call_1", "name": "calculator", "is_error": True},
        ),
    ]


def _view(qtbot: Any, dark: bool = False) -> MessageView:
    view = MessageView()
    qtbot.addWidget(view)
    if dark:
        view.setPalette(dark_palette())
    view.resize(800, 700)
    view.show()
    view.show_thread(_messages())
    qtbot.waitUntil(lambda: view.paint_count > 0)
    return view


def _widest(doc: Any) -> float:
    block = doc.begin()
    widest = 0.0
    while block.isValid():
        box = doc.documentLayout().blockBoundingRect(block)
        tl = block.layout()
        for i in range(tl.lineCount()):
            line = tl.lineAt(i)
            widest = max(widest, box.x() + line.x() + line.naturalTextWidth())
        block = block.next()
    return widest


def test_cards_wrap_long_lines_and_urls_at_800_px(qtbot: Any) -> None:
    view = _view(qtbot)
    vp_width = view.viewport().width()
    assert view.horizontalScrollBar().maximum() == 0
    for mid in ("a", "r", "e"):
        view.scroll_to_message(mid)
        lay = view.row_layout(mid)
        assert lay.bubble.right() <= vp_width
        limit = lay.body.textWidth()
        assert _widest(lay.body) <= limit + 0.5, mid
    call_text = view.row_layout("a").body.toPlainText()
    # the exact arguments (the URL whole), the server, and the unreadable call as such
    assert LONG_URL in call_text and LONG_LINE in call_text
    assert "MCP server “web”" in call_text
    assert "Unreadable tool call" in call_text and "not valid JSON" in call_text
    result_text = view.row_layout("r").body.toPlainText()
    assert LONG_URL in result_text and "1.25 s" in result_text
    # a long result is shown up to DISPLAY_LIMIT characters, and the cut is said
    total = len(_messages()[2].content)
    assert f"{total - DISPLAY_LIMIT:,} more characters not shown here" in result_text
    error_text = view.row_layout("e").body.toPlainText()
    assert "Error from calculator" in error_text and "division by zero" in error_text


def _tables(doc: Any) -> list[QTextTable]:
    return [f for f in doc.rootFrame().childFrames() if isinstance(f, QTextTable)]


def test_cards_read_under_a_dark_palette(qtbot: Any) -> None:
    view = _view(qtbot, dark=True)
    view.scroll_to_message("e")
    qtbot.wait(50)
    img = view.viewport().grab().toImage()
    lay = view.row_layout("e")
    origin = view.row_rect("e").topLeft()
    table = _tables(lay.body)[0]
    frame = lay.body.documentLayout().frameBoundingRect(table).toRect()
    card = frame.translated(lay.body_origin + origin).adjusted(3, 3, -3, -3)
    ratio, fg, bg = text_contrast(img, card)
    assert bg.lightness() < 100, f"card background {bg.name()} is not dark"
    assert ratio >= 4.5, f"{fg.name()} on {bg.name()} is {ratio:.2f}:1"


def _anchor_point(view: MessageView, mid: str, href: str) -> QPoint:
    """Where the link `href` of a row's body is drawn (viewport coordinates)."""
    lay = view.row_layout(mid)
    doc = lay.body
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().anchorHref() == href:
                pos = frag.position() - block.position() + 1
                line = block.layout().lineForTextPosition(pos)
                x = line.cursorToX(pos)
                x = x[0] if isinstance(x, tuple) else x
                box = doc.documentLayout().blockBoundingRect(block)
                p = QPoint(round(box.x() + x), round(box.y() + line.y() + line.height() / 2))
                return p + lay.body_origin + view.row_rect(mid).topLeft()
            it += 1
        block = block.next()
    raise AssertionError(f"no link {href} in {mid}")


def test_a_card_folds_and_copies_with_a_click(qtbot: Any) -> None:
    view = _view(qtbot)
    view.scroll_to_message("a")
    assert LONG_LINE in view.row_layout("a").body.toPlainText()
    qtbot.mouseClick(
        view.viewport(),
        Qt.MouseButton.LeftButton,
        pos=_anchor_point(view, "a", "toolcard:toggle:0"),
    )
    folded = view.row_layout("a").body.toPlainText()
    assert LONG_LINE not in folded and "Show" in folded  # folded: its header only
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=_anchor_point(view, "a", "toolcard:copy:0")
    )
    copied = json.loads(QGuiApplication.clipboard().text())
    assert copied == {"name": "web__fetch", "arguments": {"url": LONG_URL, "note": LONG_LINE}}
    view.scroll_to_message("r")
    qtbot.mouseClick(
        view.viewport(), Qt.MouseButton.LeftButton, pos=_anchor_point(view, "r", "toolcard:copy:0")
    )
    assert QGuiApplication.clipboard().text() == _messages()[2].content  # all of it
    assert isinstance(view.row_rect("r"), QRect)


def test_copying_an_answer_that_is_only_calls_copies_the_calls(qtbot: Any) -> None:
    view = _view(qtbot)
    view.scroll_to_message("a")
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.click_point("a", "copy"))
    text = QGuiApplication.clipboard().text()
    assert LONG_URL in text and '"name": "web__fetch"' in text
    assert '{"name": "calculator", "arguments": {"expression": ' in text  # the unreadable one
