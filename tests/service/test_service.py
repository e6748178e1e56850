"""The chat service with a scripted engine and a real SQLite file: turns end to end,
branches, receipts, time-based saving, fair queueing, failures."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from chatapp.core.conversation import FinishReason, Role
from chatapp.core.receipt import Receipt, tokens_sha256, verify
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.token_engine import SamplingParams
from chatapp.service import TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnPrompt, TurnStarted
from tests.service.conftest import Recorder

WAIT = 60  # a bound for a broken build, not a speed test


def test_a_turn_runs_end_to_end_and_leaves_a_receipt(fake_service, tmp_path: Path) -> None:
    service = fake_service(reply="Hello there.")
    rec = Recorder()
    result = service.send(None, "Hi!", listener=rec).result(WAIT)
    assert isinstance(result, TurnFinished)
    kinds = [type(e) for e in rec.events]
    assert kinds[0] is TurnStarted and kinds[1] is TurnPrompt and kinds[-1] is TurnFinished
    assert rec.text == "Hello there."
    started, prompt = rec.of(TurnStarted)[0], rec.of(TurnPrompt)[0]
    assert started.new_conversation and started.user.content == "Hi!"
    with Store(tmp_path / "chat.sqlite3") as store:
        thread = store.active_thread(result.conversation_id)
        assert [(m.role, m.content) for m in thread] == [
            (Role.USER, "Hi!"),
            (Role.ASSISTANT, "Hello there."),
        ]
        answer = thread[-1]
        assert answer.finish_reason is FinishReason.STOP
        receipt = Receipt.from_dict(answer.meta["receipt"])
        assert receipt is not None
        # the receipt names exactly the tokens the engine was given
        sent = service.engines[0].prompts[-1]
        assert prompt.prompt.tokens == sent
        assert receipt.prompt_tokens == len(sent) and receipt.prompt_sha256 == tokens_sha256(sent)
        assert receipt.backend == "scripted" and receipt.sampling["seed"] is not None
        assert store.prompt_tokens(answer.id) == sent
        assert verify(receipt, sent).matches
        assert not verify(receipt, [*sent, 1], store.prompt_tokens(answer.id)).matches
        # the JSON export carries the receipt
        from chatapp.core.export.schema import conversation_to_doc

        conv = store.get_conversation(result.conversation_id)
        doc = conversation_to_doc(conv, store.messages(conv.id))
        exported = next(m for m in doc["messages"] if m["id"] == answer.id)
        assert exported["receipt"]["prompt_sha256"] == tokens_sha256(sent)


def test_chunks_carry_token_ids_and_alternatives(fake_service) -> None:
    service = fake_service(reply="ab")
    rec = Recorder()
    service.send(None, "x", options=TurnOptions(logprobs=3), listener=rec).result(WAIT)
    chunks = [e.chunk for e in rec.of(TurnChunk) if e.chunk.token_id is not None]
    assert [c.token_id for c in chunks] == [ord("a") + 1, ord("b") + 1]
    assert all(len(c.top) == 3 and c.top[0].token_id == c.token_id for c in chunks)
    assert chunks[0].top[0].text == "a"


def test_regenerate_any_answer_and_edit_make_siblings(fake_service, tmp_path: Path) -> None:
    service = fake_service(reply="A1")
    first = service.send(None, "Q1", listener=None).result(WAIT)
    cid = first.conversation_id
    service.engines[0].reply = "A2"
    service.send(cid, "Q2").result(WAIT)
    # regenerate the first (middle) answer: a sibling of it, the old one kept
    service.engines[0].reply = "A1 again"
    regen = service.regenerate(cid, first.message.id).result(WAIT)
    assert isinstance(regen, TurnFinished)
    with Store(tmp_path / "chat.sqlite3") as store:
        assert regen.message.parent_id == first.message.parent_id
        assert [m.content for m in store.active_thread(cid)] == ["Q1", "A1 again"]
        q1 = store.active_thread(cid)[0]
    # edit the first question: a new version of it, answered; the original stays
    service.engines[0].reply = "edited answer"
    edited = service.edit(q1.id, "Q1 edited").result(WAIT)
    with Store(tmp_path / "chat.sqlite3") as store:
        assert [m.content for m in store.active_thread(cid)] == ["Q1 edited", "edited answer"]
        contents = sorted(m.content for m in store.messages(cid))
        assert contents == sorted(
            ["Q1", "A1", "Q2", "A2", "A1 again", "Q1 edited", "edited answer"]
        )
        assert edited.message.parent_id != q1.id
    # the model saw only the edited branch
    assert (
        service.engines[0].tokenize("Q2")[0:1]
        and bytes(t - 1 for t in service.engines[0].prompts[-1]).decode().count("Q2") == 0
    )


def test_a_saved_user_template_applies_to_the_very_next_send(fake_service) -> None:
    settings = Settings()
    service = fake_service(settings)
    rec = Recorder()
    service.send(None, "one", listener=rec).result(WAIT)
    cid = rec.of(TurnStarted)[0].conversation_id
    settings.user_templates["fake.gguf"] = "{% for m in messages %}[{{ m.content }}]{% endfor %}"
    shown = service.prepare_conversation(cid, draft="two").result(WAIT)
    service.send(cid, "two").result(WAIT)
    sent = service.engines[0].prompts[-1]
    assert (
        bytes(t - 1 for t in sent).decode()
        == shown.text
        == "[one][Hello from the fake model.][two]"
    )
    assert shown.tokens == sent


def test_streaming_text_is_saved_by_time_even_when_no_more_text_comes(
    fake_service, tmp_path: Path
) -> None:
    gate = threading.Event()
    service = fake_service(reply="")
    engine = service.engines[0]

    def pausing(prompt, params, cancel, **kw):
        from chatapp.core.token_engine import Sampled

        for b in b"a piece of text":
            yield Sampled(b + 1)
        gate.wait(WAIT)  # the model pauses: no new text arrives

    engine.generate = pausing
    rec = Recorder()
    handle = service.send(None, "q", listener=rec)
    deadline = time.monotonic() + WAIT
    saved = ""
    while time.monotonic() < deadline and saved != "a piece of text":
        time.sleep(0.05)
        if handle.message_id and rec.of(TurnStarted):
            with Store(tmp_path / "chat.sqlite3") as store:
                msg = store.get_message(rec.of(TurnStarted)[0].reply.id)
                saved = msg.content if msg else ""
    assert saved == "a piece of text"  # saved while the model was still paused
    assert not handle.done
    gate.set()
    assert isinstance(handle.result(WAIT), TurnFinished)


def test_turns_from_two_threads_queue_in_order_and_never_mix(fake_service, tmp_path) -> None:
    service = fake_service(reply="x" * 200, delay=0.001)
    recs = [Recorder(), Recorder()]
    handles = []

    def send(i: int) -> None:
        handles.append(service.send(None, f"question {i}", listener=recs[i]))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = [h.result(WAIT) for h in handles]
    assert all(isinstance(r, TurnFinished) for r in results)
    for rec in recs:
        ids = {e.message_id for e in rec.of(TurnChunk)}
        assert len(ids) == 1 and rec.text == "x" * 200


def test_cancel_keeps_what_came(fake_service) -> None:
    service = fake_service(reply="word " * 2000, delay=0.001)
    rec = Recorder()

    def listener(event) -> None:
        rec(event)
        if isinstance(event, TurnChunk) and len(rec.text) >= 50:
            handle.cancel()

    handle = service.send(None, "long", listener=listener)
    result = handle.result(WAIT)
    assert isinstance(result, TurnFinished)
    assert result.message.finish_reason is FinishReason.CANCELLED
    assert 45 <= len(result.message.content) < len("word " * 2000)  # stripped at the end


def test_no_model_gives_the_text_back(tmp_path: Path) -> None:
    from chatapp.service import ChatService

    service = ChatService(tmp_path / "c.sqlite3", Settings())
    try:
        result = service.send(None, "hello?").result(WAIT)
    finally:
        service.shutdown()
    assert isinstance(result, TurnFailed)
    assert "No model is loaded" in result.error and result.restore_input == "hello?"


def test_a_full_disk_fails_the_turn_and_keeps_what_was_saved(fake_service, tmp_path) -> None:
    import sqlite3

    class FillingStore(Store):
        full = False

        def update_message(self, message_id, **fields):
            if FillingStore.full:
                raise sqlite3.OperationalError("database or disk is full")
            return super().update_message(message_id, **fields)

    from chatapp.core.backend import ModelRef
    from chatapp.engine.local import LocalBackend
    from chatapp.service import ChatService, LoadRequest
    from tests.fakes import ScriptedEngine

    service = ChatService(
        tmp_path / "full.sqlite3",
        Settings(),
        lambda req: LocalBackend(ScriptedEngine(reply="y" * 5000, delay=0.002)),
        store_factory=FillingStore,
    )
    try:
        service.load(LoadRequest(ModelRef.local(tmp_path / "f.gguf"))).result(WAIT)
        rec = Recorder()

        def listener(event) -> None:
            rec(event)
            if isinstance(event, TurnChunk) and len(rec.text) > 1000:
                FillingStore.full = True

        result = service.send(None, "q", listener=listener).result(WAIT)
    finally:
        service.shutdown()
        FillingStore.full = False
    assert isinstance(result, TurnFailed)
    assert "disk is full" in result.error
    with Store(tmp_path / "full.sqlite3") as store:
        thread = store.active_thread(result.conversation_id)
        assert thread[0].content == "q"
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_sampling_from_options_is_recorded_with_the_seed_used(fake_service) -> None:
    service = fake_service()
    opts = TurnOptions(sampling=SamplingParams(temperature=0.2, seed=None, max_tokens=5))
    result = service.send(None, "q", options=opts).result(WAIT)
    receipt = Receipt.from_dict(result.message.meta["receipt"])
    assert receipt.sampling["temperature"] == 0.2 and receipt.sampling["max_tokens"] == 5
    assert isinstance(receipt.sampling["seed"], int)
    assert result.message.finish_reason is FinishReason.LENGTH


def _fill(service, n_turns: int, text: str) -> str:
    cid = None
    for i in range(n_turns):
        cid = service.send(cid, f"{i}:{text}").result(WAIT).conversation_id
    return cid


def test_context_policy_stop_explains_and_drop_oldest_leaves_out_old_turns(
    fake_service, tmp_path
) -> None:
    from chatapp.core.chat_settings import DROP_OLDEST, ChatSettings

    service = fake_service(reply="r" * 40, n_ctx=400)
    cid = _fill(service, 3, "q" * 60)  # ~110 tokens a turn with the template
    failed = service.send(cid, "q" * 60).result(WAIT)
    assert isinstance(failed, TurnFailed)
    assert "context holds 400" in failed.error and "leave out the oldest" in failed.error
    service.set_chat_settings(cid, ChatSettings(context_policy=DROP_OLDEST)).result(WAIT)
    rec = Recorder()
    ok = service.send(cid, "latest question", listener=rec).result(WAIT)
    assert isinstance(ok, TurnFinished)
    dropped = rec.of(TurnPrompt)[0].dropped
    assert dropped and ok.message.meta["context_dropped"] == list(dropped)
    sent = bytes(t - 1 for t in service.engines[0].prompts[-1]).decode()
    assert "0:qqq" not in sent and "latest question" in sent
    with Store(tmp_path / "chat.sqlite3") as store:
        first = store.active_thread(cid)[0]
        assert first.id in dropped  # the view can mark what the model no longer sees
    huge = service.send(cid, "x" * 1000).result(WAIT)
    assert isinstance(huge, TurnFailed) and "Your message alone is" in huge.error


def test_conversation_overrides_and_model_defaults_shape_the_sampling(fake_service) -> None:
    from chatapp.core.chat_settings import ChatSettings

    settings = Settings(temperature=0.7, top_k=40)
    settings.extra["model_defaults"] = {"fake.gguf": {"top_k": 10, "temperature": 0.5}}
    service = fake_service(settings)
    first = service.send(None, "a").result(WAIT)
    assert first.message.meta["sampling"]["top_k"] == 10
    assert first.message.meta["sampling"]["temperature"] == 0.5
    chat = ChatSettings().with_override("temperature", 0.1)
    service.set_chat_settings(first.conversation_id, chat, system_prompt="Be terse.").result(WAIT)
    second = service.send(first.conversation_id, "b").result(WAIT)
    assert second.message.meta["sampling"]["temperature"] == 0.1
    assert second.message.meta["sampling"]["top_k"] == 10
    sent = bytes(t - 1 for t in service.engines[0].prompts[-1]).decode()
    assert sent.startswith("<|system|>Be terse.")
