"""Tools and structured output through the official openai client against the server
with the real SmolLM2: the server returns calls (the client runs them), streamed and not,
takes tool messages back, and constrains a json_schema answer."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from tests.server.conftest import MODEL_ID, client

pytestmark = pytest.mark.model

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
FAST = {"seed": 3, "max_tokens": 60, "temperature": 0.7}


def test_required_call_comes_back_in_openais_shape(api: str) -> None:
    r = client(api).chat.completions.create(
        model=MODEL_ID, messages=ASK, tools=[WEATHER], tool_choice="required", **FAST
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    args = json.loads(call.function.arguments)
    jsonschema.validate(args, WEATHER["function"]["parameters"])
    # the client runs it and sends the result back; the model answers
    follow = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."},
    ]
    r2 = client(api).chat.completions.create(
        model=MODEL_ID, messages=follow, tools=[WEATHER], tool_choice="none", **FAST
    )
    assert r2.choices[0].message.content and not r2.choices[0].message.tool_calls


def test_streamed_call_has_index_id_and_arguments(api: str) -> None:
    stream = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=ASK,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        stream=True,
        **FAST,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        for tc in c.delta.tool_calls or []:
            got = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            got["id"] += tc.id or ""
            got["name"] += (tc.function.name or "") if tc.function else ""
            got["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = c.finish_reason or finish
    assert finish == "tool_calls"
    assert list(calls) == [0] and calls[0]["name"] == "get_weather" and calls[0]["id"]
    jsonschema.validate(json.loads(calls[0]["arguments"]), WEATHER["function"]["parameters"])


SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "year": {"type": "integer"},
        "genres": {
            "type": "array",
            "items": {"enum": ["drama", "comedy", "action"]},
            "maxItems": 2,
        },
    },
    "required": ["title", "year", "genres"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2])
def test_response_format_json_schema_is_valid(api: str, seed: int) -> None:
    r = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Name a film as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "film", "schema": SCHEMA}},
        seed=seed,
        max_tokens=80,
        temperature=1.0,
    )
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)


def test_refused_schema_feature_is_a_400_naming_it(api: str) -> None:
    bad = {"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}
    with pytest.raises(openai.BadRequestError, match="'format'"):
        client(api).chat.completions.create(
            model=MODEL_ID,
            messages=ASK,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": bad}},
        )
