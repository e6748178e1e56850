"""The llama-cpp-python adapter with real models (SmolLM2 135M, Gemma 3 270M)."""

from __future__ import annotations

import shutil
import threading

import pytest

from chatapp.core.chat import prepare_prompt, template_for
from chatapp.core.conversation import FinishReason
from chatapp.core.errors import BadModelFile, ContextFullError
from chatapp.core.generation import ReplyStream
from chatapp.core.token_engine import Cancelled, SamplingParams
from chatapp.engine.llama import LlamaEngine

pytestmark = pytest.mark.model

MARKERS = ("<|im_end|>", "<|im_start|>", "<end_of_turn>", "<start_of_turn>", "<eos>", "<bos>")


@pytest.fixture(scope="module")
def smol(smollm2_path):
    e = LlamaEngine(smollm2_path, n_threads=2)
    yield e
    e.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_context_is_min_of_trained_and_4096(smol):
    assert smol.info.n_ctx_train == 8192
    assert smol.info.n_ctx == 4096
    assert smol.info.n_threads == 2
    assert {"<|im_start|>", "<|im_end|>"} <= smol.info.special_tokens


def test_chat_answer_streams_and_stops_at_end_of_turn(smol):
    tpl = template_for(smol)
    assert tpl.source == "gguf" and "<|im_end|>" in tpl.stop_markers
    p = prepare_prompt(smol, tpl, "", [{"role": "user", "content": "What is 2+2? Answer briefly."}])
    im_start, im_end = smol.tokenize("<|im_start|>"), smol.tokenize("<|im_end|>")
    assert len(im_start) == 1 and len(im_end) == 1  # parsed as special tokens, not text
    assert p.tokens.count(im_start[0]) == 3 and p.tokens.count(im_end[0]) == 2
    rs = ReplyStream(
        smol, p.tokens, SamplingParams(seed=42, max_tokens=200), threading.Event(), tpl.stop_markers
    )
    pieces = [c.text for c in rs if c.text]
    text = "".join(pieces)
    assert text.strip()
    assert len(pieces) > 1  # streamed, not delivered at once
    assert rs.stats.finish_reason is FinishReason.STOP  # the model ended its turn
    assert not any(m in text for m in MARKERS)
    assert rs.stats.completion_tokens > 0 and rs.stats.tokens_per_second > 0


def test_cancel_during_generation_stops_within_one_token(smol):
    tpl = template_for(smol)
    p = prepare_prompt(smol, tpl, "", [{"role": "user", "content": "Write a very long story."}])
    cancel = threading.Event()
    seen = 0
    gen = smol.generate(p.tokens, SamplingParams(seed=1, max_tokens=500), cancel)
    with pytest.raises(Cancelled):
        for _ in gen:
            seen += 1
            if seen == 5:
                cancel.set()
    assert seen == 5  # not a single token after the cancel


def test_cancel_during_prompt_evaluation_uses_the_abort_callback(smol):
    long_text = "The quick brown fox jumps over the lazy dog. " * 250  # ~2,500 tokens
    p = prepare_prompt(smol, template_for(smol), "", [{"role": "user", "content": long_text}])
    assert len(p.tokens) > 1500
    cancel = threading.Event()
    cancel.set()  # already set: llama.cpp must abort inside the first decode
    with pytest.raises(Cancelled):
        next(iter(smol.generate(p.tokens, SamplingParams(max_tokens=5), cancel)))
    assert smol.context_used < len(p.tokens)  # the prompt was not fully evaluated
    # and the engine is fine afterwards
    ok = list(
        smol.generate(
            smol.tokenize("Hello"), SamplingParams(seed=1, max_tokens=3), threading.Event()
        )
    )
    assert 1 <= len(ok) <= 3


def test_prompt_longer_than_context_is_a_clear_error(smol):
    with pytest.raises(ContextFullError, match="context"):
        next(iter(smol.generate([1] * 5000, SamplingParams(), threading.Event())))


def test_gemma_base_gets_gemma_turns_and_no_marker_leaks(gemma_path):
    e = LlamaEngine(gemma_path, n_threads=2)
    try:
        assert e.info.n_ctx == 4096 and e.info.n_ctx_train == 32768
        assert {"<start_of_turn>", "<end_of_turn>"} <= e.info.special_tokens
        tpl = template_for(e)
        assert tpl.name.lower().startswith("gemma") and "<end_of_turn>" in tpl.stop_markers
        p = prepare_prompt(e, tpl, "", [{"role": "user", "content": "Name a colour."}])
        assert p.text.startswith("<bos><start_of_turn>user\n")
        assert p.text.endswith("<start_of_turn>model\n")
        assert p.tokens[0] == 2 and p.tokens.count(2) == 1  # exactly one BOS
        sot = e.tokenize("<start_of_turn>")
        assert len(sot) == 1 and p.tokens.count(sot[0]) == 2
        rs = ReplyStream(
            e, p.tokens, SamplingParams(seed=3, max_tokens=60), threading.Event(), tpl.stop_markers
        )
        text = "".join(c.text for c in rs)
        assert not any(m in text for m in MARKERS)
    finally:
        e.close()


def test_close_returns_memory_and_refuses_further_use(smollm2_path):
    before = _rss_bytes()
    e = LlamaEngine(smollm2_path, n_threads=2)
    list(e.generate(e.tokenize("Hi"), SamplingParams(max_tokens=4), threading.Event()))
    loaded = _rss_bytes()
    e.close()
    after = _rss_bytes()
    assert loaded - before > 50e6  # weights and KV cache were resident
    assert loaded - after > 0.8 * (loaded - before)  # and are returned
    with pytest.raises(RuntimeError, match="after close"):
        e.tokenize("Hi")
    e.close()  # closing twice is harmless


def test_truncated_file_is_refused_before_llama_cpp(smollm2_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(30_000_000))
    with pytest.raises(BadModelFile, match="truncated"):
        LlamaEngine(cut)


def test_unknown_architecture_is_a_clear_error(smollm2_path, tmp_path):
    odd = tmp_path / "odd.gguf"
    shutil.copy(smollm2_path, odd)
    data = bytearray(odd.read_bytes()[:4096])
    key = b"general.architecture"
    at = data.index(key) + len(key) + 4 + 8  # skip the value type and the string length
    assert data[at : at + 5] == b"llama"
    with open(odd, "r+b") as f:
        f.seek(at)
        f.write(b"zzzzz")
    with pytest.raises(BadModelFile, match="architecture 'zzzzz'"):
        LlamaEngine(odd)


def test_not_gguf_and_missing(tmp_path):
    txt = tmp_path / "readme.gguf"
    txt.write_text("hello")
    with pytest.raises(BadModelFile, match="not a GGUF"):
        LlamaEngine(txt)
    with pytest.raises(BadModelFile, match="No such file"):
        LlamaEngine(tmp_path / "nope.gguf")
