"""Branching from an alternative and token capture through the service, on the scripted
engine (fast checks of the wiring; tests/service/test_logprobs_real.py runs SmolLM2)."""

from __future__ import annotations

from chatapp.core.store import Store
from chatapp.core.token_engine import SamplingParams
from chatapp.service import TurnOptions
from chatapp.service.events import TurnFailed, TurnFinished

WAIT = 30


def test_branch_sends_prompt_plus_forced_tokens_and_records_them(fake_service, tmp_path) -> None:
    service = fake_service(reply="abcdef")
    first = service.send(None, "hi").result(WAIT)
    assert isinstance(first, TurnFinished)
    engine = service.engines[0]
    prompt = engine.prompts[-1]
    chosen = ord("z") + 1  # the fake's token for byte "z"
    branch = service.branch_from(first.message.id, 2, chosen).result(WAIT)
    assert isinstance(branch, TurnFinished), branch
    # the engine got the same prompt plus the kept tokens and the chosen one
    assert engine.prompts[-1] == [*prompt, ord("a") + 1, ord("b") + 1, chosen]
    assert branch.message.content == "abz" + "abcdef"  # the fake then replies as always
    with Store(tmp_path / "chat.sqlite3") as store:
        trace = store.token_trace(branch.message.id)
    assert trace is not None and trace.forced == 3
    assert trace.token_ids[:3] == [ord("a") + 1, ord("b") + 1, chosen]
    assert branch.message.parent_id == first.message.parent_id


def test_branch_from_refuses_what_it_cannot_do(fake_service) -> None:
    service = fake_service(reply="abc")
    done = service.send(None, "hi").result(WAIT)
    bare = service.send(None, "hi", options=TurnOptions(logprobs=0)).result(WAIT)
    cases = [
        (bare.message.id, 0, 66, "no recorded tokens"),
        (done.message.id, 9, 66, "no position 9"),
        (done.message.id, 0, 10**6, "not in this model's vocabulary"),
        ("nope", 0, 66, "No answer"),
    ]
    for answer, position, token, says in cases:
        r = service.branch_from(answer, position, token).result(WAIT)
        assert isinstance(r, TurnFailed) and says in r.error, (says, r)


def test_max_tokens_counts_forced_tokens(fake_service) -> None:
    service = fake_service(reply="abcdef")
    first = service.send(None, "hi").result(WAIT)
    opts = TurnOptions(sampling=SamplingParams(max_tokens=3))
    r = service.branch_from(first.message.id, 1, ord("q") + 1, options=opts).result(WAIT)
    assert isinstance(r, TurnFinished) and r.message.content == "aqa"
    assert r.message.completion_tokens == 3
