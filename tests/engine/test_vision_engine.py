"""A real llama.cpp multimodal run: SmolLM2 135M with a tiny projector made for it
(tests/tiny_mmproj.py). The answer's content is noise; the plumbing is what is checked."""

from __future__ import annotations

import io
import threading

import pytest

from chatapp.core.errors import BadModelFile
from chatapp.core.images import check_image, decode_for_model, placeholder_id
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine

pytestmark = pytest.mark.model

N_POSITIONS = 16  # tiny_mmproj: 56 x 56 pixels in 14 x 14 patches


def png(w: int = 120, h: int = 80, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (w, h), colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def seeing(vision_dir):
    from tests.tiny_mmproj import FILE_NAME

    e = LlamaEngine(
        vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf",
        n_threads=2,
        context_limit=1024,
        mmproj=vision_dir / FILE_NAME,
    )
    yield e
    e.close()


def _prompt(engine: LlamaEngine, image_ids: list[int], question: str) -> list[int]:
    before = engine.tokenize("<|im_start|>user\n")
    after = engine.tokenize(f"\n{question}<|im_end|>\n<|im_start|>assistant\n")
    return before + image_ids + after


def _answer(engine: LlamaEngine, prompt: list[int], n: int = 8) -> list[int]:
    params = SamplingParams(temperature=0.0, max_tokens=n, seed=1)
    return [s.token_id for s in engine.generate(prompt, params, threading.Event(), cache_key="c")]


def test_an_image_takes_the_positions_mtmd_reports_and_the_answer_streams(seeing):
    assert seeing.can_see
    assert seeing.image_max_side == 56
    image = decode_for_model(check_image(png()), seeing.image_max_side)
    assert (image.width, image.height) == (56, 37)  # downscaled, aspect kept
    ids = seeing.image_tokens(image)
    pid = placeholder_id(image.sha256)
    assert ids.count(pid) == N_POSITIONS == len(ids)  # llava: no text around the image
    assert seeing.vision.positions(pid) == N_POSITIONS
    prompt = _prompt(seeing, ids, "What colour is this?")
    before = seeing.vision.encoded
    answer = _answer(seeing, prompt)
    assert seeing.vision.encoded == before + 1
    assert seeing.last_prompt.images_encoded == 1
    assert len(answer) > 0 and all(t >= 0 for t in answer)
    # the image's positions are in the context: the prompt and the answer, no more
    assert len(prompt) + len(answer) - 1 <= seeing.context_used <= len(prompt) + len(answer)

    # a follow-up about the same image reuses the state: the image is not encoded again
    follow = prompt + answer + seeing.tokenize("<|im_end|>\n")
    follow += seeing.tokenize("<|im_start|>user\nAnd the shape?<|im_end|>\n<|im_start|>assistant\n")
    _answer(seeing, follow)
    assert seeing.vision.encoded == before + 1
    assert seeing.last_prompt.images_encoded == 0
    image_end = prompt.index(pid) + N_POSITIONS
    assert seeing.last_prompt.reused >= image_end


def test_a_different_image_is_encoded_and_gives_different_logits(seeing):
    a = decode_for_model(check_image(png(colour=(0, 0, 0))), 56)
    b = decode_for_model(check_image(png(colour=(255, 255, 255))), 56)
    pa, pb = (_prompt(seeing, seeing.image_tokens(x), "Describe.") for x in (a, b))
    assert pa != pb
    ans_a, ans_b = _answer(seeing, pa, 12), _answer(seeing, pb, 12)
    assert seeing.last_prompt.images_encoded == 1
    # the picture reaches the text model: two different images, two different answers
    # (deterministic sampling; the projector's weights are noise, so any difference is it)
    assert ans_a != ans_b


def test_a_changed_earlier_image_is_encoded_again(seeing):
    a = decode_for_model(check_image(png(colour=(10, 200, 10))), 56)
    p1 = _prompt(seeing, seeing.image_tokens(a), "Describe.")
    _answer(seeing, p1, 2)
    assert seeing.last_prompt.images_encoded == 1
    _answer(seeing, p1, 2)  # the same prompt again: all reused but the last token
    assert seeing.last_prompt.images_encoded == 0


def test_a_file_that_is_not_a_projector_is_refused_before_llama_cpp(vision_dir, tmp_path):
    with pytest.raises(BadModelFile, match="not a vision projector"):
        LlamaEngine(
            vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf",
            n_threads=2,
            context_limit=512,
            mmproj=vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf",
        )
    junk = tmp_path / "mmproj-junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(BadModelFile):
        LlamaEngine(
            vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf",
            n_threads=2,
            context_limit=512,
            mmproj=junk,
        )
