"""Tools in the window, with the scripted engine: the chat's Tools section decides what
the next send offers and how calls are approved; call, approval and result cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.toolcalls import DENIED
from chatapp.gui.chat_tools import OPTIONS_KEY
from chatapp.tools.permissions import META_KEY
from tests.gui.tools_helpers import (
    CALL,
    close,
    decoded,
    load,
    send_and_wait_started,
    tools_window,
)

WAIT = 20_000


@pytest.fixture
def window(qtbot: Any, fake_model_file: Path) -> Any:
    made: list[Any] = []

    def make(replies: list[str], **kw: Any) -> Any:
        w = tools_window(qtbot, replies=replies, **kw)
        made.append(w)
        load(qtbot, w, fake_model_file)
        return w

    yield make
    for w in made:
        close(w)


def _chat(qtbot: Any, w: Any) -> str:
    """A chat with one answer (the Tools section applies to a started chat)."""
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("hello")
        w.send_button.click()
    cid = w.current_conversation_id()
    assert cid
    return str(cid)


def _section(w: Any) -> Any:
    return w.tools_controller.section


def _saved(qtbot: Any, w: Any, cid: str, key: str, *path: str, expect: Any = None) -> Any:
    """The value at meta[key][path...] once the store has it (saves are asynchronous);
    with `expect`, once it is that (else the last value read, for the assertion)."""

    def value() -> Any:
        v: Any = w.store.get_conversation(cid).meta.get(key)
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v

    if expect is None:
        qtbot.waitUntil(lambda: value() is not None, timeout=WAIT)
    else:
        qtbot.waitUntil(lambda: value() == expect, timeout=WAIT)
    return value()


def _turn_on_calculator(qtbot: Any, w: Any, permission: str = "ask", choice: str = "auto") -> None:
    sec = _section(w)
    sec.checks["calculator"].setChecked(True)
    perm = sec.permissions["calculator"]
    perm.setCurrentIndex(perm.findData(permission))
    perm.activated.emit(perm.currentIndex())
    i = sec.choice.findData(choice)
    assert i >= 0, choice
    sec.choice.setCurrentIndex(i)
    sec.choice.activated.emit(i)


def _answer_card(qtbot: Any, w: Any, button: str) -> None:
    card = w.tools_controller.card
    qtbot.waitUntil(card.isVisible, timeout=WAIT)
    getattr(card, button).click()


def test_the_sections_tools_reach_the_next_send_and_an_allowed_call_runs(
    qtbot: Any, window: Any
) -> None:
    w = window(["Hi.", CALL, "It is 5."])
    cid = _chat(qtbot, w)
    assert "calculator" not in decoded(w.engines[0], 0)  # no tools until switched on
    _turn_on_calculator(qtbot, w, "ask", "required")
    assert _saved(qtbot, w, cid, META_KEY, "permissions", "calculator", expect="ask") == "ask"
    assert _saved(qtbot, w, cid, OPTIONS_KEY, "choice", expect="required") == "required"

    send_and_wait_started(qtbot, w, "What is 2+3?")
    card = w.tools_controller.card
    qtbot.waitUntil(card.isVisible, timeout=WAIT)
    # the send offered the calculator (rendered into its prompt) under a call grammar
    prompt = decoded(w.engines[0], 1)
    assert '"name": "calculator"' in prompt and "What is 2+3?" in prompt
    assert w.engines[0].grammars[1] is not None
    # the approval card: the tool, where it comes from, the exact arguments
    assert "calculator" in card.title.text()
    assert "built-in" in card.source.text()
    assert json.loads(card.arguments.toPlainText()) == {"expression": "2+3"}
    # the call's card is in the chat already, before it runs
    answer_row = w.message_view.widgets()[-1]
    html = w.message_view.row_layout(answer_row.message_id).html
    assert "Tool call: calculator" in html and "2+3" in html
    assert w.session.busy

    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        card.allow_once.click()
    assert not card.isVisible()
    thread = w.store.active_thread(cid)
    assert [m.role for m in thread][-4:] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    call_msg, result, final = thread[-3:]
    assert call_msg.finish_reason is FinishReason.TOOL_CALLS
    assert call_msg.meta["tool_calls"][0]["arguments"] == {"expression": "2+3"}
    assert result.content == "5" and result.meta["name"] == "calculator"
    assert final.content == "It is 5."
    # the model was told the result
    assert "5" in decoded(w.engines[0], 2).split("What is 2+3?")[1]
    # the view shows the three: the call card, the result card (with its time), the answer
    shown = [r.message_id for r in w.message_view.widgets()]
    assert shown[-3:] == [call_msg.id, result.id, final.id]
    result_html = w.message_view.row_layout(result.id).html
    assert "Result of calculator" in result_html and " s" in result_html
    assert "It is 5." in w.message_view.row_layout(final.id).html
    # "ask" again for the next call (allowed once)
    assert _saved(qtbot, w, cid, META_KEY, "permissions", "calculator", expect="ask") == "ask"


def test_deny_tells_the_model_and_is_saved(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", CALL, "I may not."])
    cid = _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "ask")
    send_and_wait_started(qtbot, w, "Add 2 and 3")
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        _answer_card(qtbot, w, "deny")
    thread = w.store.active_thread(cid)
    tool = thread[-2]
    assert tool.role is Role.TOOL and tool.content == DENIED and tool.meta["denied"]
    assert DENIED in decoded(w.engines[0], 2)  # the model read it
    assert "Not run: calculator" in w.message_view.row_layout(tool.id).html


def test_allow_for_this_chat_is_saved_and_not_asked_again(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", CALL, "5.", CALL, "5 again."])
    cid = _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "ask")
    send_and_wait_started(qtbot, w, "2+3?")
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        _answer_card(qtbot, w, "allow_chat")
    assert _saved(qtbot, w, cid, META_KEY, "permissions", "calculator", expect="always") == "always"
    assert _section(w).permissions["calculator"].currentData() == "always"
    shown: list[Any] = []
    w.tools_controller.broker.asked.connect(shown.append)
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("again")
        w.send_button.click()
    assert not shown
    assert w.store.active_thread(cid)[-1].content == "5 again."


def test_stop_while_the_card_waits_ends_the_turn_cleanly(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", CALL, "never reached"])
    cid = _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "ask")
    send_and_wait_started(qtbot, w, "2+3?")
    card = w.tools_controller.card
    qtbot.waitUntil(card.isVisible, timeout=WAIT)
    with qtbot.waitSignal(w.session.busy_changed, timeout=WAIT):
        w.stop_button.click()
    qtbot.waitUntil(lambda: not card.isVisible(), timeout=WAIT)
    assert not w.session.busy
    assert not w.message_bar.isVisible()  # no error: the user stopped it
    thread = w.store.active_thread(cid)
    assert thread[-1].role is Role.TOOL and thread[-1].content == "Stopped by the user."
    assert len(w.engines[0].prompts) == 2  # the model was not asked again
    # the window goes on: the next send works
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("fine")
        w.send_button.click()
    assert w.store.active_thread(cid)[-1].content == "never reached"


def test_tools_are_per_chat_and_never_is_not_offered(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", "Other.", "Third."])
    _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "always")
    first = w.current_conversation_id()
    w.session.new_conversation()
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("another chat")
        w.send_button.click()
    assert w.current_conversation_id() != first
    assert "calculator" not in decoded(w.engines[0], 1)
    assert not _section(w).checks["calculator"].isChecked()
    w.session.select_conversation(first)
    assert _section(w).checks["calculator"].isChecked()
    perm = _section(w).permissions["calculator"]
    perm.setCurrentIndex(perm.findData("never"))
    perm.activated.emit(perm.currentIndex())
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("no tools now")
        w.send_button.click()
    assert "calculator" not in decoded(w.engines[0], 2)


def test_show_prompt_is_what_the_next_send_sends_with_tools(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", "Fine."])
    _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "always")
    w.input.setPlainText("What is 6*7?")
    actions = w.template_actions
    with qtbot.waitSignal(actions.prompt_view_opened, timeout=WAIT) as blocker:
        assert actions.show_prompt()
    shown = blocker.args[0].text_view.toPlainText()
    assert '"name": "calculator"' in shown
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.send_button.click()
    assert decoded(w.engines[0], 1) == shown


def test_structured_output_and_steps_are_chat_settings(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", '{"a": 1}', CALL, CALL, "done"])
    cid = _chat(qtbot, w)
    sec = _section(w)
    # a schema the grammar cannot express is refused, naming the keyword
    sec.output.setCurrentIndex(sec.output.findData("schema"))
    sec.output.activated.emit(sec.output.currentIndex())
    sec.schema.setPlainText('{"type": "string", "pattern": "^a+$"}')
    sec.save_schema.click()
    assert not sec.schema_error.isHidden() and "pattern" in sec.schema_error.text()
    sec.schema.setPlainText('{"type": "object", "properties": {"a": {"type": "integer"}}}')
    sec.save_schema.click()
    assert sec.schema_error.isHidden()
    assert _saved(qtbot, w, cid, OPTIONS_KEY, "output", "properties", "a")
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("json please")
        w.send_button.click()
    grammar = w.engines[0].grammars[-1]  # the send was constrained to the schema
    assert grammar is not None and "root-a-1 ::= integer" in grammar
    # back to free text; one tool step per turn: the second call is not answered
    sec.output.setCurrentIndex(sec.output.findData("text"))
    sec.output.activated.emit(sec.output.currentIndex())
    _turn_on_calculator(qtbot, w, "always")
    sec.steps.setValue(1)
    assert w.session.turn_options().tool_max_steps == 1
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("add twice")
        w.send_button.click()
    thread = w.store.active_thread(cid)
    roles = [m.role for m in thread][-4:]
    assert roles == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    assert w.engines[0].grammars[2] is None  # free text again


def test_granted_folder_reaches_the_file_tools(qtbot: Any, window: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("buy milk\n")
    call = '<tool_call>\n{"name": "read_file", "arguments": {"path": "todo.txt"}}\n</tool_call>'
    w = window(["Hi.", call, "Milk."])
    cid = _chat(qtbot, w)
    sec = _section(w)
    sec.grant_folder(str(notes))
    assert str(notes) in sec.folders.text()
    sec.checks["read_file"].setChecked(True)
    perm = sec.permissions["read_file"]
    perm.setCurrentIndex(perm.findData("always"))
    perm.activated.emit(perm.currentIndex())
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("what is on my list?")
        w.send_button.click()
    tool = w.store.active_thread(cid)[-2]
    assert tool.role is Role.TOOL and "buy milk" in tool.content, tool.content
    assert str(notes) in decoded(w.engines[0], 1)  # the tool's description names it


def test_an_unreadable_call_is_shown_as_such(qtbot: Any, window: Any) -> None:
    broken = '<tool_call>\n{"name": "calculator", "arguments": {"expression": </tool_call>'
    w = window(["Hi.", broken, "Sorry."])
    cid = _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "always")
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("2+3?")
        w.send_button.click()
    call_msg = w.store.active_thread(cid)[-3]
    html = w.message_view.row_layout(call_msg.id).html
    assert "Unreadable tool call" in html
    assert "&quot;expression&quot;:" in html or '"expression":' in html


def test_closing_the_window_while_the_card_waits_does_not_hang(qtbot: Any, window: Any) -> None:
    w = window(["Hi.", CALL, "never reached"])
    cid = _chat(qtbot, w)
    _turn_on_calculator(qtbot, w, "ask")
    send_and_wait_started(qtbot, w, "2+3?")
    qtbot.waitUntil(w.tools_controller.card.isVisible, timeout=WAIT)
    w.close()  # cancels the turn and joins the inference thread: the wait must end
    assert not w.isVisible()
    assert not w.session.service._host.infer._thread.is_alive()
    thread = w.store.active_thread(cid)
    assert thread[-1].role is Role.TOOL and thread[-1].content == "Stopped by the user."


def test_an_mcp_servers_tool_is_listed_switched_on_approved_and_run(
    qtbot: Any, qapp: Any, fake_model_file: Path
) -> None:
    import sys

    from chatapp.paths import app_paths

    server = str(Path(__file__).resolve().parents[1] / "tools" / "mcp_server.py")
    config = app_paths().ensure().config
    (config / "mcp.json").write_text(
        json.dumps({"mcpServers": {"test": {"command": sys.executable, "args": [server, "stdio"]}}})
    )
    call = '<tool_call>\n{"name": "test__add", "arguments": {"a": 2, "b": 3}}\n</tool_call>'
    w = tools_window(qtbot, replies=["Hi.", call, "Five."])
    try:
        load(qtbot, w, fake_model_file)
        cid = _chat(qtbot, w)
        sec = _section(w)
        assert not sec.mcp_button.isHidden() and "test__add" not in sec.checks
        sec.mcp_button.click()  # the servers start off the GUI thread
        qtbot.waitUntil(lambda: "test__add" in sec.checks, timeout=60_000)
        assert "tools from MCP servers" in sec.mcp_note.text()
        assert sec.permissions["test__add"].currentData() == "ask"  # an MCP tool asks
        sec.checks["test__add"].setChecked(True)
        send_and_wait_started(qtbot, w, "add 2 and 3")
        card = w.tools_controller.card
        qtbot.waitUntil(card.isVisible, timeout=60_000)
        assert "test__add" in card.title.text() and "MCP server “test”" in card.source.text()
        assert json.loads(card.arguments.toPlainText()) == {"a": 2, "b": 3}
        with qtbot.waitSignal(w.session.reply_finished, timeout=60_000):
            card.allow_once.click()
        result = w.store.active_thread(cid)[-2]
        assert result.role is Role.TOOL and result.content == "5"
    finally:
        close(w)
