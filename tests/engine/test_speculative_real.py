"""Issue 20 item 3: speculative decoding (prompt lookup, a draft model) gives the answer
plain decoding gives, token for token, with the same captured alternatives, on real
SmolLM2; the answer's statistics count drafts; grammar turns are unaffected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core.backend import ReplyStats
from chatapp.core.chat import prepare_prompt, template_for
from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.errors import ModelLoadError
from chatapp.core.generation import ReplyStream
from chatapp.core.message_info import speculation_text, stats_line
from chatapp.core.receipt import Receipt
from chatapp.core.token_engine import Sampled, SamplingParams
from chatapp.engine import speculative
from chatapp.engine.llama import LlamaEngine
from chatapp.engine.speculative import PromptLookup

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0, max_tokens=60, seed=3)
CODE = '''def load_settings(path):
    """Read the settings file and return a dictionary."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if "version" not in data:
        raise ValueError("settings without a version")
    return data


def save_settings(path, data):
    """Write the settings atomically."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)
'''
# a completion the model answers by copying (lookup drafts many tokens)
REPEAT = f"# settings.py\n{CODE}\n\n# settings.py again, with indent=4 instead of indent=2:\n"
QUESTIONS = ["Name three colours.", "Write a haiku about the sea."]


def _engine(path: Path, mode: str, draft: Path | None = None) -> LlamaEngine:
    return LlamaEngine(path, context_limit=1024, n_threads=2, speculative=mode, draft_model=draft)


@pytest.fixture(scope="module")
def engines(smollm2_path: Path) -> Iterator[dict[str, LlamaEngine]]:
    made = {
        "off": _engine(smollm2_path, "off"),
        "lookup": _engine(smollm2_path, "lookup"),
        "draft": _engine(smollm2_path, "draft", smollm2_path),  # SmolLM2 drafting for itself
    }
    yield made
    for e in made.values():
        e.close()


def _prompts(engine: LlamaEngine) -> list[list[int]]:
    tpl = template_for(engine)
    chats = [prepare_prompt(engine, tpl, "", [{"role": "user", "content": q}]) for q in QUESTIONS]
    return [[1, *engine.tokenize(REPEAT, special=False)], *[c.tokens for c in chats]]


def _run(
    engine: LlamaEngine,
    prompt: list[int],
    params: SamplingParams,
    *,
    plain: bool = False,
    **kw: str,
) -> list[Sampled]:
    """plain: the same load (flash attention) with speculation off for this call."""
    engine.speculation_enabled = not plain
    try:
        return list(engine.generate(prompt, params, threading.Event(), logprobs=5, **kw))
    finally:
        engine.speculation_enabled = True


def test_speculation_is_on_and_exact_batches_were_measured(engines: dict[str, LlamaEngine]) -> None:
    assert engines["off"].exact_batch == 0  # not measured: nothing to verify
    # SmolLM2's Q4_1 weights are not repacked: a batch of 9 is exact with flash attention
    assert engines["lookup"].exact_batch == 9
    assert engines["lookup"].speculation_note == ""


@pytest.mark.parametrize("mode", ["lookup", "draft"])
def test_greedy_answers_equal_plain_decoding(engines: dict[str, LlamaEngine], mode: str) -> None:
    spec = engines[mode]
    drafted = accepted = 0
    for i, prompt in enumerate(_prompts(spec)):
        want = _run(spec, prompt, GREEDY, plain=True)
        got = _run(spec, prompt, GREEDY)
        # the tokens and what was captured with them (log-probabilities, top-5 raw and
        # sampled alternatives) are those of plain decoding
        assert [s.token_id for s in got] == [s.token_id for s in want], f"prompt {i}"
        assert got == want, f"prompt {i}"
        stats = spec.last_speculation
        assert stats.mode == mode
        if i == 0:  # the copy: lookup drafts most of it
            assert stats.drafted >= 20 and stats.accepted >= 10, stats
        drafted, accepted = drafted + stats.drafted, accepted + stats.accepted
    assert 0 < accepted <= drafted


def test_drafts_are_verified_past_kv_position_512_and_stay_exact(
    engines: dict[str, LlamaEngine],
) -> None:
    """With an F16 cache, llama.cpp's CPU flash attention computes one token over 512 KV
    cells or more in thread-split parts (from position 256 on) and a batch row in one
    pass, so drafts could only be verified below 256. The speculative load's BF16 cache
    takes one kernel for both: a prompt of 600+ tokens still gets drafts, and the answer
    is plain decoding's."""
    eng = engines["lookup"]
    assert eng._llm.context_params.type_k == eng._llm.context_params.type_v == 30  # BF16
    assert "BF16 KV cache" in eng.version
    notes = "".join(f"# note {i}: keep the settings file small and readable.\n" for i in range(40))
    prompt = [1, *eng.tokenize(notes + REPEAT, special=False)]
    assert len(prompt) > 600
    want = _run(eng, prompt, GREEDY, plain=True)
    got = _run(eng, prompt, GREEDY)
    assert got == want
    stats = eng.last_speculation
    assert stats.drafted >= 20 and stats.accepted >= 10, stats


def test_lookup_stops_drafting_where_its_guesses_miss(
    engines: dict[str, LlamaEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chat answer repeats little: most of lookup's guesses are wrong, and each wrong
    draft costs a batch row. Lookup then drafts only while its guesses (checked for free
    against the tokens drawn) are right often enough: fewer drafts, fewer of them wasted
    (measured: 12 wasted of 15, against 23 of 33), and the same answer."""
    eng = engines["lookup"]
    story = [{"role": "user", "content": "Write a short story about a lighthouse keeper."}]
    prompt = prepare_prompt(eng, template_for(eng), "", story).tokens
    params = SamplingParams(temperature=0.0, max_tokens=200, seed=3)
    gated = _run(eng, prompt, params)
    kept = eng.last_speculation
    monkeypatch.setattr(speculative, "MIN_HIT_RATE", 0.0)
    ungated = _run(eng, prompt, params)
    every = eng.last_speculation
    assert gated == ungated == _run(eng, prompt, params, plain=True)
    assert every.drafted - every.accepted >= 10, every  # the guesses miss here
    wasted, wasted_before = kept.drafted - kept.accepted, every.drafted - every.accepted
    assert wasted < wasted_before and kept.drafted < every.drafted, (kept, every)


def test_sampled_answer_equals_plain_decoding_at_the_same_seed(
    engines: dict[str, LlamaEngine],
) -> None:
    """The acceptance rule draws each token from the model's distribution with the
    sampler plain decoding uses: at a fixed seed the answers are the same."""
    params = SamplingParams(temperature=0.8, max_tokens=60, seed=11)
    prompt = _prompts(engines["off"])[0]
    want = _run(engines["lookup"], prompt, params, plain=True)
    got = _run(engines["lookup"], prompt, params)
    assert got == want
    assert engines["lookup"].last_speculation.accepted > 0


def test_grammar_turns_are_unaffected(engines: dict[str, LlamaEngine]) -> None:
    grammar = 'root ::= "{\\"colour\\": \\"" [a-z]+ "\\", \\"count\\": " [0-9]+ "}"'
    prompt = _prompts(engines["off"])[1]
    want = _run(engines["lookup"], prompt, GREEDY, plain=True, grammar=grammar)
    got = _run(engines["lookup"], prompt, GREEDY, grammar=grammar)
    assert got == want
    text = b"".join(engines["off"].token_bytes(s.token_id) for s in got).decode()
    assert text.startswith('{"colour": "') and text.endswith("}")


def test_the_answer_statistics_show_the_acceptance_rate(engines: dict[str, LlamaEngine]) -> None:
    eng = engines["lookup"]
    stream = ReplyStream(eng, _prompts(eng)[0], GREEDY, threading.Event(), logprobs=5)
    list(stream)
    st: ReplyStats = stream.stats
    assert st.speculative == "lookup"
    assert st.drafted_tokens >= st.accepted_tokens > 0
    spec = st.speculation
    assert spec == {"mode": "lookup", "drafted": st.drafted_tokens, "accepted": st.accepted_tokens}
    receipt = Receipt(1, "x", "t", "builtin", "y", {}, "llama", "m", speculative=spec)
    back = Receipt.from_dict(receipt.as_dict())
    assert back is not None and back.speculative == spec
    msg = Message(
        id="a",
        conversation_id="c",
        parent_id=None,
        role=Role.ASSISTANT,
        content="x",
        created_at=0.0,
        finish_reason=FinishReason.LENGTH,
        meta={"receipt": receipt.as_dict()},
    )
    rate = 100 * st.accepted_tokens / st.drafted_tokens
    want = f"lookup drafts {st.accepted_tokens} of {st.drafted_tokens} accepted ({rate:.0f}%)"
    assert want in stats_line(msg)
    off = ReplyStream(engines["off"], [1, 2, 3], GREEDY, threading.Event())
    list(off)
    assert off.stats.speculation == {} and speculation_text({}) == ""


def test_a_draft_model_with_another_vocabulary_is_refused(
    smollm2_path: Path, gemma_path: Path
) -> None:
    with pytest.raises(ModelLoadError, match="share the model's vocabulary"):
        _engine(smollm2_path, "draft", gemma_path)


def test_prompt_lookup_drafts_what_followed_the_last_ngram() -> None:
    lookup = PromptLookup()
    ctx = [5, 6, 7, 8, 9, 1, 2, 5, 6]
    assert lookup.propose(ctx, 3) == [7, 8, 9]
    assert lookup.propose([*ctx, 7, 8], 2) == [9, 1]  # the longer match still leads
    assert lookup.propose([*ctx, 7, 8, 4], 2) == []  # "8 4" never occurred
    lookup.reset()
    assert lookup.propose([1, 2], 4) == []
