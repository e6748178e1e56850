"""The token-level interface a local inference runtime implements.

chatapp.engine.llama implements it over llama-cpp-python; tests may use a scripted fake.
Above it sits the Backend protocol (core.backend): a chat request in, chunks of text out,
which a local engine (through engine.local.LocalBackend) and a remote server both serve.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatapp.core.gpu_fit import Offload


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
    n_gpu_layers: int = 0  # layers llama.cpp was given (offload.layers)
    offload: Offload | None = None  # where a local model runs, and why (core.gpu_fit)
    special_tokens: frozenset[str] = frozenset()  # texts of control/user-defined tokens
    # texts of control tokens: what tokenizing with special=True turns into control ids
    # (the template's markup may; message text may not)
    control_tokens: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Sampled:
    """One generated token, with what the sampler knew when it drew it.

    logprob and top are log-probabilities of the model's raw next-token distribution
    (softmax of the logits at this step), captured only when asked for; top holds the
    best (token id, log-probability) pairs, best first. sampled_logprob and sampled_top
    are the same for the distribution the sampler actually drew from (after repeat
    penalty, top-k, top-p, min-p, temperature); it may hold fewer candidates than asked
    for (top_k=1: one, with log-probability 0)."""

    token_id: int
    logprob: float | None = None
    top: tuple[tuple[int, float], ...] = ()
    sampled_logprob: float | None = None
    sampled_top: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class PromptEval:
    """How a prompt was evaluated: tokens reused from the KV cache and tokens computed."""

    reused: int = 0
    evaluated: int = 0
    from_disk: int = 0  # of the reused: restored from a state saved on disk
    images_encoded: int = 0  # images encoded for this prompt (not reused from the KV cache)


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

    last_prompt: PromptEval  # of the latest generate() call, set once its prompt is evaluated

    def generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        *,
        logprobs: int = 0,
        cache_key: str | None = None,
        grammar: str | None = None,
    ) -> Iterator[Sampled]:
        """Evaluate the prompt, then yield sampled tokens until an end-of-generation
        token (not yielded), params.max_tokens, or the context is full.
        logprobs: how many top alternatives to capture at each step (0: none).
        cache_key: whose conversation this is; an engine may keep the KV state of recent
        keys so that coming back to a conversation reuses its evaluated prefix.
        grammar: a GBNF grammar every sampled token must keep matching (None: free);
        the end-of-generation token comes only once the grammar is complete.
        Raises Cancelled if cancel is set, within one token (or one prompt batch)."""

    def close(self) -> None:
        """Free the model's memory. The engine must not be used afterwards."""
