"""Completion mode with the real Gemma 3 270M (a base model) and the CLI's per-token JSON
with the real SmolLM2."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import llama_cpp
import pytest

from chatapp.core.backend import ChatRequest, ModelRef
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest

pytestmark = pytest.mark.model
RUN_CLI = Path(__file__).resolve().parents[1] / "hub" / "run_cli.py"
TEXT = "Café au lait, 東京 and <start_of_turn>user: the story begins"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
        env=dict(os.environ),
    )


def _reference_tokens(model: Path, text: str) -> list[int]:
    """llama.cpp's own tokenizer, in a separate vocabulary-only load: BOS + the text as
    plain text (markers not parsed)."""
    vocab = llama_cpp.Llama(model_path=str(model), vocab_only=True, verbose=False)
    try:
        return vocab.tokenize(text.encode(), add_bos=True, special=False)
    finally:
        vocab.close()


def test_completion_with_gemma_sends_exactly_bos_and_the_text(tmp_path, gemma_path):
    expected = _reference_tokens(gemma_path, TEXT)
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    try:
        service.load(LoadRequest(ModelRef.local(gemma_path), n_threads=2)).result(300)
        engine = service._backend.engine  # type: ignore[union-attr]
        bos = engine._llm.token_bos()
        assert expected[0] == bos and expected.count(bos) == 1
        # the marker in the text stayed text: no <start_of_turn> control token
        turn = engine.tokenize("<start_of_turn>", special=True)
        assert len(turn) == 1 and turn[0] not in expected
        prepared = service._infer.call(  # type: ignore[attr-defined]
            lambda: service._backend.prepare(ChatRequest([], raw_prompt=TEXT))  # type: ignore[union-attr]
        )
        assert prepared.tokens == expected
        done = service.continue_text(
            TEXT, sampling=SamplingParams(temperature=0.0, max_tokens=4, seed=1)
        )
        result = done.result(300)
        assert result.prompt.tokens == expected
        # what the model evaluated: exactly those tokens, then the continuation
        evaluated = service._infer.call(  # type: ignore[attr-defined]
            lambda: engine._llm.input_ids[: len(expected)].tolist()
        )
        assert evaluated == expected
        assert result.stats.completion_tokens >= 1 and result.text
    finally:
        service.shutdown()


def test_complete_cli_continues_the_text(gemma_path):
    r = _cli(
        "complete",
        "--model",
        str(gemma_path),
        "--max-tokens",
        "6",
        "--temperature",
        "0",
        "--seed",
        "1",
        "The capital of France is",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()  # a continuation, without any chat markers
    assert "<start_of_turn>" not in r.stdout


def test_complete_cli_json_prints_one_object_per_token(gemma_path):
    r = _cli(
        "complete",
        "--model",
        str(gemma_path),
        "--max-tokens",
        "5",
        "--temperature",
        "0",
        "--logprobs",
        "4",
        "--json",
        "--stats",
        "Once upon a time",
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "5 tokens" in r.stderr and len(lines) == 5
    for t in lines:
        assert set(t) >= {"id", "text", "probability", "top", "raw_probability", "raw_top"}
        assert len(t["raw_top"]) == 4
        assert t["top"][0]["id"] == t["id"] and t["probability"] == 1.0  # temperature 0
        probs = [a["probability"] for a in t["raw_top"]]
        assert all(0 < p <= 1 for p in probs) and sum(probs) <= 1 + 1e-4
        assert math.isclose(math.exp(t["raw_logprob"]), t["raw_probability"], rel_tol=1e-4)


def test_chat_cli_json_with_smollm2(smollm2_path):
    r = _cli(
        "chat",
        "--model",
        str(smollm2_path),
        "--max-tokens",
        "6",
        "--temperature",
        "0.7",
        "--seed",
        "3",
        "--logprobs",
        "3",
        "--json",
        "Say hello.",
    )
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert 1 <= len(lines) <= 6
    for t in lines:
        assert isinstance(t["id"], int) and isinstance(t["text"], str)
        assert 0 < t["probability"] <= 1 and len(t["raw_top"]) == 3
        assert len(t["top"]) <= 3
        probs = [a["probability"] for a in t["top"]]
        assert sum(probs) <= 1 + 1e-4


def test_json_needs_alternatives(smollm2_path):
    r = _cli("chat", "--model", str(smollm2_path), "--logprobs", "0", "--json", "Hi")
    assert r.returncode == 1 and "--logprobs 1 or more" in r.stderr
    r = _cli("complete", "--model", str(smollm2_path), "--logprobs", "21", "x")
    assert r.returncode == 2 and "from 0 to 20" in r.stderr


FRANCE = "The three largest cities in France are"


def test_completion_text_is_exactly_its_tokens_bytes(tmp_path, gemma_path):
    """A base model's first token is " Paris": the text keeps its space (issue 23.5)."""
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    chunks = []
    try:
        service.load(LoadRequest(ModelRef.local(gemma_path), n_threads=2)).result(300)
        result = service.continue_text(
            FRANCE,
            sampling=SamplingParams(temperature=0.0, max_tokens=8, seed=1),
            listener=chunks.append,
        ).result(300)
    finally:
        service.shutdown()
    spelled = b"".join(c.data for c in chunks if c.token_id is not None).decode()
    assert spelled[0].isspace()  # the model's first token starts with a space
    assert result.text == spelled


def test_complete_cli_prints_exactly_the_tokens(gemma_path):
    args = ["complete", "--model", str(gemma_path), "--max-tokens", "8", "--temperature", "0"]
    text = _cli(*args, "--seed", "1", FRANCE)
    tokens = _cli(*args, "--seed", "1", "--logprobs", "1", "--json", FRANCE)
    assert text.returncode == 0 and tokens.returncode == 0, text.stderr + tokens.stderr
    spelled = "".join(json.loads(x)["text"] for x in tokens.stdout.splitlines())
    assert spelled[0].isspace()
    assert text.stdout == spelled + "\n"  # "are Paris", not "areParis"
