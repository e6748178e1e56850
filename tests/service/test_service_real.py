"""The chat service with the real SmolLM2: KV-state reuse across conversation switches,
per-token log-probabilities from the real logits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.receipt import Receipt
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import GRID
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFinished
from tests.service.conftest import Recorder

pytestmark = pytest.mark.model
WAIT = 300
OPTS = TurnOptions(sampling=SamplingParams(seed=1, max_tokens=24, temperature=0.7))


@pytest.fixture
def smol_service(tmp_path: Path, smollm2_path: Path):
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    service.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
    yield service
    service.shutdown()


def _receipt(result: TurnFinished) -> Receipt:
    assert isinstance(result, TurnFinished), result
    receipt = Receipt.from_dict(result.message.meta["receipt"])
    assert receipt is not None
    return receipt


def test_switching_a_b_a_evaluates_only_a_new_tokens(smol_service: ChatService) -> None:
    # long enough for whole GRID cells: only those are reused (exact answers)
    cats = "Tell me about cats: " + ", ".join(f"cat {i}" for i in range(40)) + "."
    first = smol_service.send(None, cats, options=OPTS).result(WAIT)
    a1 = _receipt(first)
    assert a1.prompt_tokens > 2 * GRID
    cid_a = first.conversation_id
    b = smol_service.send(None, "Name a colour.", options=OPTS).result(WAIT)
    assert b.conversation_id != cid_a
    back = _receipt(smol_service.send(cid_a, "And dogs?", options=OPTS).result(WAIT))
    # the first turn's prompt, to its last whole GRID cell, came from the saved KV state
    assert back.reused_tokens >= a1.prompt_tokens // GRID * GRID
    assert back.evaluated_tokens == back.prompt_tokens - back.reused_tokens
    # plus at most one GRID cell evaluated again (exact answers, engine.llama.GRID)
    assert back.evaluated_tokens < back.prompt_tokens - a1.prompt_tokens + 8 + GRID


def test_without_the_state_cache_the_history_is_evaluated_again(
    smol_service: ChatService,
) -> None:
    smol_service._infer.call(
        lambda: setattr(smol_service._backend.engine._states, "max_entries", 0)
    )
    first = smol_service.send(None, "Tell me about cats.", options=OPTS).result(WAIT)
    a1 = _receipt(first)
    smol_service.send(None, "Name a colour.", options=OPTS).result(WAIT)
    back = _receipt(
        smol_service.send(first.conversation_id, "And dogs?", options=OPTS).result(WAIT)
    )
    # only the shared start (the template's default system prompt) is reused
    assert back.reused_tokens < a1.prompt_tokens


def test_logprobs_are_real_probabilities_and_greedy_picks_the_top(
    smol_service: ChatService,
) -> None:
    greedy = TurnOptions(
        sampling=SamplingParams(temperature=0.0, repeat_penalty=1.0, max_tokens=30, seed=1),
        logprobs=5,
    )
    rec = Recorder()
    result = smol_service.send(None, "What is the capital of France?", options=greedy, listener=rec)
    assert isinstance(result.result(WAIT), TurnFinished)
    steps = [e.chunk for e in rec.of(TurnChunk) if e.chunk.token_id is not None]
    assert len(steps) >= 5
    for c in steps:
        probs = [math.exp(a.logprob) for a in c.top]
        assert len(probs) == 5
        assert all(0.0 < p <= 1.0 for p in probs)
        assert sum(probs) <= 1.0 + 1e-4
        assert probs == sorted(probs, reverse=True)
        assert c.top[0].token_id == c.token_id  # temperature 0: the top candidate
        assert c.logprob == pytest.approx(c.top[0].logprob)


def test_regenerating_the_same_prompt_reuses_all_of_it_but_the_last_block(
    smol_service: ChatService,
) -> None:
    """The engine keeps the prompt's whole GRID-token blocks (evaluated as a batch, what
    a fresh process computes) and evaluates the rest again, its last token included."""
    question = "Tell me about cats: " + "their history, habits and care. " * 12
    first = smol_service.send(None, question, options=OPTS).result(WAIT)
    prompt = _receipt(first).prompt_tokens
    assert prompt > GRID
    for _ in range(2):
        again = _receipt(smol_service.regenerate(first.conversation_id, options=OPTS).result(WAIT))
        assert again.prompt_tokens == prompt
        reused = (prompt - 1) // GRID * GRID
        assert (again.reused_tokens, again.evaluated_tokens) == (reused, prompt - reused)


def test_completion_mode_keeps_its_prompt_across_a_chat(smol_service: ChatService) -> None:
    """Regenerate in the completion view after a chat turn: the text's KV state was kept
    under its own key, so only its last GRID-token block is evaluated again."""
    text = "The lighthouse keeper climbed the stairs and " * 12
    sampling = SamplingParams(seed=1, max_tokens=6, temperature=0.7)
    first = smol_service.continue_text(text, sampling=sampling).result(WAIT)
    smol_service.send(None, "Name a colour.", options=OPTS).result(WAIT)
    again = smol_service.continue_text(text, sampling=sampling).result(WAIT)
    n = first.stats.prompt_tokens
    assert again.stats.prompt_tokens == n and n > GRID
    reused = (n - 1) // GRID * GRID
    assert (again.stats.reused_tokens, again.stats.evaluated_tokens) == (reused, n - reused)
