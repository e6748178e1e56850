"""Per-token probabilities with the real SmolLM2: captured, stored with the answer,
read back after a restart, exported and imported; branching from an alternative."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.export import to_json
from chatapp.core.export.schema import doc_to_conversation
from chatapp.core.logprobs import pack_trace, unpack_trace
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFinished
from tests.service.conftest import Recorder

pytestmark = pytest.mark.model
WAIT = 300


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logprobs") / "chat.sqlite3"


@pytest.fixture(scope="module")
def service(db_path: Path, smollm2_path: Path):
    s = ChatService(db_path, Settings())
    s.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
    yield s
    s.shutdown()


def _assert_probabilities(alts) -> None:
    probs = [math.exp(lp) for _, lp in alts]
    assert probs, "no alternatives"
    assert all(0.0 < p <= 1.0 for p in probs)
    assert sum(probs) <= 1.0 + 1e-4
    assert probs == sorted(probs, reverse=True)


def test_tokens_are_stored_with_the_answer_and_survive_a_restart(service, db_path):
    rec = Recorder()
    opts = TurnOptions(sampling=SamplingParams(temperature=0.7, seed=4, max_tokens=24))
    result = service.send(None, "Name three rivers.", options=opts, listener=rec).result(WAIT)
    assert isinstance(result, TurnFinished), result
    streamed = [e.chunk for e in rec.of(TurnChunk) if e.chunk.token_id is not None]
    # a separate connection, as after a restart: the blob is in the file
    with Store(db_path) as store:
        trace = store.token_trace(result.message.id)
        conv = store.get_conversation(result.conversation_id)
        messages = store.messages(result.conversation_id, with_tokens=True)
    assert trace is not None
    assert trace.top_n == 5  # the default, Settings has no logprobs_top_n of its own
    assert trace.sampling["temperature"] == 0.7 and trace.sampling["top_k"] == 40
    assert trace.token_ids == [c.token_id for c in streamed]
    assert len(trace.steps) == result.message.completion_tokens
    for step in trace.steps:
        assert len(step.top) == 5
        _assert_probabilities(step.top)
        _assert_probabilities(step.sampled_top)
        assert step.sampled_logprob is not None and step.sampled_logprob <= 0.0
        assert (
            step.token_id in dict(step.sampled_top)
            or step.probability < math.exp(step.sampled_top[-1][1]) + 1e-6
        )
    assert trace.text().strip() == result.message.content
    # JSON export carries it; importing it gives the same trace back
    answer = next(m for m in messages if m.id == result.message.id)
    assert answer.tokens is not None
    doc = json.loads(to_json(conv, messages))
    exported = next(m for m in doc["messages"] if m["id"] == answer.id)
    assert [s["id"] for s in exported["tokens"]["steps"]] == trace.token_ids
    assert not any("tokens" in m for m in doc["messages"] if m["role"] == "user")
    _, imported = doc_to_conversation(doc, "test")
    back = next(m for m in imported if m.id == answer.id).tokens
    assert pack_trace(back) == pack_trace(trace)
    assert unpack_trace(pack_trace(back)).steps == trace.steps


def test_at_temperature_zero_the_sampled_token_is_the_top_alternative(service, db_path):
    opts = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=30, seed=1), logprobs=3)
    result = service.send(None, "Count to ten.", options=opts).result(WAIT)
    assert isinstance(result, TurnFinished), result
    with Store(db_path) as store:
        trace = store.token_trace(result.message.id)
    assert trace is not None and len(trace.steps) >= 10 and trace.top_n == 3
    for step in trace.steps:
        assert step.sampled_top[0][0] == step.token_id
        assert step.probability == pytest.approx(1.0)
        _assert_probabilities(step.top)


def test_logprobs_zero_stores_nothing(service, db_path):
    opts = TurnOptions(sampling=SamplingParams(max_tokens=4, seed=1), logprobs=0)
    result = service.send(None, "Hi", options=opts).result(WAIT)
    with Store(db_path) as store:
        assert store.token_trace(result.message.id) is None


def test_branching_from_an_alternative_keeps_the_prefix_and_forces_the_choice(service, db_path):
    greedy = SamplingParams(temperature=0.0, max_tokens=20, seed=1)
    first = service.send(
        None, "Tell me a fact about the Moon.", options=TurnOptions(sampling=greedy)
    )
    first = first.result(WAIT)
    assert isinstance(first, TurnFinished), first
    with Store(db_path) as store:
        original = store.token_trace(first.message.id)
    assert original is not None and len(original.steps) >= 8
    position = 4
    chosen = original.steps[position].top[1][0]  # the runner-up at that position
    assert chosen != original.token_ids[position]
    branch = service.branch_from(first.message.id, position, chosen).result(WAIT)
    assert isinstance(branch, TurnFinished), branch
    new = branch.message
    assert new.id != first.message.id
    assert new.parent_id == first.message.parent_id  # a sibling: a new branch
    assert new.meta["branched_from"] == {
        "message_id": first.message.id,
        "position": position,
        "token_id": chosen,
    }
    with Store(db_path) as store:
        trace = store.token_trace(new.id)
        assert store.get_message(first.message.id).content == first.message.content
        assert store.get_conversation(first.conversation_id).current_leaf_id == new.id
    assert trace is not None and trace.forced == position + 1
    ids = trace.token_ids
    differs = next(i for i, (a, b) in enumerate(zip(ids, original.token_ids)) if a != b)
    assert differs == position and ids[position] == chosen
    assert ids[:position] == original.token_ids[:position]
    assert len(ids) > position + 1  # the rest was sampled
    prefix = b"".join(original.pieces[t] for t in original.token_ids[:position])
    expect = (prefix + original.pieces[chosen]).decode("utf-8", "replace").strip()
    assert new.content.startswith(expect)
