"""The real test models: the prompt we render tokenizes to the model's own special
tokens, the answer stops at the end of the turn, and no marker leaks into the text."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.prompting import build_prompt
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.core.templates.presets import special_tokens_from_metadata, token_text
from chatapp.core.thinking import AnswerStream

pytestmark = pytest.mark.model

TURNS = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Say the word yes."},
]


def _resolved(path: Path) -> tuple[ChatTemplate, str, str]:
    meta = read_gguf(path, keep_arrays=True).metadata
    bos, eos = token_text(meta, "bos"), token_text(meta, "eos")
    t = resolve_template(meta, special_tokens=special_tokens_from_metadata(meta), eos_token=eos)
    return t, bos, eos


def _vocab(path: Path) -> Any:
    return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)


def _special_id(llm: Any, text: str) -> int:
    ids = llm.tokenize(text.encode(), add_bos=False, special=True)
    assert len(ids) == 1, f"{text} is not one token: {ids}"
    return int(ids[0])


def test_smollm2_prompt_has_chatml_special_tokens(smollm2_path: Path) -> None:
    template, bos, eos = _resolved(smollm2_path)
    text = build_prompt(template, "Be brief.", TURNS, bos_token=bos, eos_token=eos).text
    llm = _vocab(smollm2_path)
    try:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        start, end = _special_id(llm, "<|im_start|>"), _special_id(llm, "<|im_end|>")
    finally:
        llm.close()
    assert ids.count(start) == 5  # system, 3 turns, the open assistant turn
    assert ids.count(end) == 4
    assert "<|im_end|>" in template.stop_markers


def test_gemma3_prompt_has_gemma_special_tokens(gemma_path: Path) -> None:
    template, bos, eos = _resolved(gemma_path)
    assert (template.source, template.name, bos, eos) == ("preset", "gemma", "<bos>", "<eos>")
    text = build_prompt(template, "Be brief.", TURNS, bos_token=bos, eos_token=eos).text
    llm = _vocab(gemma_path)
    try:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        sot, eot = _special_id(llm, "<start_of_turn>"), _special_id(llm, "<end_of_turn>")
        assert ids[0] == llm.token_bos() and ids.count(llm.token_bos()) == 1
    finally:
        llm.close()
    assert ids.count(sot) == 4 and ids.count(eot) == 3
    assert template.stop_markers[0] == "<end_of_turn>"


GENERATE = """
import json, sys
import llama_cpp
path, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
# n_batch=1: the llama-cpp-python 0.3.36 build on the dev machine segfaults decoding
# batches of more than one token (AVX512/AMX CPU); one token at a time works.
llm = llama_cpp.Llama(
    model_path=path, n_ctx=512, n_batch=1, n_ubatch=1, seed=1, verbose=False
)
tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
out = []
steps = llm.generate(tokens, temp=0.0, top_k=1)
for token in steps:  # on past the end of turn: stopping is the caller's job here
    out.append(int(token))
    if len(out) >= n:
        break
steps.close()  # before llm.close(): a live generator on a freed model crashes
pieces = [llm.detokenize([t], special=True).decode("utf-8", errors="replace") for t in out]
llm.close()
print(json.dumps({"ids": out, "pieces": pieces}))
"""


def _generate(path: Path, prompt: str, n: int) -> dict[str, Any]:
    # In a child process: a crash inside llama.cpp must fail this test, not the run.
    proc = subprocess.run(
        [sys.executable, "-c", GENERATE, str(path), prompt, str(n)],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"generation failed ({proc.returncode}): {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_smollm2_answer_stops_at_end_of_turn_without_leaking_markers(smollm2_path: Path) -> None:
    template, bos, eos = _resolved(smollm2_path)
    prompt = build_prompt(template, "", TURNS, bos_token=bos, eos_token=eos).text
    result = _generate(smollm2_path, prompt, 48)
    raw = "".join(result["pieces"])
    assert "<|im_end|>" in raw, f"the model never ended its turn: {raw!r}"
    stream = AnswerStream.for_template(template, prompt)
    shown: list[tuple[str, str]] = []
    for piece in result["pieces"]:  # streamed the way the generation loop feeds it
        shown += stream.feed(piece)
        if stream.stopped:
            break
    shown += stream.finish()
    assert stream.stopped
    text = "".join(t for _, t in shown)
    assert text == stream.answer == raw.split("<|im_end|>")[0].strip() != ""
    for marker in ("<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|im"):
        assert marker not in text
