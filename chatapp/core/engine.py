"""The small interface every inference runtime implements.

Adapters live in chatapp.engine (llama-cpp-python, remote servers); tests may use a
scripted fake. The core only ever sees token ids, bytes and plain data.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    max_tokens: int | None = None  # None: until end of turn or the context is full
    seed: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ModelInfo:
    path: str
    name: str
    architecture: str
    n_ctx: int  # the context this load uses
    n_ctx_train: int  # what the model was trained for
    n_vocab: int
    bos_token: str
    eos_token: str
    eog_token_ids: frozenset[int]
    add_bos: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    n_threads: int = 0
    n_gpu_layers: int = 0
    special_tokens: frozenset[str] = frozenset()  # texts of control/user-defined tokens


class Cancelled(Exception):
    """Generation or prompt evaluation was stopped by the user."""


class Engine(Protocol):
    info: ModelInfo

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Text to token ids. special=True parses <|im_start|>-style markers as tokens."""

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for (special tokens as their text)."""

    def is_special(self, token_id: int) -> bool:
        """Control tokens such as <|im_start|> or <end_of_turn>."""

    def generate(
        self, prompt: list[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[int]:
        """Evaluate the prompt, then yield sampled token ids until an end-of-generation
        token (not yielded), params.max_tokens, or the context is full.
        Raises Cancelled if cancel is set, within one token (or one prompt batch)."""

    def close(self) -> None:
        """Free the model's memory. The engine must not be used afterwards."""
