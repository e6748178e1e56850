"""Fitting a conversation into the model's context window, by the conversation's policy.

Policy "stop": nothing is left out; a conversation longer than the context is a
ContextFullError that says what to do. "drop_oldest": the oldest turns are left out
(the system prompt stays) until the prompt leaves room for the answer. Never a silent
cut: the dropped ids are reported and recorded with the answer. The result carries the
prepared prompt, which is what the send sends (a turn prepares once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from chatapp.core.backend import ChatRequest, PreparedPrompt
from chatapp.core.chat_settings import DROP_OLDEST
from chatapp.core.conversation import Role
from chatapp.core.errors import ContextFullError


@dataclass(frozen=True)
class FitResult:
    request: ChatRequest  # as it will be sent
    prompt: PreparedPrompt  # its prepared prompt
    dropped: list[str] = field(default_factory=list)  # ids of the messages left out


def answer_reserve(request: ChatRequest, n_ctx: int) -> int:
    """Room kept for the answer when older turns are left out to make space."""
    wanted = request.sampling.max_tokens or 512
    return max(16, min(wanted, n_ctx // 4))


def fit_context(
    prepare: Callable[[ChatRequest], PreparedPrompt],
    request: ChatRequest,
    policy: str,
    n_ctx: int,
) -> FitResult:
    """The request as it will be sent, its prompt, and the ids of the messages left out.
    n_ctx 0 (or a prompt whose tokens are unknown: a remote server counts them) fits."""
    prompt = prepare(request)
    if not n_ctx or not prompt.tokens_known:
        return FitResult(request, prompt)
    history: list[Any] = list(request.history)
    reserve = answer_reserve(request, n_ctx)
    if len(prompt.tokens) < n_ctx and (
        policy != DROP_OLDEST or len(prompt.tokens) + reserve <= n_ctx
    ):
        return FitResult(request, prompt)
    if policy != DROP_OLDEST or request.raw_prompt is not None:
        raise ContextFullError(
            f"The conversation is {len(prompt.tokens)} tokens long; this model's context "
            f"holds {n_ctx}. Start a new chat, or choose to leave out the oldest turns "
            "in the chat settings."
        )
    dropped: list[str] = []
    while len(history) > 1:
        # leave out the oldest turn: a question and the answers before the next question
        cut = 1
        while cut < len(history) - 1 and _role(history[cut]) != Role.USER.value:
            cut += 1
        dropped += [str(getattr(m, "id", "")) for m in history[:cut] if getattr(m, "id", "")]
        history = history[cut:]
        request = replace(request, history=history)
        prompt = prepare(request)
        if len(prompt.tokens) + reserve <= n_ctx:
            return FitResult(request, prompt, dropped)
    raise ContextFullError(
        f"Your message alone is {len(prompt.tokens)} tokens with the template; this model's "
        f"context holds {n_ctx} (and {reserve} are kept for the answer). Shorten it, or "
        "load the model with a larger context."
    )


def _role(m: Any) -> str:
    role = getattr(m, "role", None)
    if role is not None:
        return str(getattr(role, "value", role))
    return str(m.get("role", "")) if isinstance(m, dict) else ""
