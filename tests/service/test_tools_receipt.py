"""The receipt of an answer given tools: a sha256 of the tool definitions exactly as
sent, their names and the tool choice of that step; none of it without tools."""

from __future__ import annotations

import copy
from pathlib import Path

from chatapp.core.receipt import Receipt, tools_json, tools_sha256, verify_tools
from chatapp.service.events import TurnFinished
from chatapp.service.turn import TurnOptions
from tests.service.test_tools_loop import CALL, Calculator, service


def _thread_receipts(svc, conversation_id: str) -> list[Receipt | None]:  # type: ignore[no-untyped-def]
    thread = svc.read(lambda s: s.active_thread(conversation_id)).result(timeout=10)
    return [Receipt.from_dict(m.meta.get("receipt")) for m in thread if m.role.value == "assistant"]


def test_every_step_records_the_tools_it_offered(tmp_path: Path) -> None:
    calc = Calculator(permission="always")
    svc = service(tmp_path, calc, [CALL, "The sum is 5."])
    try:
        opts = TurnOptions(tools=("calculator",))
        end = svc.send(None, "What is 2+3?", options=opts).result(timeout=30)
        assert isinstance(end, TurnFinished), end
        first, second = _thread_receipts(svc, end.conversation_id)
        assert first is not None and second is not None
        sent = [calc.spec.openai()]
        assert first.tools_sha256 == tools_sha256(sent) == second.tools_sha256
        assert first.tools == ("calculator",) and first.tool_choice == "auto"
        assert first.as_dict()["tools"] == ["calculator"]
        # stored as JSON and read back the same
        assert Receipt.from_dict(end.message.meta["receipt"]) == second
        assert verify_tools(second, sent).matches
    finally:
        svc.shutdown()


def test_no_tools_no_tool_fields(tmp_path: Path) -> None:
    svc = service(tmp_path, Calculator(), ["Hello."])
    try:
        end = svc.send(None, "Hi").result(timeout=30)
        assert isinstance(end, TurnFinished), end
        stored = end.message.meta["receipt"]
        assert not {"tools_sha256", "tools", "tool_choice"} & set(stored)
        receipt = Receipt.from_dict(stored)
        assert receipt is not None and receipt.tools_sha256 == ""
        assert verify_tools(receipt, None).matches
        assert not verify_tools(receipt, [Calculator().spec.openai()]).matches
    finally:
        svc.shutdown()


def test_a_changed_schema_changes_the_sha256() -> None:
    spec = Calculator().spec.openai()
    changed = copy.deepcopy(spec)
    changed["function"]["parameters"]["properties"]["expr"]["description"] = "e.g. 2+3"
    assert tools_sha256([spec]) != tools_sha256([changed])
    # the order of the keys is part of what the template renders, so of the sha256
    reordered = {"function": spec["function"], "type": spec["type"]}
    assert tools_json([reordered]) != tools_json([spec])
    assert tools_sha256([spec]) == tools_sha256([copy.deepcopy(spec)])
    receipt = Receipt(1, "x", "t", "s", "h", {}, "b", "m", tools_sha256=tools_sha256([spec]),
                      tools=("calculator",))  # fmt: skip
    check = verify_tools(receipt, [changed])
    assert not check.matches and "definitions of calculator changed" in check.detail
    other = {"type": "function", "function": {"name": "clock", "parameters": {}}}
    assert "clock are given now" in verify_tools(receipt, [other]).detail


def test_a_required_call_is_recorded_then_auto(tmp_path: Path) -> None:
    calc = Calculator(permission="always")
    svc = service(tmp_path, calc, [CALL, "Done."])
    try:
        opts = TurnOptions(tools=("calculator",), tool_choice="required")
        end = svc.send(None, "What is 2+3?", options=opts).result(timeout=30)
        assert isinstance(end, TurnFinished), end
        first, second = _thread_receipts(svc, end.conversation_id)
        assert first is not None and second is not None
        assert (first.tool_choice, second.tool_choice) == ("required", "auto")
    finally:
        svc.shutdown()
