"""Per-conversation settings: sampling, context policy, and where their values come from.

A turn's settings are resolved in layers (service.resolver): the app's defaults
(Settings), then the model's defaults (per model file), then the conversation's own
overrides, then the caller's; a named preset can fill a conversation's overrides in one
step. Every value is checked against its range
(check_value), so a bad value is refused at the field with a reason, never sent.
Stored as plain JSON: a conversation's overrides in Conversation.meta["chat_settings"],
the per-model defaults and the presets in Settings.extra.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from chatapp.core.gpu_fit import AUTO, GpuLayers
from chatapp.core.token_engine import SamplingParams

META_KEY = "chat_settings"
MODEL_DEFAULTS_KEY = "model_defaults"  # Settings.extra: {model file name: {field: value}}
PRESETS_KEY = "sampling_presets"  # Settings.extra: {preset name: {field: value}}
HARDWARE_KEY = "model_hardware"  # Settings.extra: {model file name: {field: value}}

# per-model hardware: (lowest, highest, what it does); GPU layers -1 means all, and
# "auto" (core.gpu_fit.AUTO) as many as fit the GPU's free memory
HARDWARE_RANGES: dict[str, tuple[int, int, str]] = {
    "context_limit": (256, 1_048_576, "the context window, in tokens (the model's own caps it)"),
    "n_gpu_layers": (
        -1,
        1000,
        "layers on the GPU: auto as many as fit its free memory, -1 all, 0 none (CPU)",
    ),
    "n_threads": (1, 1024, "CPU threads"),
}

# context policies: what happens when the next turn would not fit the context window
STOP = "stop"  # stop and explain
DROP_OLDEST = "drop_oldest"  # leave out the oldest turns, keep the system prompt
POLICIES = {
    STOP: "Stop and explain",
    DROP_OLDEST: "Leave out the oldest turns (the system prompt stays)",
}

# field: (lowest, highest, kind, what it does)
RANGES: dict[str, tuple[float, float, type, str]] = {
    "temperature": (0.0, 5.0, float, "randomness: 0 always picks the likeliest token"),
    "top_p": (0.0, 1.0, float, "keep the likeliest tokens that make up this much probability"),
    "top_k": (0, 100_000, int, "keep only this many likeliest tokens (0: all)"),
    "min_p": (0.0, 1.0, float, "drop tokens less likely than this share of the best one"),
    "repeat_penalty": (0.5, 2.0, float, "discourage repeating recent tokens (1: off)"),
    "seed": (0, 2**31 - 1, int, "the same seed and settings give the same answer"),
    "max_tokens": (1, 1_000_000, int, "the longest answer, in tokens"),
}

BUILTIN_PRESETS: dict[str, dict[str, Any]] = {
    "Balanced": {"temperature": 0.7, "top_p": 0.95, "top_k": 40, "min_p": 0.05},
    "Precise": {"temperature": 0.2, "top_p": 0.9, "top_k": 20, "min_p": 0.1},
    "Creative": {"temperature": 1.0, "top_p": 0.98, "top_k": 100, "min_p": 0.02},
    "Deterministic": {"temperature": 0.0, "top_k": 1, "seed": 42},
}


class BadValue(ValueError):
    """A setting outside its range: the message says what is allowed."""


def check_value(name: str, value: Any) -> Any:
    """The value as its field's type, or BadValue with a one-line reason. None clears an
    override (falls back to the layer below)."""
    if value is None:
        return None
    if name not in RANGES:
        raise BadValue(f"unknown setting {name!r}")
    lo, hi, kind, _what = RANGES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(f"{name} must be a finite number")
    if kind is int and float(value) != int(value):
        raise BadValue(f"{name} must be a whole number")
    if not lo <= value <= hi:
        raise BadValue(f"{name} must be between {lo:g} and {hi:g}")
    return kind(value)


def clean(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Only the valid overrides of a stored dict (a bad stored value is dropped, not
    fatal: it may come from a hand-edited or newer file)."""
    out: dict[str, Any] = {}
    for k, v in (overrides or {}).items():
        try:
            v = check_value(k, v)
        except BadValue:
            continue
        if v is not None:
            out[k] = v
    return out


@dataclass(frozen=True)
class ChatSettings:
    """A conversation's own choices; empty fields fall back to the model's and the app's."""

    sampling: tuple[tuple[str, Any], ...] = ()  # (field, value) overrides
    context_policy: str = STOP

    @property
    def overrides(self) -> dict[str, Any]:
        return dict(self.sampling)

    def with_override(self, name: str, value: Any) -> ChatSettings:
        values = self.overrides
        value = check_value(name, value)
        if value is None:
            values.pop(name, None)
        else:
            values[name] = value
        return replace(self, sampling=tuple(sorted(values.items())))

    def to_json(self) -> dict[str, Any]:
        return {"sampling": self.overrides, "context_policy": self.context_policy}

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> ChatSettings:
        raw = (meta or {}).get(META_KEY)
        if not isinstance(raw, dict):
            return cls()
        policy = raw.get("context_policy")
        return cls(
            sampling=tuple(sorted(clean(raw.get("sampling")).items())),
            context_policy=policy if policy in POLICIES else STOP,
        )


def model_defaults(extra: dict[str, Any], model_file: str) -> dict[str, Any]:
    table = extra.get(MODEL_DEFAULTS_KEY)
    return clean(table.get(model_file)) if isinstance(table, dict) else {}


def check_hardware(name: str, value: Any) -> GpuLayers | None:
    """A hardware value as stored: a whole number in its range, or "auto" for the GPU
    layers (any case); BadValue with a one-line reason otherwise."""
    if value is None:
        return None
    if name not in HARDWARE_RANGES:
        raise BadValue(f"unknown setting {name!r}")
    lo, hi, _what = HARDWARE_RANGES[name]
    if name == "n_gpu_layers" and isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        if name == "n_gpu_layers":
            raise BadValue(f"{name} must be auto or a whole number")
        raise BadValue(f"{name} must be a whole number")
    if not lo <= value <= hi:
        raise BadValue(f"{name} must be between {lo} and {hi}")
    return int(value)


def model_hardware(extra: dict[str, Any], model_file: str) -> dict[str, GpuLayers]:
    """A model's own context length, GPU layers and threads (valid stored values only;
    only the GPU layers may be "auto")."""
    table = extra.get(HARDWARE_KEY)
    raw = table.get(model_file) if isinstance(table, dict) else None
    out: dict[str, GpuLayers] = {}
    for k, v in (raw or {}).items() if isinstance(raw, dict) else ():
        try:
            checked = check_hardware(k, v)
        except BadValue:
            continue
        if checked is not None:
            out[k] = checked
    return out


def set_model_entry(
    extra: dict[str, Any], key: str, model_file: str, values: dict[str, Any]
) -> None:
    """Store a model's defaults (sampling or hardware) in Settings.extra; empty removes."""
    table = extra.get(key)
    if not isinstance(table, dict):
        table = extra[key] = {}
    if values:
        table[model_file] = dict(values)
    else:
        table.pop(model_file, None)


def presets(extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Built-in presets and the user's own (theirs win on a name clash)."""
    out = {k: dict(v) for k, v in BUILTIN_PRESETS.items()}
    mine = extra.get(PRESETS_KEY)
    if isinstance(mine, dict):
        out.update({str(k): clean(v) for k, v in mine.items() if isinstance(v, dict)})
    return out


def describe(params: SamplingParams) -> str:
    """One line for "what the next answer will use"."""
    seed = "a new seed each answer" if params.seed is None else f"seed {params.seed}"
    limit = (
        "no length limit" if params.max_tokens is None else f"at most {params.max_tokens} tokens"
    )
    return (
        f"temperature {params.temperature:g} · top-p {params.top_p:g} · top-k {params.top_k}"
        f" · min-p {params.min_p:g} · repeat penalty {params.repeat_penalty:g} · {seed} · {limit}"
    )
