"""Speculative decoding's settings: the caller's mode over the settings', a draft model
named per model file, a clear message where one is missing or the mode is unknown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.errors import UserError
from chatapp.core.settings import Settings
from chatapp.service.model_host import speculation_for

MODEL = ModelRef.local("/models/SmolLM2-360M-Instruct.Q4_1.gguf")


def test_off_by_default_and_the_callers_mode_wins() -> None:
    s = Settings()
    assert speculation_for(s, MODEL, None, None) == ("off", None)
    assert speculation_for(s, MODEL, "lookup", None) == ("lookup", None)
    s.speculative = "lookup"
    assert speculation_for(s, MODEL, None, None) == ("lookup", None)
    assert speculation_for(s, MODEL, "off", None) == ("off", None)


def test_a_draft_model_from_the_settings_or_the_caller() -> None:
    s = Settings(
        speculative="draft", draft_models={"SmolLM2-360M-Instruct.Q4_1.gguf": "/m/135M.gguf"}
    )
    assert speculation_for(s, MODEL, None, None) == ("draft", "/m/135M.gguf")
    assert speculation_for(Settings(), MODEL, None, "/m/x.gguf") == ("draft", "/m/x.gguf")
    assert speculation_for(s, ModelRef(name="m", endpoint="http://h"), None, None) == ("off", None)
    # draft mode from the settings, no draft model for this one: prompt lookup instead
    assert speculation_for(Settings(speculative="draft"), MODEL, None, None) == ("lookup", None)
    # asked for by the caller (--speculative draft) without one: refused, with the way out
    with pytest.raises(UserError, match="no draft model is set for SmolLM2-360M"):
        speculation_for(Settings(), MODEL, "draft", None)
    with pytest.raises(UserError, match="off, lookup or draft"):
        speculation_for(Settings(), MODEL, "fast", None)


def test_a_bad_mode_in_the_file_is_named_and_the_default_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"schema_version": 3, "hardware": {"speculative": "fast"}}))
    s = Settings.load(path)
    assert s.speculative == "off"
    assert "speculative='fast' is not one of off, lookup, draft" in caplog.text
