"""The tool loop in a turn: call -> approval -> run -> result -> the model answers, every
step saved in the conversation as it happens."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatapp.core.backend import ModelRef
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.settings import Settings
from chatapp.core.toolcalls import DENIED
from chatapp.engine.local import LocalBackend
from chatapp.service import ChatService, LoadRequest
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnToolCall, TurnToolResult
from chatapp.service.turn import TurnOptions
from tests.fakes import ScriptedEngine
from tests.service.conftest import Recorder


@dataclass
class Spec:
    name: str
    description: str
    parameters: dict[str, Any]
    source: str = "test"
    default_permission: str = "ask"

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass
class Result:
    content: str
    is_error: bool = False
    truncated: bool = False
    seconds: float = 0.0


class Calculator:
    """A test double of chatapp.tools' registry with one tool."""

    def __init__(self, permission: str = "ask", huge: bool = False) -> None:
        self.spec = Spec(
            "calculator",
            "Evaluate an arithmetic expression.",
            {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]},
            default_permission=permission,
        )
        self.ran: list[dict[str, Any]] = []
        self.huge = huge

    def specs(self, names: list[str] | None = None) -> list[Spec]:
        return [self.spec] if names is None or "calculator" in names else []

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> Result:
        self.ran.append(arguments)
        if self.huge:
            return Result("9" * 50_000)
        a, b = arguments["expr"].split("+")
        return Result(str(int(a) + int(b)))

    def close(self) -> None:
        self.closed = True


class Replies(ScriptedEngine):
    """Each generate() answers with the next of `replies`."""

    def __init__(self, replies: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.replies = list(replies)

    def generate(self, prompt: list[int], params: Any, cancel: Any, **kw: Any) -> Any:
        self.reply = self.replies.pop(0) if self.replies else "nothing more"
        kw.pop("grammar", None)
        return super().generate(prompt, params, cancel, **kw)


CALL = '<tool_call>\n{"name": "calculator", "arguments": {"expr": "2+3"}}\n</tool_call>'


def service(tmp_path: Path, tools: Any, replies: list[str]) -> ChatService:
    engines: list[Replies] = []

    def factory(req: LoadRequest) -> LocalBackend:
        e = Replies(replies, path=req.ref.name, n_ctx=200_000)
        engines.append(e)
        return LocalBackend(e, version="scripted")

    svc = ChatService(tmp_path / "chat.sqlite3", Settings(), factory, tools=tools)
    svc.engines = engines  # type: ignore[attr-defined]
    svc.load(LoadRequest(ModelRef.local(tmp_path / "fake.gguf"))).result(timeout=30)
    return svc


def decoded(engine: ScriptedEngine, i: int) -> str:
    return bytes(t - 1 for t in engine.prompts[i]).decode("utf-8")


def test_call_result_answer_saved_in_order(tmp_path: Path) -> None:
    calc = Calculator()
    svc = service(tmp_path, calc, ["Let me compute. " + CALL, "The sum is 5."])
    try:
        rec = Recorder()
        asked: list[Any] = []
        opts = TurnOptions(tools=("calculator",), approve=lambda c: asked.append(c) or True)
        h = svc.send(None, "What is 2+3?", options=opts, listener=rec)
        end = h.result(timeout=30)
        assert isinstance(end, TurnFinished), end
        assert end.message.content == "The sum is 5."
        assert calc.ran == [{"expr": "2+3"}]
        assert [c.name for c in asked] == ["calculator"]
        # the call is shown as a call, never as answer text
        shown = "".join(e.chunk.text for e in rec.of(TurnChunk) if e.chunk.channel == "answer")
        assert "<tool_call>" not in shown and "Let me compute." in shown
        calls = [e.chunk.text for e in rec.of(TurnChunk) if e.chunk.channel == "tool_call"]
        assert len(calls) == 1 and '"calculator"' in calls[0]
        assert len(rec.of(TurnToolCall)) == 1 and rec.of(TurnToolResult)[0].outcome.content == "5"
        thread = svc.read(lambda s: s.active_thread(end.conversation_id)).result(timeout=10)
        assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
        _user, call, tool, answer = thread
        assert call.content == "Let me compute."
        assert call.finish_reason is FinishReason.TOOL_CALLS
        stored = call.meta["tool_calls"][0]
        assert stored["name"] == "calculator" and stored["arguments"] == {"expr": "2+3"}
        assert tool.content == "5" and tool.meta["tool_call_id"] == stored["id"]
        assert answer.content == "The sum is 5." and answer.finish_reason is FinishReason.STOP
        # the second step's prompt holds the tools, the call and its result
        second = decoded(svc.engines[0], 1)  # type: ignore[attr-defined]
        assert "<tools>" in second and '"expr": "2+3"' in second
        assert "<tool_response>\n5\n</tool_response>" in second
    finally:
        svc.shutdown()


def test_denied_call_tells_the_model(tmp_path: Path) -> None:
    calc = Calculator()
    svc = service(tmp_path, calc, [CALL, "Alright, I will not."])
    try:
        opts = TurnOptions(tools=("calculator",), approve=lambda c: False)
        end = svc.send(None, "What is 2+3?", options=opts).result(timeout=30)
        assert isinstance(end, TurnFinished)
        assert calc.ran == []
        thread = svc.read(lambda s: s.active_thread(end.conversation_id)).result(timeout=10)
        tool = thread[2]
        assert tool.role is Role.TOOL and tool.content == DENIED and tool.meta["denied"]
        assert DENIED in decoded(svc.engines[0], 1)  # type: ignore[attr-defined]
    finally:
        svc.shutdown()


def test_step_limit_and_result_cap(tmp_path: Path) -> None:
    calc = Calculator(permission="always", huge=True)
    settings_steps = 2
    svc = service(tmp_path, calc, [CALL] * 10)
    svc.settings.tool_max_steps = settings_steps
    try:
        end = svc.send(None, "Go", options=TurnOptions(tools=("calculator",))).result(timeout=30)
        assert isinstance(end, TurnFinished)
        assert len(calc.ran) == settings_steps
        thread = svc.read(lambda s: s.active_thread(end.conversation_id)).result(timeout=10)
        tools = [m for m in thread if m.role is Role.TOOL]
        assert len(tools) == settings_steps
        assert (
            tools[0].meta["truncated"]
            and "[... cut: 16,000 of 50,000 characters shown]" in tools[0].content
        )
    finally:
        svc.shutdown()


def test_unreadable_call_is_shown_and_answered(tmp_path: Path) -> None:
    calc = Calculator(permission="always")
    svc = service(tmp_path, calc, ['<tool_call>{"name": calculator}</tool_call>', "Sorry."])
    try:
        rec = Recorder()
        end = svc.send(None, "Go", options=TurnOptions(tools=("calculator",)), listener=rec).result(
            timeout=30
        )
        assert isinstance(end, TurnFinished)
        call = rec.of(TurnToolCall)[0].call
        assert call.error and call.raw == '{"name": calculator}'
        assert calc.ran == []
        assert rec.of(TurnToolResult)[0].outcome.is_error
    finally:
        svc.shutdown()


def test_unknown_tool_refused_before_anything_is_written(tmp_path: Path) -> None:
    svc = service(tmp_path, Calculator(), ["x"])
    try:
        end = svc.send(None, "Go", options=TurnOptions(tools=("nope",))).result(timeout=30)
        assert isinstance(end, TurnFailed) and "nope" in end.error
    finally:
        svc.shutdown()


def test_bad_schema_names_the_keyword(tmp_path: Path) -> None:
    svc = service(tmp_path, None, ["x"])
    try:
        schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^a"}}}
        end = svc.send(None, "Go", options=TurnOptions(json_schema=schema)).result(timeout=30)
        assert isinstance(end, TurnFailed) and "'pattern'" in end.error
    finally:
        svc.shutdown()


def test_json_dumps_round_trip() -> None:
    assert json.loads(CALL.split("\n")[1])["name"] == "calculator"


class Stopping(Calculator):
    """A tool during which the user presses Stop; it sees the turn's cancel event."""

    def __init__(self) -> None:
        super().__init__(permission="always")
        self.handle: Any = None
        self.ready = threading.Event()
        self.saw_cancel = False

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> Result:
        assert self.ready.wait(30)
        self.handle.cancel()
        self.saw_cancel = cancel.is_set()
        return Result("partial", is_error=True)


def test_stop_during_a_tool_ends_the_turn_and_keeps_the_steps(tmp_path: Path) -> None:
    tool = Stopping()
    svc = service(tmp_path, tool, [CALL, "never generated"])
    try:
        h = svc.send(None, "Go", options=TurnOptions(tools=("calculator",)))
        tool.handle = h
        tool.ready.set()
        end = h.result(timeout=30)
        assert isinstance(end, TurnFinished), end
        assert tool.saw_cancel
        thread = svc.read(lambda s: s.active_thread(end.conversation_id)).result(timeout=10)
        assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT, Role.TOOL]
        assert thread[2].content == "partial" and thread[2].meta["is_error"]
        assert len(svc.engines[0].prompts) == 1  # type: ignore[attr-defined]
    finally:
        svc.shutdown()


class ControlMarker(ScriptedEngine):
    """Byte 0x01 is one control token whose text is [TOOL_CALLS] (as in Mistral's vocabulary)."""

    def token_bytes(self, token_id: int) -> bytes:
        return b"[TOOL_CALLS]" if token_id == 2 else super().token_bytes(token_id)

    def is_special(self, token_id: int) -> bool:
        return token_id == 2 or super().is_special(token_id)


def test_a_control_token_that_opens_a_call_passes_when_tools_are_offered() -> None:
    from chatapp.core.generation import ReplyStream
    from chatapp.core.token_engine import SamplingParams

    engine = ControlMarker(reply='ok\x01[{"name": "calculator", "arguments": {}}]')

    def answer(keep: tuple[str, ...]) -> str:
        stream = ReplyStream(engine, [1], SamplingParams(), threading.Event(), keep_special=keep)
        return "".join(c.text for c in stream)

    assert answer(()) == "ok"  # a control token ends the turn
    assert answer(("[TOOL_CALLS]",)) == 'ok[TOOL_CALLS][{"name": "calculator", "arguments": {}}]'


def test_gpt_oss_stream_gives_thinking_and_a_call_never_answer_text() -> None:
    """ToolStream over a harmony answer: analysis on the thinking channel, the call on
    the tool_call channel, nothing of the markup in the answer."""
    from chatapp.core.backend import Chunk, ReplyStats
    from chatapp.service.tool_loop import ToolStream
    from tests.core.test_toolcalls import GPT_OSS

    class Stream:
        prompt = None
        stats = ReplyStats()
        thinking = ""

        def __iter__(self):  # type: ignore[no-untyped-def]
            for i in range(0, len(GPT_OSS), 5):
                yield Chunk(GPT_OSS[i : i + 5])

    stream = ToolStream(Stream(), "harmony")
    chunks = list(stream)
    assert "".join(c.text for c in chunks if c.channel == "answer") == ""
    assert stream.thinking == "The user wants 2+3; use the calculator."
    (call,) = stream.calls
    assert call.name == "calculator" and call.arguments == {"expression": "2+3"}
    assert [c.text for c in chunks if c.channel == "tool_call"] == [call.raw]
    assert stream.stats.finish_reason is FinishReason.TOOL_CALLS
