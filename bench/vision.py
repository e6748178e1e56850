"""Images: time to encode one image and give the first token after it, ours against
llama-cpp-python's own multimodal call (Llama + MTMDChatHandler) on the same files, in
one run; and a follow-up question about the same image, with the image in the model's
state (not encoded again) and without (encoded again).

    python bench/vision.py [--threads 1] [--rounds 5] [--image-size 112]

The model is SmolLM2 135M (the test model); the projector is made for it by
tests/tiny_mmproj.py with a bigger encoder than the tests' (by default 112 px in 14 px
patches: 64 positions; 4 blocks of width 256), so encoding costs something. Wall time
and CPU time (time.process_time) are both reported: on a loaded machine CPU time with
one thread is the steadier measure of the work done. Each round runs both sides cold (a fresh KV cache, the image decoded and
preprocessed again), alternating which goes first. Ours is the whole of a send's model
side: LocalBackend.prepare (template, Pillow decode, downscale, mtmd tokenize) and the
first token; theirs is create_chat_completion(stream=True) to its first chunk.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_models
import tiny_mmproj
from PIL import Image

from chatapp.core.backend import ChatRequest
from chatapp.core.images import check_image
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.llama import LlamaEngine
from chatapp.engine.local import LocalBackend

QUESTION = "What is in this picture? Answer in one sentence."


def projector(image_size: int) -> Path:
    d = fetch_models.vision()
    path = d / f"bench-mmproj-{image_size}.gguf"  # not mmproj-*: the tests never pair it
    if not path.exists():
        tiny_mmproj.build(
            path, image_size=image_size, n_embd_v=256, n_ff_v=1024, n_head_v=4, n_layer_v=5
        )
    return path


def picture() -> bytes:
    im = Image.effect_noise((640, 480), 60).convert("RGB")
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def ours_cold(backend: LocalBackend, engine: LlamaEngine, data: bytes) -> tuple[float, float]:
    engine._llm.n_tokens = 0  # a fresh KV cache: nothing to reuse
    engine._exact = 0
    assert engine.vision is not None
    for kept in list(engine.vision._kept):  # nor the preprocessed image
        engine.vision._kept.pop(kept)
    t, c = time.perf_counter(), time.process_time()
    image = check_image(data)
    request = ChatRequest(
        [{"role": "user", "content": QUESTION, "images": [{"sha256": image.sha256}]}],
        sampling=SamplingParams(temperature=0.0, max_tokens=1, seed=1),
        images={image.sha256: image},
        cache_key="bench",
    )
    prompt = backend.prepare(request)
    next(iter(engine.generate(prompt.tokens, request.sampling, threading.Event(), cache_key="b")))
    return time.perf_counter() - t, time.process_time() - c


def theirs_cold(llm, url: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    t, c = time.perf_counter(), time.process_time()
    stream = llm.create_chat_completion(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": QUESTION},
                ],
            }
        ],
        max_tokens=1,
        temperature=0.0,
        seed=1,
        stream=True,
    )
    next(iter(stream))
    elapsed = time.perf_counter() - t, time.process_time() - c
    for _ in stream:
        pass
    return elapsed


def follow_up(
    backend: LocalBackend, engine: LlamaEngine, data: bytes, keep: bool
) -> tuple[float, float]:
    """A second question about the same image after an answer: with the state (keep)
    or with the KV cache dropped first (the image is encoded again)."""
    image = check_image(data)
    params = SamplingParams(temperature=0.0, max_tokens=8, seed=1)
    first = [{"role": "user", "content": QUESTION, "images": [{"sha256": image.sha256}]}]
    req = ChatRequest(first, sampling=params, images={image.sha256: image}, cache_key="f")
    answer = [
        s.token_id
        for s in engine.generate(
            backend.prepare(req).tokens, params, threading.Event(), cache_key="f"
        )
    ]
    text = b"".join(engine.token_bytes(t) for t in answer).decode("utf-8", "replace")
    history = [*first, {"role": "assistant", "content": text}]
    history.append({"role": "user", "content": "And what colours are in it?"})
    if not keep:
        engine._llm.n_tokens = 0
        engine._exact = 0
    t, c = time.perf_counter(), time.process_time()
    req2 = ChatRequest(history, sampling=params, images={image.sha256: image}, cache_key="f")
    next(
        iter(
            engine.generate(
                backend.prepare(req2).tokens,
                SamplingParams(temperature=0.0, max_tokens=1, seed=1),
                threading.Event(),
                cache_key="f",
            )
        )
    )
    elapsed = time.perf_counter() - t, time.process_time() - c
    assert engine.last_prompt.images_encoded == (0 if keep else 1), engine.last_prompt
    return elapsed


def _text_content_handler():  # type: ignore[no-untyped-def]
    from llama_cpp.llama_chat_format import MTMDChatHandler

    class TextContent(MTMDChatHandler):
        """Their generic handler, with a message's parts joined into one string (the
        image as mtmd's marker) for templates that take content as text, as SmolLM2's
        does (it adds content to a string)."""

        @classmethod
        def _convert_message_for_template(cls, message, media_marker):  # type: ignore[no-untyped-def]
            converted = super()._convert_message_for_template(message, media_marker)
            content = converted.get("content")
            if isinstance(content, list):
                converted["content"] = "\n".join(
                    p["text"] if isinstance(p, dict) else str(p) for p in content
                )
            return converted

    return TextContent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=112)
    args = ap.parse_args()
    import llama_cpp

    _TextContent = _text_content_handler()
    model = fetch_models.vision() / fetch_models.SMOLLM2
    proj = projector(args.image_size)
    data = picture()
    url = "data:image/png;base64," + base64.b64encode(data).decode()

    engine = LlamaEngine(model, n_threads=args.threads, context_limit=2048, mmproj=proj)
    backend = LocalBackend(engine)
    # chatapp's guard (engine.llama_guard) keeps llama-cpp-python from compiling GGUF
    # templates; their handler needs its own formatter back for this comparison
    from llama_cpp import llama_chat_format

    from chatapp.engine import llama_guard

    llama_chat_format.Jinja2ChatFormatter = llama_guard._original
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        handler = _TextContent(clip_model_path=str(proj), verbose=False, use_gpu=False)
        llm = llama_cpp.Llama(
            str(model),
            n_ctx=2048,
            n_threads=args.threads,
            n_threads_batch=args.threads,
            chat_handler=handler,
            verbose=False,
        )
    positions = engine.vision.projector.image_size // tiny_mmproj.PATCH_SIZE
    print(
        f"llama-cpp-python {llama_cpp.__version__}, SmolLM2 135M Q4_1 + a {args.image_size} px "
        f"projector ({positions * positions} positions), {args.threads} threads, "
        f"a 640x480 PNG, {args.rounds} rounds"
    )
    ours_cold(backend, engine, data)  # warm-up both (first-call allocations)
    theirs_cold(llm, url)
    mine: list[tuple[float, float]] = []
    them: list[tuple[float, float]] = []
    for r in range(args.rounds):
        if r % 2:
            them.append(theirs_cold(llm, url))
            mine.append(ours_cold(backend, engine, data))
        else:
            mine.append(ours_cold(backend, engine, data))
            them.append(theirs_cold(llm, url))
    for i, what in ((0, "wall"), (1, "CPU")):
        m = statistics.median(x[i] for x in mine)
        t = statistics.median(x[i] for x in them)
        print(
            f"encode + first token, cold, {what} time: ours {m * 1000:.0f} ms, "
            f"llama-cpp-python {t * 1000:.0f} ms, ratio (theirs / ours) {t / m:.3f}"
        )
    kept = [follow_up(backend, engine, data, True) for _ in range(args.rounds)]
    again = [follow_up(backend, engine, data, False) for _ in range(args.rounds)]
    for i, what in ((0, "wall"), (1, "CPU")):
        k = statistics.median(x[i] for x in kept)
        a = statistics.median(x[i] for x in again)
        print(
            f"follow-up about the same image, first token, {what} time: image in the state "
            f"{k * 1000:.0f} ms, encoded again {a * 1000:.0f} ms ({a / k:.1f}x)"
        )
    llm.close()
    engine.close()


if __name__ == "__main__":
    main()
