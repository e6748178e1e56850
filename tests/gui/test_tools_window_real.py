"""Tools through the window with the real SmolLM2 (135M): tool choice required and the
calculator at "ask": the call card, the approval card (allowed, and denied: the model
reads the denial), the result card, the saved messages; Show prompt is the prompt the
send evaluates."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.toolcalls import DENIED
from chatapp.service import default_backend_factory
from tests.gui.tools_helpers import close, load, tools_window

pytestmark = [pytest.mark.model, pytest.mark.qt_log_ignore("does not support propagateSizeHints")]
WAIT = 300_000  # ms: a bound for a broken build on a busy machine, not a speed test


@pytest.fixture
def w(qtbot: Any, smollm2_path: Path) -> Any:
    win = tools_window(qtbot, backend_factory=default_backend_factory)
    win.settings.max_tokens = 64
    win.settings.seed = 3
    win.settings.n_threads = 2
    load(qtbot, win, smollm2_path, timeout=WAIT)
    yield win
    close(win)


def _set_up_calculator(qtbot: Any, w: Any) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("Hello")
        w.send_button.click()
    sec = w.tools_controller.section
    sec.checks["calculator"].setChecked(True)
    perm = sec.permissions["calculator"]
    perm.setCurrentIndex(perm.findData("ask"))
    perm.activated.emit(perm.currentIndex())
    i = sec.choice.findData("required")
    sec.choice.setCurrentIndex(i)
    sec.choice.activated.emit(i)
    sec.steps.setValue(1)  # one call, then the model answers
    return str(w.current_conversation_id())


def _wait_for_card(qtbot: Any, w: Any) -> None:
    card = w.tools_controller.card
    qtbot.waitUntil(lambda: card.isVisible() or not w.session.busy, timeout=WAIT)
    assert card.isVisible(), [(m.role, m.content, m.meta) for m in w.session.thread()[-2:]]


def _prompts(w: Any) -> list[str]:
    seen: list[str] = []
    w.session.bridge.turn_prompt.connect(lambda ev: seen.append(ev.prompt.text))
    return seen


def test_required_calculator_call_approved_runs_and_is_saved(qtbot: Any, w: Any) -> None:
    cid = _set_up_calculator(qtbot, w)
    question = "What is 1234 * 5678? Use the calculator."
    # Show prompt with the question in the input: the tools as the template renders them
    w.input.setPlainText(question)
    actions = w.template_actions
    with qtbot.waitSignal(actions.prompt_view_opened, timeout=WAIT) as blocker:
        assert actions.show_prompt()
    preview = blocker.args[0].text_view.toPlainText()
    assert '"name": "calculator"' in preview and "<tools>" in preview

    prompts = _prompts(w)
    card = w.tools_controller.card
    w.send_button.click()
    _wait_for_card(qtbot, w)
    assert prompts[0] == preview  # what Show prompt showed is what the send evaluated
    assert "calculator" in card.title.text() and "built-in" in card.source.text()
    args = json.loads(card.arguments.toPlainText())
    assert set(args) == {"expression"}  # schema-valid under the grammar
    call_row = w.message_view.widgets()[-1]
    assert "Tool call: calculator" in w.message_view.row_layout(call_row.message_id).html

    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        card.allow_once.click()
    assert not card.isVisible()
    thread = w.store.active_thread(cid)
    user, call_msg, result, answer = thread[-4:]
    assert [m.role for m in thread[-4:]] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    assert user.content == question
    assert call_msg.finish_reason is FinishReason.TOOL_CALLS
    assert call_msg.meta["tool_calls"][0]["arguments"] == args
    assert result.meta["tool_call_id"] == call_msg.meta["tool_calls"][0]["id"]
    assert result.content and not result.meta.get("denied")
    assert answer.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert result.content in prompts[1]  # the model read the result
    html = w.message_view.row_layout(result.id).html
    assert "calculator" in html and " s" in html


def test_denied_call_reaches_the_model(qtbot: Any, w: Any) -> None:
    cid = _set_up_calculator(qtbot, w)
    prompts = _prompts(w)
    card = w.tools_controller.card
    w.input.setPlainText("Compute 17 + 25 with the calculator.")
    w.send_button.click()
    _wait_for_card(qtbot, w)
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        card.deny.click()
    thread = w.store.active_thread(cid)
    tool = thread[-2]
    assert tool.role is Role.TOOL and tool.content == DENIED and tool.meta.get("denied")
    assert len(prompts) == 2 and DENIED in prompts[1]
    assert thread[-1].role is Role.ASSISTANT
    assert "Not run: calculator" in w.message_view.row_layout(tool.id).html


def test_a_json_schema_chat_setting_constrains_the_next_answer(qtbot: Any, w: Any) -> None:
    import jsonschema

    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"],
        "additionalProperties": False,
    }
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("Hello")
        w.send_button.click()
    cid = str(w.current_conversation_id())
    sec = w.tools_controller.section
    sec.output.setCurrentIndex(sec.output.findData("schema"))
    sec.output.activated.emit(sec.output.currentIndex())
    sec.schema.setPlainText(json.dumps(schema))
    sec.save_schema.click()
    assert sec.schema_error.isHidden()
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT):
        w.input.setPlainText("Which city is the capital of France? Answer in JSON.")
        w.send_button.click()
    answer = w.store.active_thread(cid)[-1]
    jsonschema.validate(json.loads(answer.content), schema)
