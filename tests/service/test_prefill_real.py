"""Issue 20 item 2: prefill while typing changes what is sent by nothing.

A chat is opened in a fresh service (nothing in any cache) and the question is prefilled
as typed; the send that follows gives the same prompt token ids, the same receipt (but for
how many tokens were reused) and the same answer at temperature 0 as a send without
prefill, whether the prefill finished or the send cut it off in the middle of a batch.
Real SmolLM2, a real SQLite file."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import GRID, SETTLE_CHUNK
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnFinished

pytestmark = pytest.mark.model
WAIT = 300
OPTS = TurnOptions(sampling=SamplingParams(temperature=0.0, max_tokens=30, seed=3))
LONG = "Here is a list of animals: " + ", ".join(f"animal {i}" for i in range(60)) + "."
QUESTION = "Which of these animals would you keep as a pet, and why would you choose it?"
HOW = ("reused_tokens", "evaluated_tokens", "disk_tokens")  # how, not what, was evaluated


def _service(db: Path, model: Path) -> ChatService:
    service = ChatService(db, Settings(kv_state_disk_mb=0))
    service.load(LoadRequest(ModelRef.local(model), n_threads=2)).result(WAIT)
    return service


def _send(service: ChatService, conv: str) -> dict[str, Any]:
    done = service.send(conv, QUESTION, options=OPTS).result(WAIT)
    assert isinstance(done, TurnFinished), done
    mid = done.message.id
    trace = service.read(lambda s: s.token_trace(mid)).result()
    assert trace is not None
    return {
        "tokens": trace.token_ids,
        "prompt": service.read(lambda s: s.prompt_tokens(mid)).result(),
        "receipt": done.message.meta["receipt"],
    }


@pytest.fixture(scope="module")
def chat(
    smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str, dict[str, Any]]:
    """A two-turn chat saved in a database, and the next send's result without prefill."""
    root = tmp_path_factory.mktemp("prefill")
    service = _service(root / "chat.sqlite3", smollm2_path)
    try:
        first = service.send(None, LONG, options=OPTS).result(WAIT)
        assert isinstance(first, TurnFinished)
        conv = first.conversation_id
        assert isinstance(
            service.send(conv, "Name two of them.", options=OPTS).result(WAIT), TurnFinished
        )
    finally:
        service.shutdown()
    plain = _copy(root, "plain")
    service = _service(plain, smollm2_path)
    try:
        result = _send(service, conv)
    finally:
        service.shutdown()
    assert result["receipt"]["reused_tokens"] == 0  # a fresh process: nothing cached
    return root, conv, result


def _copy(root: Path, name: str) -> Path:
    shutil.copyfile(root / "chat.sqlite3", root / f"{name}.sqlite3")
    return root / f"{name}.sqlite3"


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["prompt"] == b["prompt"]
    assert a["tokens"] == b["tokens"]
    what = {k: v for k, v in a["receipt"].items() if k not in HOW}
    assert what == {k: v for k, v in b["receipt"].items() if k not in HOW}


def test_prefill_then_send_equals_a_plain_send(chat: Any, smollm2_path: Path) -> None:
    root, conv, plain = chat
    service = _service(_copy(root, "full"), smollm2_path)
    try:
        opened = service.prefill(conv).result(WAIT)  # the chat is opened
        assert opened > 0
        typed = service.prefill(conv, QUESTION[:30]).result(WAIT)  # typing
        whole = service.prefill(conv, QUESTION).result(WAIT)  # typed
        assert typed + whole > 0
        result = _send(service, conv)
    finally:
        service.shutdown()
    _same(result, plain)
    # the send evaluated only its last cell
    assert result["receipt"]["evaluated_tokens"] <= GRID
    assert (
        result["receipt"]["reused_tokens"]
        == len(plain["prompt"]) - result["receipt"]["evaluated_tokens"]
    )


def test_a_send_cuts_the_prefill_short_mid_batch(chat: Any, smollm2_path: Path) -> None:
    root, conv, plain = chat
    service = _service(_copy(root, "cut"), smollm2_path)
    try:
        llm = service._host.backend.engine._llm  # type: ignore[union-attr]
        evaluate = llm.eval
        calls, started, go = [0], threading.Event(), threading.Event()

        def held(tokens: Any) -> None:
            calls[0] += 1
            if calls[0] == 2:  # the prefill's second batch: the user presses Enter
                started.set()
                go.wait(WAIT)
            evaluate(tokens)

        llm.eval = held
        prefilled = service.prefill(conv, QUESTION)
        assert started.wait(WAIT)
        handle = service.send(conv, QUESTION, options=OPTS)
        deadline = time.monotonic() + WAIT
        while service._infer.pending() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the send's job is queued behind the running batch
        go.set()
        done = prefilled.result(WAIT)
        assert done == 2 * SETTLE_CHUNK  # two batches, then it gave way
        assert done < len(plain["prompt"]) - GRID
        finished = handle.result(WAIT)
        assert isinstance(finished, TurnFinished)
        mid = finished.message.id
        trace = service.read(lambda s: s.token_trace(mid)).result()
        assert trace is not None
        result = {
            "tokens": trace.token_ids,
            "prompt": service.read(lambda s: s.prompt_tokens(mid)).result(),
            "receipt": finished.message.meta["receipt"],
        }
    finally:
        service.shutdown()
    _same(result, plain)
    assert result["receipt"]["reused_tokens"] == done  # what the prefill did was used
