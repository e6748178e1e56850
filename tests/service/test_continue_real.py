"""Continue is one answer (issue 23.3), with the real SmolLM2: stop an answer mid-way,
continue it, and the saved tokens cover the whole answer, spell its text exactly, and
its statistics combine both parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.conversation import FinishReason
from chatapp.core.message_info import stats_line
from chatapp.core.receipt import Receipt
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFinished

pytestmark = pytest.mark.model
WAIT = 300
OPTS = TurnOptions(sampling=SamplingParams(seed=5, max_tokens=40, temperature=0.7), logprobs=3)


@pytest.fixture
def smol_service(tmp_path: Path, smollm2_path: Path):
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    service.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
    yield service
    service.shutdown()


def test_a_stopped_and_continued_answer_is_one_answer(smol_service: ChatService) -> None:
    service = smol_service
    tokens: list[Any] = []
    box: list[Any] = []

    def stop_after_ten(event: Any) -> None:
        if isinstance(event, TurnChunk) and event.chunk.token_id is not None:
            tokens.append(event.chunk)
            if len(tokens) == 10:
                box[0].cancel()  # Stop, mid-answer

    box.append(
        service.send(
            None,
            # longer than a GRID block (64 tokens): whole blocks of it are reused
            "Write a long story about a lighthouse keeper. " + "Storms, ships, a cat. " * 12,
            options=OPTS,
            listener=stop_after_ten,
        )
    )
    first = box[0].result(WAIT)
    assert isinstance(first, TurnFinished), first
    stopped = first.message
    assert stopped.finish_reason is FinishReason.CANCELLED and stopped.completion_tokens == 10
    first_trace = service.read(lambda s: s.token_trace(stopped.id)).result(WAIT)
    assert first_trace is not None and len(first_trace.steps) == 10

    more = service.continue_answer(stopped.id, options=OPTS).result(WAIT)
    assert isinstance(more, TurnFinished), more
    answer = more.message
    assert answer.id == stopped.id and answer.content.startswith(stopped.content)
    trace = service.read(lambda s: s.token_trace(answer.id)).result(WAIT)
    assert trace is not None
    # all the answer's tokens: the first part's first (the view starts at the start)
    assert trace.steps[:10] == first_trace.steps
    assert len(trace.steps) == 10 + more.stats.completion_tokens
    assert trace.text().strip() == answer.content  # the text is what its tokens spell
    # one statistic over both parts
    assert answer.completion_tokens == len(trace.steps)
    assert answer.prompt_tokens == stopped.prompt_tokens
    receipt = Receipt.from_dict(answer.meta["receipt"])
    assert receipt == Receipt.from_dict(stopped.meta["receipt"])  # the question's prompt
    assert answer.meta["prompt_seconds"] == stopped.meta["prompt_seconds"]
    assert answer.meta["generation_seconds"] >= stopped.meta["generation_seconds"]
    parts = answer.meta["continued"]
    assert [p["completion_tokens"] for p in parts] == [10, more.stats.completion_tokens]
    assert parts[1]["reused_tokens"] > 0  # the second part's prompt came from the cache
    assert f"{answer.completion_tokens} tokens" in stats_line(answer)
    assert f"prompt {stopped.prompt_tokens} " in stats_line(answer)
