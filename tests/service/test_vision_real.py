"""Images through the chat service with a real llama.cpp multimodal run: SmolLM2 135M
with a tiny projector made for it (tests/tiny_mmproj.py) found beside the model file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from chatapp.core.backend import ModelRef
from chatapp.core.images import check_image
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.images import ref
from chatapp.core.token_engine import SamplingParams
from chatapp.service import ChatService, LoadRequest, TurnOptions
from chatapp.service.events import TurnChunk, TurnFailed, TurnFinished, TurnPrompt
from tests.service.conftest import Recorder, fake_service  # noqa: F401  (fixture)

pytestmark = pytest.mark.model
WAIT = 300
SAMPLING = SamplingParams(seed=1, max_tokens=12, temperature=0.0)


def png(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (90, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def seeing_service(tmp_path: Path, vision_dir: Path):
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    model = vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    loaded = service.load(LoadRequest(ModelRef.local(model), n_threads=2)).result(WAIT)
    assert loaded.capabilities.vision  # the projector beside the model was found
    yield service
    service.shutdown()


def test_an_image_reaches_the_model_and_the_follow_up_reuses_it(seeing_service, tmp_path):
    image = check_image(png(), name="red.png")
    rec = Recorder()
    first = seeing_service.send(
        None,
        "What is in this picture?",
        options=TurnOptions(sampling=SAMPLING, images=(image,)),
        listener=rec,
    ).result(WAIT)
    assert isinstance(first, TurnFinished), first
    # Show prompt's block: size, sha256 and the positions mtmd counted
    prompt = rec.of(TurnPrompt)[0].prompt
    assert len(prompt.images) == 1
    block = prompt.images[0]
    assert (block.sha256, block.width, block.height, block.positions) == (
        image.sha256,
        90,
        60,
        16,
    )
    assert f"[image 90x60 PNG, sha256 {image.sha256}, 16 positions]" in prompt.text
    assert "<image-" not in prompt.text
    assert (
        prompt.tokens[block.token_start : block.token_start + 16]
        == [prompt.tokens[block.token_start]] * 16
    )
    # the answer streamed, the receipt names the image
    assert rec.of(TurnChunk)
    receipt = first.message.meta["receipt"]
    assert receipt["images"][0]["sha256"] == image.sha256
    assert receipt["images_encoded"] == 1
    assert receipt["prompt_tokens"] == len(prompt.tokens)  # the meter counts the positions

    # the follow-up: the image is in the model's state, not encoded again
    rec2 = Recorder()
    second = seeing_service.send(
        first.conversation_id,
        "And what colour is it?",
        options=TurnOptions(sampling=SAMPLING),
        listener=rec2,
    ).result(WAIT)
    assert isinstance(second, TurnFinished), second
    r2 = second.message.meta["receipt"]
    assert r2["images"][0]["sha256"] == image.sha256
    assert r2["images_encoded"] == 0
    assert r2["reused_tokens"] > block.token_start + 16

    # stored once, named by the user message
    seeing_service.shutdown()
    with Store(tmp_path / "chat.sqlite3") as s:
        user = next(m for m in s.messages(first.conversation_id) if m.role.value == "user")
        assert user.meta["images"][0]["sha256"] == image.sha256
        stored = s.get_image(image.sha256)
        assert stored is not None and stored.data == image.data


def test_a_model_that_cannot_see_refuses_the_image_and_stores_nothing(tmp_path, smollm2_path):
    service = ChatService(tmp_path / "chat.sqlite3", Settings())
    try:
        loaded = service.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
        assert not loaded.capabilities.vision
        image = check_image(png(), name="red.png")
        result = service.send(
            None, "What is this?", options=TurnOptions(sampling=SAMPLING, images=(image,))
        ).result(WAIT)
        assert isinstance(result, TurnFailed)
        assert "cannot see images" in result.error
        assert "mmproj" in result.error
        assert result.restore_input == "What is this?"  # the text goes back to the input
    finally:
        service.shutdown()
    with Store(tmp_path / "chat.sqlite3") as s:
        assert s.list_conversations() == []
        assert s.get_image(image.sha256) is None


def test_an_edit_keeps_the_images_and_a_blind_model_reads_a_note(fake_service, tmp_path):
    """A scripted (text-only) engine: the image of an earlier message becomes a line in
    the prompt; editing the question keeps its image."""
    service = fake_service()
    image = check_image(png(size=(12, 7)))
    with Store(tmp_path / "chat.sqlite3") as s:
        c = s.create_conversation("pic")
        s.put_images([image])
        q = s.add_message(c.id, "user", "What is it?", meta={"images": [ref(image)]})
    rec = Recorder()
    done = service.edit(q.id, "What colour is it?", listener=rec).result(WAIT)
    assert isinstance(done, TurnFinished), done
    prompt = rec.of(TurnPrompt)[0].prompt
    assert "[an image, 12x7, was here: this model cannot see images]" in prompt.text
    assert prompt.images == ()
    with Store(tmp_path / "chat.sqlite3") as s:
        edited = s.get_message(done.message.parent_id)
        assert edited.content == "What colour is it?" and edited.id != q.id
        assert edited.meta["images"] == [ref(image)]
