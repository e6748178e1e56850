"""Conversations and messages.

Messages form a tree: each has a parent id, so editing or regenerating a message adds a
sibling branch instead of overwriting history. A conversation points at its current leaf;
the thread shown and sent to the model is the path from the root to that leaf.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any


class Role(str, Enum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # a tool's result; meta["tool_call_id"] names the call it answers


class FinishReason(str, Enum):
    STREAMING = "streaming"  # saved while still being generated (crash-safe partial)
    STOP = "stop"  # the model ended its turn
    LENGTH = "length"  # hit max tokens or the context window
    CANCELLED = "cancelled"  # the user pressed Stop
    TOOL_CALLS = "tool_calls"  # the model called tools (the turn goes on with their results)
    ERROR = "error"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Message:
    id: str
    conversation_id: str
    parent_id: str | None
    role: Role
    content: str
    created_at: float
    thinking: str = ""
    model: str | None = None
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # per-token probabilities (core.logprobs.TokenTrace), attached only when asked for
    # (Store.messages(with_tokens=True), an import); stored in table token_logprobs
    tokens: Any = field(default=None, compare=False, repr=False)

    def with_(self, **changes: Any) -> Message:
        return replace(self, **changes)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: float
    updated_at: float
    model_path: str | None = None
    system_prompt: str = ""
    current_leaf_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> Conversation:
        return replace(self, **changes)


def now() -> float:
    return time.time()


def thread(messages: Iterable[Message], leaf_id: str | None) -> list[Message]:
    """The branch from the root down to leaf_id, in order."""
    by_id = {m.id: m for m in messages}
    out: list[Message] = []
    seen: set[str] = set()
    cur = by_id.get(leaf_id) if leaf_id else None
    while cur is not None and cur.id not in seen:
        seen.add(cur.id)
        out.append(cur)
        cur = by_id.get(cur.parent_id) if cur.parent_id else None
    out.reverse()
    return out


def title_from(text: str, limit: int = 48) -> str:
    """A conversation title from the first user message: one line, trimmed at a word."""
    line = " ".join(text.split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"
