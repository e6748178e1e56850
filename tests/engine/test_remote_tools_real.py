"""The tool loop and structured output against llama-cpp-python's own OpenAI-compatible
server running the real SmolLM2 on 127.0.0.1: the server's tool_calls come back as
calls, the tool runs, its result goes back as a tool message and the model answers; a
json_schema answer validates (the server takes the schema in llama.cpp's form)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.receipt import tools_sha256
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnFinished, TurnToolCall
from tests.engine.test_remote_real import ALIAS, WAIT, LlamaServer
from tests.service.conftest import Recorder
from tests.service.test_tools_loop import Calculator, Result

pytestmark = pytest.mark.model


class Adder(Calculator):
    """The calculator double, answering 5 whatever the tiny model wrote."""

    def run(self, name: str, arguments: dict[str, Any], *, cancel: threading.Event,
            timeout: float = 30.0) -> Result:  # fmt: skip
        self.ran.append(arguments)
        return Result("5")


@pytest.fixture(scope="module")
def llama_server(smollm2_path: Path) -> Iterator[LlamaServer]:
    server = LlamaServer(smollm2_path)
    yield server
    server.kill()


@pytest.fixture
def remote(llama_server: LlamaServer, tmp_path: Path) -> Iterator[tuple[ChatService, Adder]]:
    calc = Adder(permission="always")
    service = ChatService(tmp_path / "chat.sqlite3", Settings(), tools=calc)
    service.load(LoadRequest(ModelRef(ALIAS, endpoint=llama_server.url))).result(WAIT)
    yield service, calc
    service.shutdown()


def test_a_tool_call_round_trip_through_a_remote_model(
    remote: tuple[ChatService, Adder],
) -> None:
    service, calc = remote
    rec = Recorder()
    opts = TurnOptions(
        sampling=SamplingParams(temperature=0.0, max_tokens=40, seed=3),
        tools=("calculator",),
        tool_choice="calculator",  # the server constrains the call to the schema
    )
    end = service.send(None, "What is 2+3? Use the calculator.", options=opts, listener=rec)
    done = end.result(WAIT)
    assert isinstance(done, TurnFinished), done
    assert len(calc.ran) == 1 and set(calc.ran[0]) == {"expr"}
    (event,) = rec.of(TurnToolCall)
    assert event.call.name == "calculator" and not event.call.error
    thread = service.read(lambda s: s.active_thread(done.conversation_id)).result(WAIT)
    assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    _, call, result, answer = thread
    assert call.finish_reason is FinishReason.TOOL_CALLS
    stored = call.meta["tool_calls"][0]
    assert stored["id"] == event.call.id and stored["arguments"] == calc.ran[0]
    assert result.content == "5" and result.meta["tool_call_id"] == stored["id"]
    # the model answered after the result (the second request had the call and result)
    assert answer.finish_reason in (FinishReason.STOP, FinishReason.LENGTH)
    assert answer.content.strip()
    sent = [calc.spec.openai()]
    first, second = call.meta["receipt"], answer.meta["receipt"]
    assert first["tools_sha256"] == tools_sha256(sent) == second["tools_sha256"]
    assert (first["tool_choice"], second["tool_choice"]) == ("calculator", "auto")


SCHEMAS = [
    {
        "type": "object",
        "properties": {"fruit": {"enum": ["apple", "pear", "plum"]}, "count": {"type": "integer"}},
        "required": ["fruit", "count"],
    },
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        },
        "required": ["name", "ok", "tags"],
    },
]


@pytest.mark.parametrize("i", range(len(SCHEMAS)))
def test_a_json_schema_answer_from_a_remote_model_validates(
    remote: tuple[ChatService, Adder], i: int
) -> None:
    service, _ = remote
    opts = TurnOptions(
        sampling=SamplingParams(temperature=0.0, max_tokens=120, seed=1), json_schema=SCHEMAS[i]
    )
    done = service.send(None, "Describe a fruit as JSON.", options=opts).result(WAIT)
    assert isinstance(done, TurnFinished), done
    assert done.message.finish_reason is FinishReason.STOP
    jsonschema.validate(json.loads(done.message.content), SCHEMAS[i])
