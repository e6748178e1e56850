"""A continued answer's statistics combine its parts (core.continued, issue 23.3)."""

from __future__ import annotations

import time

from chatapp.core.continued import Part, combine
from chatapp.core.conversation import Message, Role
from chatapp.core.message_info import stats_line


def _answer(**meta) -> Message:
    return Message(
        "a",
        "c",
        "q",
        Role.ASSISTANT,
        "Once upon",
        time.time(),
        prompt_tokens=30,
        completion_tokens=10,
        tokens_per_second=9.0,
        meta=meta,
    )


def test_two_continues_make_one_statistic() -> None:
    receipt = {"prompt_tokens": 30, "reused_tokens": 0, "evaluated_tokens": 30}
    first = _answer(
        prompt_seconds=0.5, generation_seconds=1.0, receipt=receipt, sampling={"seed": 7}
    )
    second = Part(41, 20, 0.2, 2.0, reused_tokens=40, evaluated_tokens=1, seed=8)
    new_meta = {"receipt": {"prompt_tokens": 41}, "prompt_seconds": 0.2, "x": 1}
    one = combine(first, second, new_meta)
    assert one is not None
    assert (one.prompt_tokens, one.completion_tokens) == (30, 30)
    assert one.prompt_seconds == 0.5 and one.generation_seconds == 1.0 + 0.2 + 2.0
    assert one.meta["receipt"] == receipt and one.meta["x"] == 1
    assert [p["completion_tokens"] for p in one.meta["continued"]] == [10, 20]
    assert one.meta["continued"][0]["seed"] == 7
    saved = first.with_(
        completion_tokens=one.completion_tokens,
        tokens_per_second=round(one.tokens_per_second, 2),
        meta=one.meta,
    )
    line = stats_line(saved)
    assert "first token 0.50 s" in line and "30 tokens" in line
    # a third part adds to the list, and to the sums
    again = combine(saved, Part(61, 5, 0.1, 0.4), one.meta)
    assert again is not None and again.completion_tokens == 35
    assert [p["completion_tokens"] for p in again.meta["continued"]] == [10, 20, 5]
    assert again.generation_seconds == 3.2 + 0.1 + 0.4


def test_an_answer_without_statistics_keeps_the_new_parts() -> None:
    assert combine(_answer(), Part(41, 20, 0.2, 2.0), {}) is None
