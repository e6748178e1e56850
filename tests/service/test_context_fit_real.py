"""Leaving out the oldest turns of a 2,000-message chat (about 188k tokens) with the real
SmolLM2 in a 4,096-token context: the prompt fits, the answer streams, a second
regenerate reuses the whole prompt from the KV cache, and Stop during the fitting ends
the turn without an answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.chat_settings import DROP_OLDEST, ChatSettings
from chatapp.core.context_fit import TokenCounts, answer_reserve
from chatapp.core.receipt import Receipt
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import GRID
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnPrompt
from tests.long_chat import long_chat
from tests.service.conftest import Recorder

pytestmark = pytest.mark.model
WAIT = 600
N_CTX = 2048
OPTS = TurnOptions(sampling=SamplingParams(seed=3, max_tokens=8, temperature=0.7))


@pytest.fixture
def long_service(tmp_path: Path, smollm2_path: Path):
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    service.load(
        LoadRequest(ModelRef.local(smollm2_path), context_limit=N_CTX, n_threads=2)
    ).result(WAIT)

    def setup(store: Store) -> str:
        conv = store.create_conversation("A long import", model_path=str(service.loaded.ref))
        messages = long_chat(conv.id, 2000)
        store.insert_messages(messages)
        store.set_current_leaf(conv.id, messages[-1].id)
        return conv.id

    cid = service.read(setup).result(WAIT)
    service.set_chat_settings(cid, ChatSettings(context_policy=DROP_OLDEST)).result(WAIT)
    service.cid = cid  # type: ignore[attr-defined]
    yield service
    service.shutdown()


def test_a_2000_message_chat_is_fitted_and_answered_and_a_second_regenerate_reuses_it(
    long_service: ChatService,
) -> None:
    service, cid = long_service, long_service.cid  # type: ignore[attr-defined]
    whole = service.prepare_conversation(cid).result(WAIT)
    assert len(whole.tokens) > 150_000  # what the chat would be without fitting
    rec = Recorder()
    first = service.regenerate(cid, options=OPTS, listener=rec).result(WAIT)
    assert isinstance(first, TurnFinished), first
    prompt = rec.of(TurnPrompt)[0]
    reserve = answer_reserve(_request(OPTS), N_CTX)
    assert len(prompt.prompt.tokens) + reserve <= N_CTX
    assert len(prompt.prompt.tokens) > N_CTX // 2  # not more left out than needed
    assert len(prompt.dropped) > 1900
    assert first.message.meta["context_dropped"] == list(prompt.dropped)
    assert any(e.chunk.token_id is not None for e in rec.of(TurnChunk))  # it streamed
    assert first.message.prompt_tokens == len(prompt.prompt.tokens)
    # the same question again: the same turns left out, the prompt taken from the cache
    # in whole blocks of GRID tokens evaluated as a batch (engine.llama: what a fresh
    # process computes), the rest and the last token evaluated again
    counted = service._runner.token_counts.counted
    again = service.regenerate(cid, options=OPTS).result(WAIT)
    assert isinstance(again, TurnFinished), again
    assert again.message.meta["context_dropped"] == list(prompt.dropped)
    receipt = Receipt.from_dict(again.message.meta["receipt"])
    assert receipt is not None and receipt.prompt_tokens == len(prompt.prompt.tokens)
    assert receipt.reused_tokens == (receipt.prompt_tokens - 1) // GRID * GRID
    assert receipt.evaluated_tokens == receipt.prompt_tokens - receipt.reused_tokens
    assert service._runner.token_counts.counted == counted  # no message tokenized again


def test_stop_while_fitting_ends_the_turn_without_an_answer(long_service: ChatService) -> None:
    service, cid = long_service, long_service.cid  # type: ignore[attr-defined]
    handle_box: list[Any] = []

    class StopAfter(TokenCounts):
        def count(self, model: str, message: Any, tokenize: Any) -> int:
            if self.counted == 10:
                handle_box[0].cancel()  # Stop, pressed while the messages are counted
            return super().count(model, message, tokenize)

    service._runner.token_counts = StopAfter()
    handle = service.regenerate(cid, options=OPTS)
    handle_box.append(handle)
    result = handle.result(WAIT)
    assert isinstance(result, TurnFailed) and "Stopped" in result.error
    assert service._runner.token_counts.counted == 11  # it stopped at the next message
    thread = service.read(lambda s: s.active_thread(cid)).result(WAIT)
    assert len(thread) == 2000 and thread[-1].content.startswith("1999:")  # nothing added


def _request(opts: TurnOptions) -> Any:
    from chatapp.core.backend import ChatRequest

    assert opts.sampling is not None
    return ChatRequest([], sampling=opts.sampling)
