import math

import pytest

from chatapp.core.chat_settings import (
    DROP_OLDEST,
    STOP,
    BadValue,
    ChatSettings,
    check_value,
    describe,
    presets,
)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("temperature", -0.1, "between 0 and 5"),
        ("temperature", math.nan, "finite"),
        ("temperature", "hot", "a number"),
        ("top_p", 1.5, "between 0 and 1"),
        ("top_k", 2.5, "whole number"),
        ("seed", -1, "between 0 and"),
        ("max_tokens", 0, "between 1 and"),
        ("repeat_penalty", True, "a number"),
        ("warmth", 1, "unknown setting"),
    ],
)
def test_out_of_range_values_are_refused_with_a_reason(name, value, why) -> None:
    with pytest.raises(BadValue, match=why):
        check_value(name, value)


def test_values_take_their_fields_type_and_none_clears() -> None:
    assert check_value("top_k", 40.0) == 40 and isinstance(check_value("top_k", 40.0), int)
    assert check_value("temperature", 1) == 1.0 and isinstance(check_value("temperature", 1), float)
    chat = ChatSettings().with_override("temperature", 0.3).with_override("seed", 5)
    assert chat.overrides == {"temperature": 0.3, "seed": 5}
    assert chat.with_override("seed", None).overrides == {"temperature": 0.3}


def test_stored_settings_round_trip_and_bad_stored_values_are_dropped() -> None:
    chat = ChatSettings(context_policy=DROP_OLDEST).with_override("top_p", 0.5)
    assert ChatSettings.from_meta({"chat_settings": chat.to_json()}) == chat
    damaged = {
        "chat_settings": {
            "sampling": {"top_p": 7, "top_k": "x", "min_p": 0.1},
            "context_policy": "explode",
        }
    }
    loaded = ChatSettings.from_meta(damaged)
    assert loaded.overrides == {"min_p": 0.1} and loaded.context_policy == STOP
    assert ChatSettings.from_meta({"chat_settings": [1]}) == ChatSettings()


def test_layers_app_then_model_then_conversation() -> None:
    from chatapp.core.backend import ModelRef
    from chatapp.core.conversation import Conversation
    from chatapp.core.settings import Settings
    from chatapp.service.resolver import resolve_turn

    settings = Settings(temperature=0.7, top_k=40, top_p=0.95)
    settings.extra["model_defaults"] = {"m.gguf": {"top_k": 10, "temperature": 0.5, "top_p": 9}}
    chat = ChatSettings().with_override("temperature", 0.1)
    conv = Conversation("c", "t", 0.0, 0.0, meta={"chat_settings": chat.to_json()})
    got = resolve_turn(settings, ModelRef.local("/m/m.gguf"), conv).sampling
    assert (got.temperature, got.top_k, got.top_p) == (0.1, 10, 0.95)
    assert "temperature 0.1" in describe(got) and "a new seed each answer" in describe(got)


def test_presets_include_the_users_own() -> None:
    mine = presets({"sampling_presets": {"Mine": {"temperature": 0.3, "top_k": -5}}})
    assert mine["Mine"] == {"temperature": 0.3}
    assert {"Balanced", "Precise", "Creative", "Deterministic"} <= set(mine)
