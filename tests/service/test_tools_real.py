"""Constrained output with the real SmolLM2 (135M): a required tool call is valid for the
tool's schema (nested objects, enums, arrays, required fields), a JSON schema answer is
valid for its schema, and the whole loop runs and is saved."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnFinished, TurnToolCall
from tests.service.conftest import Recorder
from tests.service.test_tools_loop import Calculator, Result, Spec

pytestmark = pytest.mark.model
WAIT = 300

BOOKING = {
    "type": "object",
    "properties": {
        "guest": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "maxLength": 40},
                "age": {"type": "integer"},
            },
            "required": ["name", "age"],
            "additionalProperties": False,
        },
        "room": {"enum": ["single", "double", "suite"]},
        "nights": {
            "type": "array",
            "items": {"type": "string", "maxLength": 12},
            "minItems": 1,
            "maxItems": 3,
        },
        "breakfast": {"type": "boolean"},
        "note": {"anyOf": [{"type": "string", "maxLength": 30}, {"type": "null"}]},
    },
    "required": ["guest", "room", "nights"],
    "additionalProperties": False,
}


class Tools(Calculator):
    def __init__(self) -> None:
        super().__init__(permission="always")
        self.booking = Spec("book_room", "Book a hotel room.", BOOKING, default_permission="always")

    def specs(self, names: list[str] | None = None) -> list[Spec]:
        every = [self.spec, self.booking]
        return [s for s in every if names is None or s.name in names]

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> Result:
        if name == "book_room":
            self.ran.append(arguments)
            return Result("Booked: confirmation 7731.")
        return super().run(name, arguments, cancel=cancel, timeout=timeout)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path):
    db = tmp_path_factory.mktemp("tools") / "chat.sqlite3"
    s = ChatService(db, Settings(tool_max_steps=1), tools=Tools())
    s.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
    yield s
    s.shutdown()


QUESTIONS = [
    "Book a double room for Ana, 31, for Friday and Saturday.",
    "I need a suite for three nights, my name is Bob and I am 45. No breakfast.",
    "Reserve something cheap for Kim (age 22) tonight, with breakfast.",
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_required_call_is_valid_for_its_schema(service: ChatService, seed: int) -> None:
    rec = Recorder()
    opts = TurnOptions(
        sampling=SamplingParams(temperature=1.0, seed=seed, max_tokens=100),
        tools=("book_room", "calculator"),
        tool_choice="book_room",
    )
    end = service.send(None, QUESTIONS[seed - 1], options=opts, listener=rec).result(WAIT)
    assert isinstance(end, TurnFinished), end
    calls = [e.call for e in rec.of(TurnToolCall)]
    assert calls, "no call was made"
    first = calls[0]
    assert not first.error and first.name == "book_room"
    jsonschema.validate(first.arguments, BOOKING)
    # the loop went on: the result was saved and the model answered after it
    thread = service.read(lambda s: s.active_thread(end.conversation_id)).result(WAIT)
    roles = [m.role for m in thread]
    assert roles[:4] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    assert thread[2].content == "Booked: confirmation 7731."
    assert thread[2].meta["tool_call_id"] == thread[1].meta["tool_calls"][0]["id"]


def test_required_call_to_any_tool(service: ChatService) -> None:
    rec = Recorder()
    opts = TurnOptions(
        sampling=SamplingParams(temperature=0.8, seed=9, max_tokens=60),
        tools=("calculator",),
        tool_choice="required",
    )
    end = service.send(None, "What is 12+30?", options=opts, listener=rec).result(WAIT)
    assert isinstance(end, TurnFinished), end
    call = rec.of(TurnToolCall)[0].call
    assert call.name == "calculator" and isinstance(call.arguments.get("expr"), str)


SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 30},
            "population": {"type": "integer"},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "colors": {
                "type": "array",
                "items": {"enum": ["red", "green", "blue"]},
                "minItems": 2,
                "maxItems": 4,
            },
            "mood": {"$ref": "#/$defs/mood"},
        },
        "required": ["colors", "mood"],
        "$defs": {
            "mood": {
                "type": "object",
                "properties": {"happy": {"type": "boolean"}, "score": {"type": "number"}},
                "required": ["happy", "score"],
            }
        },
    },
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"n": {"type": "integer"}, "ok": {"type": ["boolean", "null"]}},
            "required": ["n"],
        },
        "maxItems": 3,
    },
]


@pytest.mark.parametrize("i", range(len(SCHEMAS)))
def test_json_schema_answer_is_valid(service: ChatService, i: int) -> None:
    schema = SCHEMAS[i]
    opts = TurnOptions(
        sampling=SamplingParams(temperature=1.0, seed=i + 5, max_tokens=150), json_schema=schema
    )
    end = service.send(None, "Describe a city you like, as JSON.", options=opts).result(WAIT)
    assert isinstance(end, TurnFinished), end
    jsonschema.validate(json.loads(end.message.content), schema)


def test_json_object_answer_parses(service: ChatService) -> None:
    opts = TurnOptions(
        sampling=SamplingParams(temperature=0.2, seed=3, max_tokens=200), json_schema=True
    )
    ask = "Reply with a JSON object with one key, ok, set to true."
    end = service.send(None, ask, options=opts).result(WAIT)
    assert isinstance(end, TurnFinished), end
    # any JSON object may go on past max_tokens (then it is cut, as OpenAI's is)
    assert end.stats.finish_reason is FinishReason.STOP, end.message.content
    assert isinstance(json.loads(end.message.content), dict)
