"""Built-in chat formats for models whose GGUF carries no template.

Each preset is data in resources/templates/<name>.json:

    {"name": "gemma", "title": "Gemma",
     "match": {"architectures": ["gemma3"], "name_patterns": ["gemma"],
               "special_tokens": ["<start_of_turn>", "<end_of_turn>"]},
     "template": "<Jinja text>", "stop_markers": ["<end_of_turn>"],
     "think_tags": [["<think>", "</think>"]]}

A preset is chosen from the metadata by score: a name pattern (general.name, basename,
finetune; a regular expression, case-insensitive) is the strongest sign, then the
vocabulary holding all the preset's special tokens, then the architecture. The
architecture alone is enough only where it names one format (gemma3, phi3, qwen2), never
for "llama", which covers many.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chatapp.resources import resource_path

log = logging.getLogger(__name__)

NAME_SCORE = 4
TOKENS_SCORE = 2
ARCH_SCORE = 1
FIRST_NAME_BONUS = 2

# GGUF token types (llama_token_type): control and user-defined tokens are "special".
_CONTROL, _USER_DEFINED = 3, 4


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    template: str
    stop_markers: tuple[str, ...]
    think_tags: tuple[tuple[str, str], ...]
    architectures: tuple[str, ...]
    name_patterns: tuple[str, ...]
    special_tokens: tuple[str, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Preset:
        match = data.get("match") or {}
        return cls(
            name=str(data["name"]),
            title=str(data.get("title") or data["name"]),
            template=str(data["template"]),
            stop_markers=tuple(str(s) for s in data.get("stop_markers", ())),
            think_tags=tuple((str(a), str(b)) for a, b in data.get("think_tags", ())),
            architectures=tuple(str(a).lower() for a in match.get("architectures", ())),
            name_patterns=tuple(str(p) for p in match.get("name_patterns", ())),
            special_tokens=tuple(str(t) for t in match.get("special_tokens", ())),
        )

    def name_position(self, names: list[str]) -> int | None:
        """Where in the model's names a pattern first matches (None: nowhere)."""
        found = [
            m.start()
            for p in self.name_patterns
            for n in names
            if (m := re.search(p, n, re.IGNORECASE))
        ]
        return min(found) if found else None

    def score(self, architecture: str, names: list[str], special: set[str] | None) -> int:
        s = NAME_SCORE if self.name_position(names) is not None else 0
        if special and self.special_tokens and all(t in special for t in self.special_tokens):
            s += TOKENS_SCORE
        if architecture and architecture in self.architectures:
            s += ARCH_SCORE
        return s


@lru_cache(maxsize=1)
def load_presets() -> tuple[Preset, ...]:
    """All presets from resources/templates, sorted by name. A broken file is logged and
    skipped: one bad preset must not take the others down."""
    out = []
    for path in sorted(resource_path("templates").glob("*.json")):
        try:
            out.append(Preset.from_json(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("preset %s unreadable: %s", path.name, e)
    return tuple(out)


def get_preset(name: str) -> Preset | None:
    return next((p for p in load_presets() if p.name == name), None)


def _names(metadata: dict[str, Any]) -> list[str]:
    keys = ("general.name", "general.basename", "general.finetune", "general.base_model.0.name")
    return [str(metadata[k]) for k in keys if isinstance(metadata.get(k), str) and metadata[k]]


def choose_preset(
    metadata: dict[str, Any], special_tokens: set[str] | None = None
) -> Preset | None:
    """The best-fitting preset for a model, or None when nothing fits."""
    if special_tokens is None:
        special_tokens = special_tokens_from_metadata(metadata)
    architecture = str(metadata.get("general.architecture") or "").lower()
    names = _names(metadata)
    scored = [(p.score(architecture, names, special_tokens), p) for p in load_presets()]
    scored = [(s, p) for s, p in scored if s]
    if not scored:
        return None
    # A fine-tune's name leads with what it is ("DeepSeek R1 Distill Qwen", "Hermes 3
    # Llama 3.1"): among presets named in it, the earliest mention wins.
    positions = [pos for _, p in scored if (pos := p.name_position(names)) is not None]
    first = min(positions) if positions else None
    best_score, best = max(
        ((s + (FIRST_NAME_BONUS if p.name_position(names) == first else 0), p) for s, p in scored),
        key=lambda sp: sp[0],
    )
    log.debug("preset %s chosen (score %d) for %s", best.name, best_score, names)
    return best


def special_tokens_from_metadata(metadata: dict[str, Any]) -> set[str] | None:
    """Control and user-defined tokens of the vocabulary, if the metadata holds it
    (read_gguf(path, keep_arrays=True)); None otherwise."""
    tokens = metadata.get("tokenizer.ggml.tokens")
    types = metadata.get("tokenizer.ggml.token_type")
    if not isinstance(tokens, list) or not isinstance(types, list):
        return None
    return {t for t, k in zip(tokens, types) if k in (_CONTROL, _USER_DEFINED)}


def token_text(metadata: dict[str, Any], key: str) -> str:
    """The text of a special token named by id in the metadata (bos/eos), or ""."""
    tokens = metadata.get("tokenizer.ggml.tokens")
    token_id = metadata.get(f"tokenizer.ggml.{key}_token_id")
    if isinstance(tokens, list) and isinstance(token_id, int) and 0 <= token_id < len(tokens):
        return str(tokens[token_id])
    return ""
