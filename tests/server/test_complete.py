"""ChatService.complete: a turn on given messages that writes nothing (scripted engine)."""

from __future__ import annotations

from chatapp.core.conversation import FinishReason
from chatapp.core.token_engine import SamplingParams
from chatapp.service import TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnPrompt
from tests.service.conftest import Recorder


def test_complete_answers_and_saves_nothing(fake_service) -> None:
    service = fake_service(reply="Hi there.")
    rec = Recorder()
    handle = service.complete(
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hello"}],
        options=TurnOptions(sampling=SamplingParams(seed=5)),
        listener=rec,
        cache_key="api:abc",
    )
    result = handle.result(10)
    assert isinstance(result, TurnFinished)
    assert result.message.content == "Hi there." == rec.text
    assert result.message.id == "" and result.conversation_id == ""
    assert result.stats.seed == 5
    prompt = rec.of(TurnPrompt)[0].prompt
    assert "<|system|>Be kind.<|end|><|user|>Hello<|end|><|assistant|>" in prompt.text
    assert service.engines[0].cache_keys == ["api:abc"]
    assert service.read(lambda s: s.list_conversations()).result() == []


def test_complete_raw_text_skips_the_template(fake_service) -> None:
    service = fake_service(reply="ok")
    rec = Recorder()
    result = service.complete([], listener=rec, prompt_text="Once upon").result(10)
    assert isinstance(result, TurnFinished)
    assert rec.of(TurnPrompt)[0].prompt.text == "Once upon"
    assert service.engines[0].prompts[-1] == service.engines[0].tokenize("Once upon")


def test_complete_can_be_cancelled(fake_service) -> None:
    service = fake_service(reply="a long reply " * 20, delay=0.01)
    seen: list[object] = []

    def listener(event: object) -> None:
        seen.append(event)
        if isinstance(event, TurnChunk) and len(seen) == 4:
            handle.cancel()

    handle = service.complete([{"role": "user", "content": "go"}], listener=listener)
    result = handle.result(10)
    assert isinstance(result, TurnFinished)
    assert result.stats.finish_reason is FinishReason.CANCELLED
    assert len([e for e in seen if isinstance(e, TurnChunk)]) <= 4


def test_complete_without_a_model_fails_plainly(fake_service) -> None:
    service = fake_service()
    service.unload().result(10)
    result = service.complete([{"role": "user", "content": "hi"}]).result(10)
    assert isinstance(result, TurnFailed)
    assert "No model is loaded" in result.error
