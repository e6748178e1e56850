"""A continued answer is one answer: its statistics cover every part.

Continue carries on a stopped or cut-off answer in place. The statistics saved with it
combine the parts: the first token's time and the prompt (its size, reuse and receipt)
are those of the question's prompt, the answer's tokens and generation time add up
(a later part's prompt evaluation counts as generation time: the answer was being
written), and each part's own numbers are kept in meta["continued"].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatapp.core.conversation import Message


@dataclass(frozen=True)
class Part:
    """One part of an answer, as its stream measured it."""

    prompt_tokens: int
    completion_tokens: int
    prompt_seconds: float
    generation_seconds: float
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    seed: int | None = None

    @classmethod
    def of(cls, stats: Any) -> Part:
        """The part a stream measured (its core.backend.ReplyStats)."""
        return cls(
            stats.prompt_tokens,
            stats.completion_tokens,
            stats.prompt_seconds,
            stats.generation_seconds,
            stats.reused_tokens,
            stats.evaluated_tokens,
            stats.seed,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "prompt_seconds": round(self.prompt_seconds, 4),
            "generation_seconds": round(self.generation_seconds, 4),
            "reused_tokens": self.reused_tokens,
            "evaluated_tokens": self.evaluated_tokens,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Combined:
    prompt_tokens: int
    completion_tokens: int
    prompt_seconds: float
    generation_seconds: float
    meta: dict[str, Any]  # the answer's meta, with the first part's receipt and the parts

    @property
    def tokens_per_second(self) -> float:
        if self.completion_tokens < 2 or self.generation_seconds <= 0:
            return 0.0
        return (self.completion_tokens - 1) / self.generation_seconds


def first_part(answer: Message) -> Part | None:
    """The statistics an answer was saved with (None: it has none, e.g. imported)."""
    meta = answer.meta
    ttft, gen = meta.get("prompt_seconds"), meta.get("generation_seconds")
    if not isinstance(ttft, (int, float)) or not isinstance(gen, (int, float)):
        return None
    receipt = meta.get("receipt")
    receipt = receipt if isinstance(receipt, dict) else {}
    sampling = meta.get("sampling")
    seed = sampling.get("seed") if isinstance(sampling, dict) else None
    return Part(
        answer.prompt_tokens or 0,
        answer.completion_tokens or 0,
        float(ttft),
        float(gen),
        int(receipt.get("reused_tokens", 0) or 0),
        int(receipt.get("evaluated_tokens", 0) or 0),
        seed if isinstance(seed, int) else None,
    )


def combine(before: Message, now: Part, meta_now: dict[str, Any]) -> Combined | None:
    """The statistics of `before` (the answer as it was) continued by `now`; meta_now is
    the meta the new part would be saved with. None if `before` has no statistics (then
    the new part's own stand)."""
    first = first_part(before)
    if first is None:
        return None
    parts = before.meta.get("continued")
    earlier = list(parts) if isinstance(parts, list) and parts else [first.as_dict()]
    meta = dict(meta_now)
    for key in ("receipt", "template", "template_source", "sampling", "prompt_warning"):
        if key in before.meta:
            meta[key] = before.meta[key]  # the answer's prompt is the question's prompt
    meta["continued"] = [*earlier, now.as_dict()]
    generation = first.generation_seconds + now.prompt_seconds + now.generation_seconds
    meta["prompt_seconds"] = round(first.prompt_seconds, 4)
    meta["generation_seconds"] = round(generation, 4)
    return Combined(
        first.prompt_tokens,
        first.completion_tokens + now.completion_tokens,
        first.prompt_seconds,
        generation,
        meta,
    )
