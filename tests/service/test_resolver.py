"""The settings resolver: each layer gives only the fields it sets, and the result
names the layer of every value."""

from __future__ import annotations

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.chat_settings import (
    HARDWARE_KEY,
    MODEL_DEFAULTS_KEY,
    BadValue,
    ChatSettings,
    set_model_entry,
)
from chatapp.core.conversation import Conversation
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.service.resolver import Given, resolve_load, resolve_turn
from chatapp.service.turn import TurnOptions

REF = ModelRef.local("/models/m.gguf")


def _conv(chat: ChatSettings | None = None, system: str = "be brief") -> Conversation:
    meta = {"chat_settings": chat.to_json()} if chat else {}
    return Conversation(
        id="c1", title="t", created_at=0.0, updated_at=0.0, system_prompt=system, meta=meta
    )


def test_layers_in_order_each_field_only_where_given() -> None:
    settings = Settings(temperature=0.7, top_k=40, min_p=0.05, system_prompt="app prompt")
    set_model_entry(settings.extra, MODEL_DEFAULTS_KEY, "m.gguf", {"top_k": 10, "min_p": 0.2})
    chat = ChatSettings().with_override("min_p", 0.3).with_override("temperature", 0.0)
    resolved = resolve_turn(settings, REF, _conv(chat), Given({"temperature": 0.5}))
    s = resolved.sampling
    assert (s.temperature, s.top_k, s.min_p, s.top_p) == (0.5, 10, 0.3, settings.top_p)
    src = resolved.sources
    assert (src["temperature"], src["top_k"], src["min_p"], src["top_p"]) == (
        "caller",
        "model",
        "chat",
        "app",
    )
    assert resolved.system_prompt == "be brief" and src["system_prompt"] == "chat"
    # a new conversation: the app's system prompt unless the caller gives one
    assert resolve_turn(settings, REF, None).system_prompt == "app prompt"
    fresh = resolve_turn(settings, REF, None, Given(system_prompt="mine"))
    assert fresh.system_prompt == "mine" and fresh.sources["system_prompt"] == "caller"


def test_recorded_answer_sampling_sits_between_chat_and_caller() -> None:
    settings = Settings()
    chat = ChatSettings().with_override("temperature", 0.1)
    recorded = {"temperature": 0.9, "top_k": 3, "seed": 77}
    r = resolve_turn(settings, REF, _conv(chat), Given(), answer_sampling=recorded)
    assert r.sampling.temperature == 0.9 and r.sources["temperature"] == "answer"
    assert r.sampling.seed == settings.seed and r.sources["seed"] == "app"  # never replayed
    r = resolve_turn(settings, REF, _conv(chat), Given({"top_k": 5}), answer_sampling=recorded)
    assert r.sampling.top_k == 5 and r.sources["top_k"] == "caller"


def test_context_policy_and_alternatives() -> None:
    settings = Settings(logprobs_top_n=4)
    plain = resolve_turn(settings, REF, _conv())
    assert (plain.context_policy, plain.sources["context_policy"]) == ("stop", "app")
    assert (plain.logprobs, plain.sources["logprobs"]) == (4, "app")
    chat = ChatSettings(context_policy="drop_oldest")
    assert resolve_turn(settings, REF, _conv(chat)).sources["context_policy"] == "chat"
    given = resolve_turn(settings, REF, _conv(chat), Given(context_policy="stop", logprobs=0))
    assert (given.context_policy, given.logprobs) == ("stop", 0)
    assert given.sources["context_policy"] == given.sources["logprobs"] == "caller"


def test_caller_values_are_checked() -> None:
    with pytest.raises(BadValue, match="temperature must be between"):
        TurnOptions(overrides={"temperature": 7.0}).given()
    with pytest.raises(BadValue, match="context policy"):
        TurnOptions(context_policy="sometimes").given()
    # None is "not given", not a value
    assert TurnOptions(overrides={"temperature": None}).given().sampling == {}


def test_load_settings_app_then_model_then_caller() -> None:
    settings = Settings(context_limit=4096, n_gpu_layers=0, n_threads=None)
    set_model_entry(settings.extra, HARDWARE_KEY, "m.gguf", {"context_limit": 1024, "n_threads": 3})
    hw = resolve_load(settings, REF)
    assert (hw.context_limit, hw.n_threads, hw.n_gpu_layers) == (1024, 3, 0)
    assert hw.sources == {"context_limit": "model", "n_threads": "model", "n_gpu_layers": "app"}
    hw = resolve_load(settings, REF, n_threads=2)
    assert hw.n_threads == 2 and hw.sources["n_threads"] == "caller"
    other = resolve_load(settings, ModelRef.local("/models/other.gguf"))
    assert other.context_limit == 4096 and other.sources["context_limit"] == "app"
    with pytest.raises(UserError, match="context_limit must be between"):
        resolve_load(settings, REF, context_limit=5)
