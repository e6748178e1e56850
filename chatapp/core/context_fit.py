"""Fitting a conversation into the model's context: which oldest turns to leave out.

Policy "stop" leaves nothing out: a conversation longer than the context is a
ContextFullError that says what to do. Policy "drop_oldest" leaves out the oldest whole
turns (a question and the answers before the next question; the system prompt stays)
until the prompt leaves room for the answer. Never a silent cut: the ids left out are
reported, and the caller records them with the answer.

The search costs about one tokenization of what is kept, not one per turn left out:
each message's tokens are counted once (and cached across turns by the caller's
counter), the counts are summed from the newest message back to find the cut, and
only then is the real prompt prepared, once to check it and once more to check that
one turn fewer would not have fitted, so the result is exactly today's rule (the
fewest whole turns left out) and the prompt sent never exceeds the context.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from chatapp.core.backend import ChatRequest, PreparedPrompt
from chatapp.core.chat_settings import DROP_OLDEST
from chatapp.core.errors import ContextFullError, UserError
from chatapp.core.token_engine import Cancelled

Prepare = Callable[[ChatRequest], PreparedPrompt]
Progress = Callable[[float], None]  # 0.0 .. 1.0
# counted beyond the budget, for text that tokenizes shorter inside the whole prompt
MARGIN = 32


class FitCancelled(Cancelled):
    """Stop was pressed while the conversation was being fitted."""


@dataclass(frozen=True)
class FitResult:
    """The request as it will be sent, the ids of the messages left out, and its prompt
    (prepared exactly as execute() would; None when the backend cannot count tokens)."""

    request: ChatRequest
    dropped: tuple[str, ...]
    prompt: PreparedPrompt | None


def answer_reserve(request: ChatRequest, n_ctx: int) -> int:
    """Room kept for the answer when older turns are left out to make space."""
    wanted = request.sampling.max_tokens or 512
    return max(16, min(wanted, n_ctx // 4))


class TokenCounts:
    """Tokens per message, counted once: keyed by the model, the message's id and a
    hash of what the template renders from it, so an edited message is counted again
    and a second regenerate of a long chat costs nothing. Bounded (least recent out)."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._counts: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self.counted = 0  # messages tokenized (not taken from the cache), for tests

    def count(self, model: str, message: Any, tokenize: Callable[[str], list[int]]) -> int:
        text = _text_of(message)
        key = (model, _id_of(message), hashlib.sha1(text.encode("utf-8")).hexdigest())
        n = self._counts.get(key)
        if n is not None:
            self._counts.move_to_end(key)
            return n
        n = len(tokenize(text))
        self.counted += 1
        self._counts[key] = n
        if len(self._counts) > self._max:
            self._counts.popitem(last=False)
        return n

    def clear(self) -> None:
        self._counts.clear()


def fit_context(
    request: ChatRequest,
    n_ctx: int,
    policy: str,
    prepare: Prepare,
    count: Callable[[Any], int],
    *,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> FitResult:
    """The request as it will be sent (see the module's docstring).

    prepare: the backend's prepare (the exact prompt of a request); count: tokens of
    one message's text (a TokenCounts, bound to the model). cancel: set by Stop, ends
    the search with FitCancelled at the next message or prepare. progress: called with
    the fraction done while the search runs."""
    history: list[Any] = list(request.history)
    if policy != DROP_OLDEST or not n_ctx:
        prompt = prepare(request)
        if not n_ctx or len(prompt.tokens) < n_ctx:
            return FitResult(request, (), prompt)
        raise ContextFullError(
            f"The conversation is {len(prompt.tokens)} tokens long; this model's context "
            f"holds {n_ctx}. Start a new chat, or choose to leave out the oldest turns "
            "in the chat settings."
        )
    reserve = answer_reserve(request, n_ctx)
    budget = n_ctx - reserve

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise FitCancelled()

    # where a kept part may start: at a question, or at the last message alone
    starts = [i for i in range(1, len(history)) if _role(history[i]) == "user"]
    if len(history) > 1 and (not starts or starts[-1] != len(history) - 1):
        starts.append(len(history) - 1)
    # the counts from the newest message back, until they alone exceed the budget
    n = len(history)
    suffix = [0] * (n + 1)  # suffix[i]: tokens of the texts of history[i:]
    first_counted = n
    last_report = time.monotonic()
    for i in range(n - 1, -1, -1):
        check()
        suffix[i] = suffix[i + 1] + count(history[i])
        first_counted = i
        if progress is not None and time.monotonic() - last_report > 0.1:
            last_report = time.monotonic()
            progress(min(0.9, 0.9 * suffix[i] / max(1, budget)))
        if suffix[i] > budget + MARGIN:
            break

    def sent(start: int) -> ChatRequest:
        return replace(request, history=history[start:]) if start else request

    def fits(prompt: PreparedPrompt) -> bool:
        return len(prompt.tokens) + reserve <= n_ctx

    # The template adds tokens the counts do not see: once per prompt (the system
    # prompt, the answer's opening), measured on a prompt with no messages, and around
    # each message, learnt from each real prompt. They move the estimate of where to
    # cut, which a real prepare then checks.
    check()
    try:
        fixed = len(prepare(replace(request, history=[])).tokens)
    except UserError:  # a template that wants a message
        fixed = 0
    framing = 0.0

    def estimate(start: int) -> float:
        if start < first_counted:
            return float("inf")  # not counted: its texts alone are over the budget
        return fixed + suffix[start] + framing * (n - start)

    def learn(start: int, prompt: PreparedPrompt) -> None:
        nonlocal framing
        if start >= first_counted and n > start:
            per_message = (len(prompt.tokens) - fixed - suffix[start]) / (n - start)
            framing = max(framing, per_message)

    options = [0, *starts]  # where the kept part starts (0: nothing left out)

    def first_fitting(at_least: int) -> int:
        for k in range(at_least, len(options)):
            if estimate(options[k]) <= budget:
                return k
        return len(options) - 1

    k = first_fitting(0)
    check()
    prompt = prepare(sent(options[k]))
    learn(options[k], prompt)
    while not fits(prompt):
        if k == len(options) - 1:
            raise ContextFullError(
                f"Your message alone is {len(prompt.tokens)} tokens with the template; this "
                f"model's context holds {n_ctx} (and {reserve} are kept for the answer). "
                "Shorten it, or load the model with a larger context."
            )
        k = first_fitting(k + 1)
        check()
        prompt = prepare(sent(options[k]))
        learn(options[k], prompt)
        if progress is not None:
            progress(min(0.99, 0.9 + 0.09 * k / len(options)))
    # exact: one turn fewer left out must not fit (checked where the estimate allows it)
    while k > 0 and estimate(options[k - 1]) <= budget + MARGIN:
        check()
        before = prepare(sent(options[k - 1]))
        if not fits(before):
            break
        k, prompt = k - 1, before
    start = options[k]
    dropped = tuple(str(getattr(m, "id", "")) for m in history[:start] if getattr(m, "id", ""))
    if progress is not None:
        progress(1.0)
    return FitResult(sent(start), dropped, prompt)


def _role(m: Any) -> str:
    role = getattr(m, "role", None)
    if role is not None:
        return str(getattr(role, "value", role))
    return str(m.get("role", "")) if isinstance(m, dict) else ""


def _id_of(m: Any) -> str:
    return str(getattr(m, "id", "") or "")


def _text_of(m: Any) -> str:
    """What of a message reaches the prompt as text (a dict's content, or a Message's)."""
    if isinstance(m, dict):
        content = m.get("content", "")
        return content if isinstance(content, str) else str(content)
    return str(getattr(m, "content", "") or "")


def counter(
    counts: TokenCounts, model: str, tokenize: Callable[[str], list[int]]
) -> Callable[[Any], int]:
    """counts.count bound to a model and its tokenizer, for fit_context."""
    return lambda message: counts.count(model, message, tokenize)


__all__ = [
    "FitCancelled",
    "FitResult",
    "TokenCounts",
    "answer_reserve",
    "counter",
    "fit_context",
]
