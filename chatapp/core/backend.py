"""The Backend protocol: a chat request in, a stream of chunks out.

Modelled on simonw/llm's Model.execute: a backend takes a whole request (the thread so
far, the system prompt, sampling, a cancel event) and yields chunks of text. A chunk
says which channel it belongs to (the answer or the model's thinking) and, where the
backend knows them, the token it came from and that token's top alternatives with
log-probabilities. The local llama.cpp backend (engine.local) renders the prompt itself
and knows every token; a remote OpenAI-compatible server renders its own prompt and may
or may not return log-probabilities. A model is named by a ModelRef, not a file path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from chatapp.core.conversation import FinishReason, Message
from chatapp.core.templates import ChatTemplate
from chatapp.core.thinking import ANSWER, starts_inside_thinking
from chatapp.core.token_engine import ModelInfo, SamplingParams

REMOTE_PREFIX = "remote:"


@dataclass(frozen=True)
class ModelRef:
    """Which model: a local GGUF file, or a model served by an OpenAI-compatible server.

    Stored in a conversation as one string: the file's path for a local model (as older
    databases already hold), "remote:<base url>#<model id>" for a remote one."""

    name: str  # local: the resolved file path; remote: the server's model id
    endpoint: str = ""  # remote: the server's base URL ("" for local)

    @property
    def is_local(self) -> bool:
        return not self.endpoint

    @property
    def label(self) -> str:
        """What a person calls it: the file name, or the model id and its server."""
        if self.is_local:
            return Path(self.name).name
        return f"{self.name} @ {self.endpoint}"

    def __str__(self) -> str:
        return self.name if self.is_local else f"{REMOTE_PREFIX}{self.endpoint}#{self.name}"

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if text.startswith(REMOTE_PREFIX):
            endpoint, _, name = text[len(REMOTE_PREFIX) :].rpartition("#")
            return cls(name=name, endpoint=endpoint)
        return cls(name=text)

    @classmethod
    def local(cls, path: str | Path) -> ModelRef:
        return cls(name=str(Path(path).expanduser().resolve()))


@dataclass
class ReplyStats:
    """How a reply went. reused/evaluated: prompt tokens taken from the KV cache and
    computed; seed: the seed actually used (a fresh one when none was asked for)."""

    finish_reason: FinishReason = FinishReason.STOP
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_seconds: float = 0.0
    generation_seconds: float = 0.0
    reused_tokens: int = 0
    evaluated_tokens: int = 0
    images_encoded: int = 0  # images encoded for the prompt (the rest came from the KV cache)
    seed: int | None = None
    disk_tokens: int = 0  # of the reused: restored from a KV state saved on disk
    # speculative decoding (engine.speculative): how ("lookup", "draft"; "" if off), why
    # not (note), tokens drafted and drafts the model accepted
    speculative: str = ""
    speculative_note: str = ""
    drafted_tokens: int = 0
    accepted_tokens: int = 0

    @property
    def speculation(self) -> dict[str, Any]:
        """For the receipt: {} when speculation neither ran nor has a reason not to."""
        if not self.speculative and not self.speculative_note:
            return {}
        out: dict[str, Any] = {
            "mode": self.speculative,
            "drafted": self.drafted_tokens,
            "accepted": self.accepted_tokens,
        }
        if self.speculative_note:
            out["note"] = self.speculative_note
        return out

    @property
    def tokens_per_second(self) -> float:
        if self.completion_tokens < 2 or self.generation_seconds <= 0:
            return 0.0
        # the first token's time belongs to prompt evaluation
        return (self.completion_tokens - 1) / self.generation_seconds

    @property
    def context_used(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenAlternative:
    token_id: int
    text: str
    logprob: float


@dataclass(frozen=True)
class Chunk:
    """A piece of the reply. text may be empty: a token whose text is held back (it may
    start a stop marker) or hidden (a thinking tag) still reports its token."""

    text: str
    channel: str = ANSWER
    token_id: int | None = None
    logprob: float | None = None
    top: tuple[TokenAlternative, ...] = ()
    # the distribution the sampler drew from (after penalties, top-k/p, min-p, temperature)
    sampled_logprob: float | None = None
    sampled_top: tuple[TokenAlternative, ...] = ()
    data: bytes = b""  # the token's own bytes (a multi-byte character may span tokens)


@dataclass(frozen=True)
class ChatRequest:
    """Everything a backend needs for one reply.

    history: the thread to answer, without the system message: stored Messages or
    role/content dicts (a system dict among them is used when system_prompt is empty).
    user_template: the user's own chat template for this model, if they saved one.
    logprobs: how many top alternatives to report per token (0: none).
    cache_key: the conversation this turn belongs to, for KV-state reuse.
    """

    history: Sequence[Message] | Sequence[dict[str, Any]]
    system_prompt: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)
    user_template: str | None = None
    logprobs: int = 0
    cache_key: str | None = None
    tools: list[dict[str, Any]] | None = None  # offered to a template that reads them
    add_generation_prompt: bool = True  # open the assistant's turn at the end
    # completion mode: this text as written, no chat template, only the BOS token the
    # vocabulary asks for (history and system_prompt are then ignored)
    raw_prompt: str | None = None
    # branching from an alternative: tokens that start the answer as if generated (the
    # kept prefix and the chosen token), with what was known of them; the rest is sampled
    forced: tuple[Any, ...] = ()  # core.token_engine.Sampled
    # Continue a cut-off answer: the model's turn starts with this text (and thinking)
    prefill: str = ""
    prefill_thinking: str = ""
    # constrained output: a GBNF grammar the answer must match (core.json_grammar); the
    # sampler only picks tokens that keep it matching (None: unconstrained)
    grammar: str | None = None
    # tools offered: the text that opens a call in this model's format; a control token
    # with this text passes as text instead of ending the turn ([TOOL_CALLS], <|python_tag|>)
    tool_marker: str = ""
    # how the tools may be used in this step ("auto", "none", "required" or a tool's
    # name; None: not said) and whether several calls may come at once: a local model
    # gets a grammar instead; a remote server is sent them as they are
    tool_choice: str | None = None
    parallel_tool_calls: bool | None = None
    # structured output as OpenAI's response_format ({"type": "json_object"} or
    # {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}): a local model
    # gets `grammar` built from it; a remote server is sent this
    response_format: dict[str, Any] | None = None
    # the bytes of the images the history names (meta["images"] of a Message, "images"
    # of a dict), by sha256 (core.images, core.store.images)
    images: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PreparedPrompt:
    """The exact prompt of a request: what "Show prompt" shows and the send sends.

    tokens is empty for a backend that renders the prompt on its server (remote):
    then text is the JSON of the messages sent, and tokens_known is False."""

    text: str
    tokens: list[int]
    template: ChatTemplate
    messages: list[dict[str, Any]] = field(default_factory=list)
    warning: str = ""
    merged_system: bool = False
    tokens_known: bool = True
    # (start, end) in text of message content holding special-token strings, tokenized
    # as plain text: "Show prompt" does not mark special tokens there
    text_spans: tuple[tuple[int, int], ...] = ()
    # the images in the prompt, in order (core.vision_prompt.ImageBlock): where each
    # starts in tokens, its size, sha256 and the positions it takes
    images: tuple[Any, ...] = ()

    @property
    def starts_inside_thinking(self) -> bool:
        return starts_inside_thinking(self.text, self.template.think_tags)


@dataclass(frozen=True)
class Capabilities:
    tokens: bool = True  # the prompt's token ids and a tokenizer are available
    logprobs: bool = True  # per-token log-probabilities can be reported
    vision: bool = False  # images in messages reach the model


class ChunkStream(Protocol):
    """Iterate for the chunks; prompt is set before the first chunk, stats when the
    iteration ends (a cancelled stream ends normally with finish_reason CANCELLED)."""

    prompt: PreparedPrompt
    stats: ReplyStats

    def __iter__(self) -> Iterator[Chunk]: ...


class TokensUnavailable(Exception):
    """The backend cannot tokenize (a remote server that does not expose its tokenizer)."""


class Backend(Protocol):
    ref: ModelRef
    info: ModelInfo
    capabilities: Capabilities
    version: str  # what runs the model, for receipts: "llama-cpp-python 0.3.36", a server's name

    def template(self, user_template: str | None = None) -> ChatTemplate:
        """The chat template a request with this user_template renders with."""
        ...

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        """The exact prompt for the request; execute() sends exactly this."""
        ...

    def execute(
        self,
        request: ChatRequest,
        cancel: threading.Event,
        prompt: PreparedPrompt | None = None,
    ) -> ChunkStream:
        """Prepare the prompt (unless prompt, prepare(request) done already, is given)
        and stream the reply."""
        ...

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Raises TokensUnavailable where the backend has no tokenizer."""
        ...

    def token_bytes(self, token_id: int) -> bytes: ...

    def close(self) -> None: ...
