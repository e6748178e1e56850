"""Issue 20 item 1: a KV state on disk is used only where it is exactly right.

A state saved by one engine is restored by the next with the same model (its receipt's
count: PromptEval.from_disk) and the answer equals a cold engine's, token ids and
log-probabilities. Not used: a state whose model file changed (touched), whose tokens
diverge from the new prompt at token 5, whose file was cut in half (discarded with a log
line); used only up to the divergence when the prompt differs later. A sliding-window
model (Gemma 3) keeps no state on disk. A full budget drops the least recently used.
Real SmolLM2 and Gemma 3."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from chatapp.core.token_engine import Sampled, SamplingParams
from chatapp.engine.llama import GRID, LlamaEngine
from chatapp.engine.state_disk import SUFFIX, StateDisk, file_fingerprint, wait_for_writes

pytestmark = pytest.mark.model

GREEDY = SamplingParams(temperature=0.0, top_k=1, max_tokens=8, seed=3)
TEXT = " ".join(f"Item {i} costs {i * 7 % 13} coins." for i in range(40))
BUDGET = 1 << 30


def _engine(path: Path, states: Path | None) -> LlamaEngine:
    return LlamaEngine(
        path, context_limit=1024, n_threads=2, state_dir=states, state_disk_bytes=BUDGET
    )


def _close(engine: LlamaEngine) -> None:
    """Close, and wait for the states it saved (the writer does not hold close() up)."""
    engine.close()
    wait_for_writes()


def _run(engine: LlamaEngine, prompt: list[int], key: str) -> list[Sampled]:
    return list(engine.generate(prompt, GREEDY, threading.Event(), logprobs=5, cache_key=key))


def _saved(path: Path, states: Path) -> list[int]:
    """A conversation "c" evaluated and answered, then the engine closed (saved)."""
    e = _engine(path, states)
    try:
        prompt = e.tokenize(TEXT)
        answer = _run(e, prompt, "c")
        e.settle()
    finally:
        _close(e)
    assert len(list(states.glob(f"*{SUFFIX}"))) == 1
    return prompt + [s.token_id for s in answer]


def _cold(path: Path, prompt: list[int]) -> list[Sampled]:
    e = _engine(path, None)
    try:
        return _run(e, prompt, "x")
    finally:
        _close(e)


def _next(path: Path, states: Path, prompt: list[int]) -> tuple[list[Sampled], int, int]:
    e = _engine(path, states)
    try:
        out = _run(e, prompt, "c")
        return out, e.last_prompt.from_disk, e.last_prompt.reused
    finally:
        _close(e)


def test_restored_from_disk_equals_cold(smollm2_path: Path, tmp_path: Path) -> None:
    states = tmp_path / "states"
    before = _saved(smollm2_path, states)
    e = _engine(smollm2_path, states)
    prompt = before + e.tokenize(" Which item costs the most?")
    _close(e)
    warm, from_disk, reused = _next(smollm2_path, states, prompt)
    assert from_disk >= len(before) // GRID * GRID - GRID
    assert reused >= from_disk
    assert warm == _cold(smollm2_path, prompt)


def test_a_changed_model_file_is_not_used(smollm2_path: Path, tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_path, model)
    states = tmp_path / "states"
    prompt = _saved(model, states)
    st = model.stat()
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched
    warm, from_disk, reused = _next(model, states, prompt)
    assert (from_disk, reused) == (0, 0)
    assert warm == _cold(smollm2_path, prompt)


def test_the_key_follows_the_model_file(tmp_path: Path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF" + bytes(100))
    a = file_fingerprint(f)
    f.write_bytes(b"GGUF" + bytes(99) + b"\1")  # same size, another header
    os.utime(f, ns=(0, a["mtime_ns"]))  # and the same mtime
    b = file_fingerprint(f)
    assert a["size"] == b["size"] and a["mtime_ns"] == b["mtime_ns"]
    assert a != b
    disk_a, disk_b = (
        StateDisk(tmp_path, {"model": a}, BUDGET),
        StateDisk(tmp_path, {"model": b}, BUDGET),
    )
    assert disk_a.path_for("c") != disk_b.path_for("c")


def test_tokens_that_diverge_are_not_used(smollm2_path: Path, tmp_path: Path) -> None:
    states = tmp_path / "states"
    saved = _saved(smollm2_path, states)
    other = 42 if saved[5] != 42 else 43
    # diverging at token 40: only the exact cells before it come from disk
    late = [*saved[:40], other, *saved[41:]]
    warm, from_disk, reused = _next(smollm2_path, states, late)
    assert from_disk == reused == 32
    assert warm == _cold(smollm2_path, late)
    # (closing saved `late` in its place) diverging at token 5: nothing is used
    early = [*saved[:5], other, *saved[6:]]
    warm, from_disk, reused = _next(smollm2_path, states, early)
    assert (from_disk, reused) == (0, 0)
    assert warm == _cold(smollm2_path, early)


def test_a_file_cut_in_half_is_discarded(
    smollm2_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    states = tmp_path / "states"
    prompt = _saved(smollm2_path, states)
    (f,) = states.glob(f"*{SUFFIX}")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="chatapp.engine.state_disk"):
        warm, from_disk, reused = _next(smollm2_path, states, prompt)
    assert (from_disk, reused) == (0, 0)
    assert any("discarded" in r.getMessage() for r in caplog.records)
    assert warm == _cold(smollm2_path, prompt)
    # the damaged file is gone; closing wrote a good one in its place
    (g,) = states.glob(f"*{SUFFIX}")
    assert g.stat().st_size > len(data) // 2


def test_a_damaged_byte_is_caught(smollm2_path: Path, tmp_path: Path) -> None:
    states = tmp_path / "states"
    prompt = _saved(smollm2_path, states)
    (f,) = states.glob(f"*{SUFFIX}")
    data = bytearray(f.read_bytes())
    data[-1000] ^= 0xFF
    f.write_bytes(bytes(data))
    warm, from_disk, _ = _next(smollm2_path, states, prompt)
    assert from_disk == 0
    assert warm == _cold(smollm2_path, prompt)


def test_sliding_window_models_keep_no_state_on_disk(gemma_path: Path, tmp_path: Path) -> None:
    states = tmp_path / "states"
    e = _engine(gemma_path, states)
    try:
        assert e.sliding_window > 0
        prompt = e.tokenize(TEXT)
        _run(e, prompt, "c")
        _run(e, prompt[:50], "d")  # a switch: c leaves the context
    finally:
        _close(e)
    assert not states.exists() or not list(states.glob(f"*{SUFFIX}"))


def test_the_budget_drops_the_least_recently_used(smollm2_path: Path, tmp_path: Path) -> None:
    states = tmp_path / "states"
    e = _engine(smollm2_path, states)
    try:
        ids = e.tokenize(TEXT)
        for key in ("a", "b", "c"):
            _run(e, ids, key)
        assert e._disk is not None
        assert not list(states.glob(f"*{SUFFIX}"))  # a and b are in memory yet
        one = max(saved.n_bytes for _, saved in e._states.items()) + 4 * len(ids) + 1024
        e._disk.budget = int(one * 2.5)  # room for two
    finally:
        _close(e)  # writes a, b (in memory, least recent first), then c: a goes
    disk = StateDisk(states, e._disk.key, BUDGET)
    kept = {p.name for p in states.glob(f"*{SUFFIX}")}
    assert kept == {disk.path_for("b").name, disk.path_for("c").name}


def test_a_deleted_chat_leaves_no_state(smollm2_path: Path, tmp_path: Path) -> None:
    """A chat's saved tokens are its text: forgetting it deletes its file (any model's),
    and an engine that still holds it in memory does not write it again on close."""
    from chatapp.engine.state_disk import forget

    states = tmp_path / "states"
    _saved(smollm2_path, states)
    assert forget(states, ["another chat"]) == 0
    assert len(list(states.glob(f"*{SUFFIX}"))) == 1
    assert forget(states, ["c"]) == 1
    assert list(states.glob(f"*{SUFFIX}")) == []

    e = _engine(smollm2_path, states)
    try:
        _run(e, e.tokenize(TEXT), "c")
        _run(e, e.tokenize("Another chat entirely. " * 12), "d")  # "c" kept in memory
        e.forget_states(["c"])
    finally:
        _close(e)
    left = list(states.glob(f"*{SUFFIX}"))
    assert len(left) == 1 and forget(states, ["d"]) == 1
