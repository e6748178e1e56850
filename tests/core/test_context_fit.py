"""Fitting a conversation into the context (core.context_fit): the same turns left out
as the old one-turn-at-a-time loop, at the cost of a few prepares instead of one per
turn, cancellable, with progress."""

from __future__ import annotations

import random
import threading
from dataclasses import replace
from typing import Any

import pytest

from chatapp.core.backend import ChatRequest
from chatapp.core.chat_settings import DROP_OLDEST
from chatapp.core.context_fit import (
    FitCancelled,
    TokenCounts,
    answer_reserve,
    counter,
    fit_context,
)
from chatapp.core.conversation import Message, Role
from chatapp.core.errors import ContextFullError
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.local import LocalBackend
from tests.fakes import ScriptedEngine
from tests.long_chat import long_chat


def old_fit(backend: Any, request: ChatRequest, n_ctx: int) -> tuple[int, list[str]]:
    """The loop this module replaced (drop_oldest): one turn, one whole prepare."""
    history = list(request.history)
    reserve = answer_reserve(request, n_ctx)
    prompt = backend.prepare(request)
    if len(prompt.tokens) + reserve <= n_ctx:
        return len(prompt.tokens), []
    dropped: list[str] = []
    while len(history) > 1:
        cut = 1
        while cut < len(history) - 1 and history[cut].role is not Role.USER:
            cut += 1
        dropped += [m.id for m in history[:cut]]
        history = history[cut:]
        prompt = backend.prepare(replace(request, history=history))
        if len(prompt.tokens) + reserve <= n_ctx:
            return len(prompt.tokens), dropped
    raise ContextFullError("too long")


class Counting:
    """The backend's prepare, counting calls and the tokens they made."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.calls = 0
        self.tokens = 0

    def __call__(self, request: ChatRequest) -> Any:
        self.calls += 1
        prompt = self.backend.prepare(request)
        self.tokens += len(prompt.tokens)
        return prompt


def _backend(n_ctx: int) -> LocalBackend:
    return LocalBackend(ScriptedEngine(n_ctx=n_ctx))


def _chat(n: int, seed: int) -> list[Message]:
    rnd = random.Random(seed)
    msgs = long_chat("c", n, words=8, seed=seed)
    # answers of very different lengths, some questions followed by two answers
    out = []
    for m in msgs:
        out.append(m.with_(content=m.content * rnd.randint(1, 4)))
        if m.role is Role.ASSISTANT and rnd.random() < 0.2:
            out.append(m.with_(id=m.id + "b", content="and also " + m.content))
    return out


@pytest.mark.parametrize("seed", range(18))
def test_the_same_turns_are_left_out_as_by_the_old_loop(seed: int) -> None:
    rnd = random.Random(seed)
    n_ctx = rnd.choice([600, 900, 1500, 3000])
    backend = _backend(n_ctx)
    history = _chat(rnd.randint(1, 80), seed)
    system = ["", "Be brief.", "You answer in the style of a ship's log. " * 30][seed % 3]
    request = ChatRequest(history, system)
    counts = TokenCounts()
    count = counter(counts, "m", backend.tokenize)
    try:
        want_len, want = old_fit(backend, request, n_ctx)
    except ContextFullError:
        with pytest.raises(ContextFullError, match="Your message alone"):
            fit_context(request, n_ctx, DROP_OLDEST, backend.prepare, count)
        return
    prepare = Counting(backend)
    fit = fit_context(request, n_ctx, DROP_OLDEST, prepare, count)
    assert list(fit.dropped) == want
    assert fit.prompt is not None and len(fit.prompt.tokens) == want_len
    assert fit.prompt == backend.prepare(fit.request)  # exactly what execute() would send
    assert len(fit.prompt.tokens) + answer_reserve(request, n_ctx) <= n_ctx
    assert prepare.calls <= 5  # (one of them: the prompt with no messages)


def test_a_long_chat_costs_a_few_prepares_of_what_is_kept_and_counts_are_cached() -> None:
    n_ctx = 4096
    backend = _backend(n_ctx)
    history = long_chat("c", 2000)
    request = ChatRequest(history, "", SamplingParams(max_tokens=256))
    counts = TokenCounts()
    prepare = Counting(backend)
    seen: list[float] = []
    fit = fit_context(
        request,
        n_ctx,
        DROP_OLDEST,
        prepare,
        counter(counts, "m", backend.tokenize),
        progress=seen.append,
    )
    assert fit.prompt is not None and len(fit.prompt.tokens) + 256 <= n_ctx
    assert fit.request.history[0].role is Role.USER
    assert list(fit.dropped) == [m.id for m in history[: len(history) - len(fit.request.history)]]
    # one prepare to check the cut, maybe one or two more: never one per dropped turn
    assert prepare.calls <= 5 and prepare.tokens <= 4 * n_ctx
    # only the newest messages were tokenized (the kept part and a little more)
    assert counts.counted < 60
    before = counts.counted
    fit_context(request, n_ctx, DROP_OLDEST, prepare, counter(counts, "m", backend.tokenize))
    assert counts.counted == before  # a second regenerate tokenizes no message again
    assert seen and seen[-1] == 1.0


def test_an_edited_message_is_counted_again() -> None:
    backend = _backend(4096)
    counts = TokenCounts()
    m = long_chat("c", 1)[0]
    assert counts.count("m", m, backend.tokenize) == len(backend.tokenize(m.content))
    counts.count("m", m, backend.tokenize)
    assert counts.counted == 1
    counts.count("m", m.with_(content="edited"), backend.tokenize)
    counts.count("other model", m, backend.tokenize)
    assert counts.counted == 3


def test_stop_ends_the_fitting_at_once() -> None:
    backend = _backend(4096)
    history = long_chat("c", 2000)
    cancel = threading.Event()
    calls = [0]

    def count(m: Any) -> int:
        calls[0] += 1
        if calls[0] == 5:
            cancel.set()  # Stop pressed while the messages are being counted
        return len(backend.tokenize(m.content))

    with pytest.raises(FitCancelled):
        fit_context(ChatRequest(history), 4096, DROP_OLDEST, backend.prepare, count, cancel=cancel)
    assert calls[0] == 5


def test_policy_stop_prepares_once_and_explains() -> None:
    backend = _backend(400)
    prepare = Counting(backend)
    short = ChatRequest(long_chat("c", 2, words=5))
    fit = fit_context(short, 400, "stop", prepare, lambda m: 0)
    assert fit.dropped == () and fit.request is short and prepare.calls == 1
    with pytest.raises(ContextFullError, match="leave out the oldest turns"):
        fit_context(ChatRequest(long_chat("c", 20)), 400, "stop", prepare, lambda m: 0)


def test_a_chat_that_fits_is_sent_whole_and_a_huge_question_is_explained() -> None:
    backend = _backend(2000)
    short = ChatRequest(long_chat("c", 4, words=5))
    fit = fit_context(short, 2000, DROP_OLDEST, backend.prepare, lambda m: 10)
    assert fit.dropped == () and fit.request is short
    huge = ChatRequest([*long_chat("c", 4, words=5), long_chat("d", 1, words=900)[0]])
    count = counter(TokenCounts(), "m", backend.tokenize)
    with pytest.raises(ContextFullError, match="Your message alone is"):
        fit_context(huge, 2000, DROP_OLDEST, backend.prepare, count)
