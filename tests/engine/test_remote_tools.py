"""Tools and structured output through RemoteBackend against scripted servers on
127.0.0.1 (real HTTP): what the request carries, streamed tool_calls deltas gathered into
calls, and a server that cannot do what was asked failing in one clear line."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatapp.core.backend import ChatRequest
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import UserError
from chatapp.engine.remote import RemoteBackend, ServerFault, Unsupported
from chatapp.service.tool_loop import ToolStream
from chatapp.service.tool_setup import response_format
from tests.engine.test_remote_errors import _sse

HI = [{"role": "user", "content": "2+3?"}]
CALC = {
    "type": "function",
    "function": {
        "name": "calculator",
        "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}},
    },
}
SCHEMA = {
    "type": "object",
    "properties": {"fruit": {"enum": ["apple", "pear"]}},
    "required": ["fruit"],
}


def _delta(d: dict, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


class Capture:
    """A scripted /chat/completions that records each request body."""

    def __init__(self, answer: Callable[[dict], Response]) -> None:
        self.bodies: list[dict] = []
        self.answer = answer

    async def handler(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.bodies.append(body)
        return self.answer(body)


@pytest.fixture
def serve() -> Iterator[Callable[[Capture], str]]:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from chatapp.server.run import ServerThread
    from tests.engine.test_remote_errors import _models

    servers: list[ServerThread] = []

    def start(capture: Capture) -> str:
        app = Starlette(
            routes=[
                Route("/v1/models", _models),
                Route("/v1/chat/completions", capture.handler, methods=["POST"]),
            ]
        )
        servers.append(ServerThread(app).start())
        return servers[-1].url

    yield start
    for s in servers:
        s.stop()


def _stream(url: str, request: ChatRequest) -> tuple[object, list]:
    backend = RemoteBackend(url, "m")
    try:
        stream = backend.execute(request, threading.Event())
        return stream, list(stream)
    finally:
        backend.close()


def test_tools_choice_and_format_are_sent_as_openai_takes_them(serve) -> None:
    cap = Capture(lambda body: _sse([_delta({"content": '{"fruit": "pear"}'}, "stop")]))
    url = serve(cap)
    past = [
        *HI,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "calculator", "arguments": {"expr": "2+3"}}}
            ],
        },
        {"role": "tool", "content": "5", "tool_call_id": "c1", "name": "calculator"},
    ]  # fmt: skip
    request = ChatRequest(
        past,
        tools=[CALC],
        tool_choice="calculator",
        parallel_tool_calls=False,
        response_format=response_format(SCHEMA),
        grammar="root ::= x",  # what a local model would get; a server gets the format
    )
    _stream(url, request)
    (body,) = cap.bodies
    assert body["tools"] == [CALC]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "calculator"}}
    assert body["parallel_tool_calls"] is False
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    # past calls and results in OpenAI's shape: arguments a JSON string, tool message bare
    call = body["messages"][1]
    assert call["content"] == ""
    assert call["tool_calls"][0]["function"]["arguments"] == '{"expr": "2+3"}'
    assert body["messages"][2] == {"role": "tool", "content": "5", "tool_call_id": "c1"}
    for choice in ("auto", "none", "required"):
        _stream(url, ChatRequest(HI, tools=[CALC], tool_choice=choice))
        assert cap.bodies[-1]["tool_choice"] == choice
    _stream(url, ChatRequest(HI))
    assert not {"tools", "tool_choice", "response_format"} & set(cap.bodies[-1])


def test_streamed_tool_call_deltas_become_calls(serve) -> None:
    """OpenAI's way (id and name in the first piece, then argument pieces, two calls by
    index) and llama-cpp-python's (id and name repeated in every piece)."""
    events = [
        _delta({"role": "assistant", "content": None}),
        _delta({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                "function": {"name": "calculator", "arguments": ""}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"ex'}}]}),
        _delta({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                "function": {"name": "clock", "arguments": "{}"}}]}),
        _delta({"tool_calls": [{"index": 0, "function": {"arguments": 'pr": "2+3"}'}}]}),
        _delta({}, "tool_calls"),
    ]  # fmt: skip
    url = serve(Capture(lambda body: _sse(events)))
    stream, chunks = _stream(url, ChatRequest(HI, tools=[CALC]))
    calls = stream.calls  # type: ignore[attr-defined]
    assert [(c.id, c.name, c.arguments, c.error) for c in calls] == [
        ("call_a", "calculator", {"expr": "2+3"}, ""),
        ("call_b", "clock", {}, ""),
    ]
    assert [c.text for c in chunks if c.channel == "tool_call"] == ['{"expr": "2+3"}', "{}"]
    assert not "".join(c.text for c in chunks if c.channel == "answer")
    assert stream.stats.finish_reason is FinishReason.TOOL_CALLS  # type: ignore[attr-defined]

    repeated = [
        _delta({"tool_calls": [{"index": 0, "id": "call_x", "type": "function",
                                "function": {"name": "calculator", "arguments": piece}}]})
        for piece in ('{"expr"', ': "1', '+1"}')
    ] + [_delta({}, "stop")]  # fmt: skip
    url = serve(Capture(lambda body: _sse(repeated)))
    stream, _ = _stream(url, ChatRequest(HI, tools=[CALC]))
    (call,) = stream.calls  # type: ignore[attr-defined]
    assert (call.id, call.name, call.arguments) == ("call_x", "calculator", {"expr": "1+1"})


def test_a_whole_answer_with_calls_and_an_unreadable_call(serve) -> None:
    whole = {
        "object": "chat.completion",
        "choices": [{
            "index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [
                {"id": "w1", "type": "function",
                 "function": {"name": "calculator", "arguments": '{"expr": "7*6"}'}},
                {"id": "w2", "type": "function",
                 "function": {"name": "calculator", "arguments": '{"expr": '}},
            ]},
        }],
    }  # fmt: skip
    url = serve(Capture(lambda body: JSONResponse(whole)))
    stream, _ = _stream(url, ChatRequest(HI, tools=[CALC]))
    good, bad = stream.calls  # type: ignore[attr-defined]
    assert good.arguments == {"expr": "7*6"} and not good.error
    assert bad.name == "calculator" and "not valid JSON" in bad.error and bad.raw == '{"expr": '


def test_a_server_that_ignores_the_schema_fails_the_turn(serve) -> None:
    url = serve(Capture(lambda body: _sse([_delta({"content": "Pears are nice."}, "stop")])))
    with pytest.raises(
        ServerFault, match="does not follow the requested JSON format: it is not JSON"
    ):
        _stream(url, ChatRequest(HI, response_format=response_format(SCHEMA)))
    url = serve(Capture(lambda body: _sse([_delta({"content": '{"fruit": "fig"}'}, "stop")])))
    with pytest.raises(ServerFault, match=r"'fig' is not one of \['apple', 'pear'\] \(at fruit\)"):
        _stream(url, ChatRequest(HI, response_format=response_format(SCHEMA)))
    url = serve(Capture(lambda body: _sse([_delta({"content": "[1, 2]"}, "stop")])))
    with pytest.raises(ServerFault, match="it is not a JSON object"):
        _stream(url, ChatRequest(HI, response_format=response_format(True)))


def _refuse_json_schema(body: dict) -> Response:
    if body.get("response_format", {}).get("type") == "json_schema":
        detail = "Input should be 'text' or 'json_object' (response_format.type)"
        return JSONResponse({"error": {"message": detail}}, status_code=422)
    return _sse([_delta({"content": '{"fruit": "apple"}'}, "stop")])


def test_a_refused_json_schema_is_sent_again_as_llama_cpp_takes_it(serve) -> None:
    cap = Capture(_refuse_json_schema)
    url = serve(cap)
    stream, _ = _stream(url, ChatRequest(HI, response_format=response_format(SCHEMA)))
    assert stream.answer == '{"fruit": "apple"}'  # type: ignore[attr-defined]
    assert [b["response_format"]["type"] for b in cap.bodies] == ["json_schema", "json_object"]
    assert cap.bodies[1]["response_format"]["schema"] == SCHEMA


def test_a_server_that_refuses_any_format_says_so(serve) -> None:
    refuse = Capture(
        lambda body: JSONResponse(
            {"error": {"message": "response_format is not supported"}}, status_code=400
        )
    )
    url = serve(refuse)
    with pytest.raises(Unsupported, match="cannot constrain the answer to a JSON schema"):
        _stream(url, ChatRequest(HI, response_format=response_format(SCHEMA)))
    assert len(refuse.bodies) == 2  # the standard form, then llama.cpp's
    no_tools = Capture(
        lambda body: JSONResponse({"error": {"message": "tools are not supported"}}, 400)
    )
    url = serve(no_tools)
    with pytest.raises(Unsupported, match="does not take tool calls"):
        _stream(url, ChatRequest(HI, tools=[CALC]))


def test_a_grammar_without_a_format_is_refused_before_sending(serve) -> None:
    cap = Capture(lambda body: _sse([_delta({"content": "x"}, "stop")]))
    url = serve(cap)
    with pytest.raises(UserError, match="cannot be constrained by a grammar"):
        _stream(url, ChatRequest(HI, grammar="root ::= x"))
    assert cap.bodies == []


def test_a_required_call_that_never_comes_fails_the_turn(serve) -> None:
    url = serve(Capture(lambda body: _sse([_delta({"content": "2 + 3 = 5"}, "stop")])))
    backend = RemoteBackend(url, "m")
    try:
        request = ChatRequest(HI, tools=[CALC], tool_choice="required")
        stream = ToolStream(backend.execute(request, threading.Event()), "hermes", "required")
        with pytest.raises(UserError, match="without a tool call although tool_choice"):
            list(stream)
        # a call written as text (Hermes) counts: the server need not parse it
        text = '<tool_call>{"name": "calculator", "arguments": {"expr": "2+3"}}</tool_call>'
        url2 = serve(Capture(lambda body: _sse([_delta({"content": text}, "stop")])))
        other = RemoteBackend(url2, "m")
        stream = ToolStream(other.execute(request, threading.Event()), "hermes", "required")
        list(stream)
        assert [c.name for c in stream.calls] == ["calculator"]
        other.close()
    finally:
        backend.close()


def test_the_api_reads_parallel_tool_calls() -> None:
    from chatapp.server.errors import ApiError
    from chatapp.server.requests import chat_call

    base = {"model": "m", "messages": HI, "tools": [CALC]}
    assert chat_call({**base, "parallel_tool_calls": False}).parallel_tool_calls is False
    assert chat_call(base).parallel_tool_calls is None
    with pytest.raises(ApiError, match="parallel_tool_calls"):
        chat_call({**base, "parallel_tool_calls": "yes"})
