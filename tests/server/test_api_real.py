"""The official openai client against our server with the real SmolLM2: chat and text
completions, streamed and not, log-probabilities, stop sequences, seeds."""

from __future__ import annotations

import math

import pytest

from chatapp.service import ChatService
from tests.server.conftest import MODEL_ID, client

pytestmark = pytest.mark.model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0.0, "seed": 1}


def test_models_lists_the_loaded_model(api: str) -> None:
    models = client(api).models.list()
    assert [m.id for m in models.data] == [MODEL_ID]
    assert client(api).models.retrieve(MODEL_ID).id == MODEL_ID


def test_chat_completion_answers_with_usage(api: str) -> None:
    r = client(api).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, max_tokens=40, **GREEDY
    )
    choice = r.choices[0]
    assert r.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content.strip()  # (what a 135M model says is not ours to test)
    assert r.usage.prompt_tokens > 10
    assert 0 < r.usage.completion_tokens <= 40
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")


def test_max_tokens_ends_with_length(api: str) -> None:
    r = client(api).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=5,
        **GREEDY,
    )
    assert r.usage.completion_tokens == 5
    assert r.choices[0].finish_reason == "length"


def test_streamed_chat_equals_the_whole_answer(api: str) -> None:
    c = client(api)
    whole = c.chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=30, **GREEDY)
    stream = c.chat.completions.create(
        model=MODEL_ID,
        messages=QUESTION,
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    pieces, finish, usage = [], None, None
    for event in stream:
        assert event.object == "chat.completion.chunk"
        if event.usage is not None:
            usage = event.usage
        for ch in event.choices:
            if ch.delta.content:
                pieces.append(ch.delta.content)
            finish = ch.finish_reason or finish
    assert len(pieces) > 3  # streamed in pieces, not at once
    assert "".join(pieces).strip() == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_seed_makes_sampling_repeatable(api: str) -> None:
    c = client(api)
    story = [{"role": "user", "content": "Tell me a short story."}]
    runs = [
        c.chat.completions.create(
            model=MODEL_ID, messages=story, max_tokens=25, temperature=1.0, top_p=0.95, seed=seed
        )
        .choices[0]
        .message.content
        for seed in (7, 7, 8)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_chat_logprobs_are_the_models(api: str) -> None:
    r = client(api).chat.completions.create(
        model=MODEL_ID, messages=QUESTION, max_tokens=12, logprobs=True, top_logprobs=3, **GREEDY
    )
    entries = r.choices[0].logprobs.content
    assert len(entries) == r.usage.completion_tokens
    for e in entries:
        assert len(e.top_logprobs) == 3
        assert e.logprob <= 0.0
        assert sum(math.exp(t.logprob) for t in e.top_logprobs) <= 1.0 + 1e-4
        assert e.token == e.top_logprobs[0].token  # greedy picks the most likely token
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    joined = "".join(e.token for e in entries)
    assert joined.strip() == r.choices[0].message.content


def test_text_completion_takes_the_prompt_as_is(api: str) -> None:
    c = client(api)
    r = c.completions.create(
        model=MODEL_ID, prompt="The capital of France is", max_tokens=8, logprobs=2, **GREEDY
    )
    choice = r.choices[0]
    assert r.object == "text_completion"
    assert choice.text.strip()
    # no chat template: the prompt is the text plus at most a BOS token
    assert r.usage.prompt_tokens <= 7
    assert len(choice.logprobs.tokens) == r.usage.completion_tokens == 8
    assert all(len(t) == 2 for t in choice.logprobs.top_logprobs)
    assert choice.logprobs.text_offset == sorted(choice.logprobs.text_offset)
    streamed = "".join(
        ev.choices[0].text
        for ev in c.completions.create(
            model=MODEL_ID, prompt="The capital of France is", max_tokens=8, stream=True, **GREEDY
        )
        if ev.choices
    )
    assert streamed == choice.text


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_ends_the_answer_before_it(api: str, stream: bool) -> None:
    c = client(api)
    full = c.chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=20, **GREEDY)
    text = full.choices[0].message.content
    words = text.split()
    stop = words[len(words) // 2]
    expected = text[: text.index(stop)].strip()
    kwargs = dict(model=MODEL_ID, messages=QUESTION, max_tokens=20, stop=[stop], **GREEDY)
    if stream:
        got, finish = "", None
        for ev in c.chat.completions.create(stream=True, **kwargs):
            for ch in ev.choices:
                got += ch.delta.content or ""
                finish = ch.finish_reason or finish
        got = got.strip()
    else:
        r = c.chat.completions.create(**kwargs)
        got, finish = r.choices[0].message.content, r.choices[0].finish_reason
    assert stop not in got
    assert got == expected
    assert finish == "stop"


def test_requests_are_not_recorded_by_default(api: str, smol: ChatService) -> None:
    before = smol.read(lambda s: len(s.list_conversations())).result()
    client(api).chat.completions.create(model=MODEL_ID, messages=QUESTION, max_tokens=4)
    assert smol.read(lambda s: len(s.list_conversations())).result() == before


def test_record_keeps_the_request_as_a_conversation(serve, smol: ChatService) -> None:
    url = serve(record=True)
    before = {c.id for c in smol.read(lambda s: s.list_conversations()).result()}
    r = client(url).chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "system", "content": "Be brief."}, *QUESTION],
        max_tokens=12,
        **GREEDY,
    )
    convs = [c for c in smol.read(lambda s: s.list_conversations()).result() if c.id not in before]
    assert len(convs) == 1
    conv = convs[0]
    thread = smol.read(lambda s: s.active_thread(conv.id)).result()
    assert conv.system_prompt == "Be brief."
    assert [m.role.value for m in thread] == ["user", "assistant"]
    assert thread[0].content == QUESTION[0]["content"]
    assert thread[1].content == r.choices[0].message.content
    assert thread[1].completion_tokens == r.usage.completion_tokens


def test_text_completion_is_exactly_its_tokens(api: str) -> None:
    """/v1/completions: the text is the concatenation of its tokens, a leading space
    included (issue 23.5)."""
    r = client(api).completions.create(
        model=MODEL_ID,
        prompt="The three largest cities in France are",
        max_tokens=8,
        logprobs=1,
        **GREEDY,
    )
    choice = r.choices[0]
    spelled = "".join(choice.logprobs.tokens)
    assert spelled[:1].isspace()
    assert choice.text == spelled
