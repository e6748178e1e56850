"""Images through the API: OpenAI's content parts (text, image_url with data: URLs) to
SmolLM2 with its tiny projector (tests/tiny_mmproj.py), with the official client; a
RemoteBackend pointed at that server passes a conversation's images through."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from chatapp.core.backend import ChatRequest, ModelRef
from chatapp.core.images import check_image
from chatapp.core.settings import Settings
from chatapp.core.token_engine import SamplingParams
from chatapp.engine.remote import RemoteBackend
from chatapp.server import ServerConfig, ServerThread, create_app
from chatapp.service import ChatService, LoadRequest
from tests.server.conftest import WAIT, client

pytestmark = pytest.mark.model
MODEL = "SmolLM2-135M-Instruct.Q4_1"


def png(colour: tuple[int, int, int] = (30, 60, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def seeing_api(tmp_path_factory: pytest.TempPathFactory, vision_dir: Path) -> Iterator[str]:
    service = ChatService(tmp_path_factory.mktemp("api") / "chat.sqlite3", Settings())
    model = vision_dir / f"{MODEL}.gguf"
    service.load(LoadRequest(ModelRef.local(model), n_threads=2)).result(WAIT)
    server = ServerThread(create_app(service, ServerConfig(record=True))).start()
    yield server.url + "/v1"
    server.stop()
    service.shutdown()


def _ask(content: object) -> dict:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 6,
        "temperature": 0,
        "seed": 1,
    }


def test_content_parts_with_a_data_url_reach_the_model(seeing_api: str) -> None:
    c = client(seeing_api)
    stream = c.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in the picture?"},
                    {"type": "image_url", "image_url": {"url": data_url(png())}},
                ],
            }
        ],
        max_tokens=6,
        temperature=0,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    usage = next(ch.usage for ch in chunks if ch.usage is not None)
    # the image's 16 positions are in the prompt the API reports
    text_only = c.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What is in the picture?"}],
        max_tokens=1,
        temperature=0,
    )
    assert usage.prompt_tokens == text_only.usage.prompt_tokens + 16 + 1  # + the newline
    assert any(ch.choices and ch.choices[0].delta.content for ch in chunks)


@pytest.mark.parametrize(
    "url,said",
    [
        ("https://example.com/cat.png", "not fetched by this server"),
        ("data:image/png;base64," + base64.b64encode(b"not a png").decode(), "not an image"),
        ("ftp://x/y.png", "must be a data: URL"),
    ],
)
def test_bad_image_urls_are_a_400_with_one_line(seeing_api: str, url: str, said: str) -> None:
    r = httpx.post(
        seeing_api + "/chat/completions",
        json=_ask([{"type": "image_url", "image_url": {"url": url}}]),
        timeout=WAIT,
    )
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert said in message and "\n" not in message


def test_a_remote_backend_passes_images_through(seeing_api: str) -> None:
    image = check_image(png((250, 250, 0)))
    remote = RemoteBackend(seeing_api.removesuffix("/v1"), MODEL)
    try:
        request = ChatRequest(
            [{"role": "user", "content": "Describe it.", "images": [{"sha256": image.sha256}]}],
            sampling=SamplingParams(max_tokens=4, temperature=0.0, seed=1),
            images={image.sha256: image},
        )
        prompt = remote.prepare(request)
        parts = prompt.messages[0]["content"]
        assert parts[0]["type"] == "image_url"
        assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert f"sha256 {image.sha256}" in prompt.text  # Show prompt: the hash, not the bytes
        assert "images" not in prompt.messages[0]
        import threading

        stream = remote.execute(request, threading.Event(), prompt)
        list(stream)
        # the server counted the image's positions in the prompt
        assert stream.stats.prompt_tokens > 16
    finally:
        remote.close()
