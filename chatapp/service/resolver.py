"""Where a turn's and a load's settings come from: one resolver, in layers.

Every setting a turn uses (sampling, system prompt, context policy, alternatives kept per
token) and a load uses (context length, GPU layers, threads) is resolved here, from the
lowest layer to the highest, each layer giving only the fields it sets:

    app      the app's settings (settings.json)
    model    the model's own defaults (per model file, saved from the chat settings panel)
    chat     the conversation's own settings (its panel, `chatapp conversations ID --set`)
    answer   the answer a turn starts from (branch-from-alternative: its recorded sampling)
    caller   what the caller gave explicitly: a CLI flag, an API request field, a window action

The result says which layer each value came from; the receipt records both. The window,
every CLI command, the API server, Continue, completion mode, regenerate, edit and
branch all resolve here, so the same chat answers with the same settings wherever it is
continued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chatapp.core.backend import ModelRef
from chatapp.core.chat_settings import (
    POLICIES,
    STOP,
    BadValue,
    ChatSettings,
    check_hardware,
    check_value,
    model_defaults,
    model_hardware,
)
from chatapp.core.conversation import Conversation
from chatapp.core.errors import UserError
from chatapp.core.gpu_fit import GpuLayers
from chatapp.core.logprobs import MAX_TOP_N, top_n_setting
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams

APP, MODEL, CHAT, ANSWER, CALLER = "app", "model", "chat", "answer", "caller"
LAYERS = (APP, MODEL, CHAT, ANSWER, CALLER)

SAMPLING_FIELDS = tuple(f.name for f in fields(SamplingParams))
HARDWARE_FIELDS = ("context_limit", "n_gpu_layers", "n_threads")


@dataclass(frozen=True)
class Given:
    """What a caller gave explicitly for one turn; anything left None (or absent from
    `sampling`) falls to the layers below."""

    sampling: Mapping[str, Any] = field(default_factory=dict)  # field -> value, given only
    system_prompt: str | None = None  # a new conversation's system prompt
    context_policy: str | None = None
    logprobs: int | None = None

    def checked(self) -> Given:
        """The same values, each checked against its range (BadValue names the field)."""
        for name, value in self.sampling.items():
            if name not in SAMPLING_FIELDS:
                raise BadValue(f"unknown setting {name!r}")
            if value is not None:
                check_value(name, value)
        if self.context_policy is not None and self.context_policy not in POLICIES:
            raise BadValue(
                f"context policy must be one of {', '.join(POLICIES)}, not {self.context_policy!r}"
            )
        return self


@dataclass(frozen=True)
class TurnSettings:
    """A turn's resolved settings and the layer each came from."""

    sampling: SamplingParams
    system_prompt: str
    context_policy: str
    logprobs: int
    sources: Mapping[str, str]  # setting name -> layer

    def receipt_sources(self) -> dict[str, str]:
        return dict(sorted(self.sources.items()))


def model_file(ref: ModelRef) -> str:
    """The key the per-model tables use: the file's name (a remote model: its reference)."""
    return Path(ref.name).name if ref.is_local else str(ref)


def resolve_turn(
    settings: Settings,
    ref: ModelRef,
    conversation: Conversation | None,
    given: Given | None = None,
    *,
    answer_sampling: Mapping[str, Any] | None = None,
) -> TurnSettings:
    """The settings of a turn in `conversation` (None: a new one, or no conversation at
    all) with the model `ref`. answer_sampling: the recorded sampling of the answer the
    turn starts from (branch-from-alternative), its seed left out."""
    given = given or Given()
    app = settings.sampling()
    values: dict[str, Any] = {name: getattr(app, name) for name in SAMPLING_FIELDS}
    sources: dict[str, str] = dict.fromkeys(SAMPLING_FIELDS, APP)
    chat = ChatSettings.from_meta(conversation.meta if conversation else None)
    layers: list[tuple[str, Mapping[str, Any]]] = [
        (MODEL, model_defaults(settings.extra, model_file(ref))),
        (CHAT, chat.overrides),
        (ANSWER, _recorded(answer_sampling)),
        (CALLER, {k: v for k, v in given.sampling.items() if v is not None}),
    ]
    for layer, overrides in layers:
        for name, value in overrides.items():
            if name in values:
                values[name] = value
                sources[name] = layer
    sampling = SamplingParams(**values)

    if conversation is not None:
        system, sources["system_prompt"] = conversation.system_prompt, CHAT
    elif given.system_prompt is not None:
        system, sources["system_prompt"] = given.system_prompt, CALLER
    else:
        system, sources["system_prompt"] = settings.system_prompt, APP

    raw_chat = (conversation.meta if conversation else {}).get("chat_settings")
    chat_sets_policy = isinstance(raw_chat, dict) and raw_chat.get("context_policy") in POLICIES
    if given.context_policy is not None:
        policy, sources["context_policy"] = given.context_policy, CALLER
    elif chat_sets_policy:
        policy, sources["context_policy"] = chat.context_policy, CHAT
    else:
        policy, sources["context_policy"] = STOP, APP

    if given.logprobs is not None:
        top_n, sources["logprobs"] = given.logprobs, CALLER
    else:
        top_n, sources["logprobs"] = top_n_setting(settings), APP
    return TurnSettings(sampling, system, policy, max(0, min(top_n, MAX_TOP_N)), sources)


def _recorded(sampling: Mapping[str, Any] | None) -> dict[str, Any]:
    """A recorded answer's sampling without its seed (a new branch samples anew)."""
    if not isinstance(sampling, Mapping):
        return {}
    return {k: v for k, v in sampling.items() if k in SAMPLING_FIELDS and k != "seed"}


@dataclass(frozen=True)
class LoadSettings:
    context_limit: int
    n_gpu_layers: GpuLayers  # "auto", -1 (all) or a count (core.gpu_fit)
    n_threads: int | None
    sources: Mapping[str, str]


def resolve_load(
    settings: Settings,
    ref: ModelRef,
    *,
    context_limit: int | None = None,
    n_gpu_layers: GpuLayers | None = None,
    n_threads: int | None = None,
) -> LoadSettings:
    """A model's hardware settings: the app's, then the model's own (its panel), then the
    caller's flags. A value outside its range is a UserError naming the field."""
    values: dict[str, GpuLayers | None] = {
        "context_limit": settings.context_limit,
        "n_gpu_layers": settings.n_gpu_layers,
        "n_threads": settings.n_threads,
    }
    sources = dict.fromkeys(HARDWARE_FIELDS, APP)
    if ref.is_local:
        for name, value in model_hardware(settings.extra, model_file(ref)).items():
            values[name], sources[name] = value, MODEL
    given = {"context_limit": context_limit, "n_gpu_layers": n_gpu_layers, "n_threads": n_threads}
    for name, wanted in given.items():
        if wanted is None:
            continue
        try:
            values[name] = check_hardware(name, wanted)
        except BadValue as e:
            raise UserError(f"Bad value: {e}.") from e
        sources[name] = CALLER
    context, layers, threads = values["context_limit"], values["n_gpu_layers"], values["n_threads"]
    assert isinstance(context, int) and layers is not None and not isinstance(threads, str)
    return LoadSettings(context, layers, threads, sources)
