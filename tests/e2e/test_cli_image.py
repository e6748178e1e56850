"""`chatapp chat --image FILE` in real processes: SmolLM2 with the tiny projector beside
it (tests/tiny_mmproj.py) sees a PNG; bad files and text-only models are refused with
one line and nothing is stored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from chatapp.core.store import Store
from chatapp.paths import app_paths
from tests.e2e.test_cli_chat import FAST, _cid, cli

pytestmark = pytest.mark.model


def _png(path: Path, colour: tuple[int, int, int] = (20, 180, 40)) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "PNG")
    path.write_bytes(out.getvalue())
    return path


def test_chat_with_an_image_and_a_follow_up(vision_dir: Path, tmp_path: Path) -> None:
    model = vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    picture = _png(tmp_path / "green.png")
    first = cli("chat", "-m", str(model), *FAST, "--stats", "--image", str(picture), "What?")
    assert first.returncode == 0, first.stderr
    assert "1 image(s), 16 positions, 1 encoded" in first.stderr
    cid = _cid(first.stderr)
    # a new process: the chat's KV state, saved on disk when the first one quit (issue
    # 20), holds the image already: it is not encoded again (and says so)
    again = cli("chat", "-c", cid, *FAST, "--stats", "And?")
    assert again.returncode == 0, again.stderr
    assert "1 image(s), 16 positions, 0 encoded" in again.stderr
    with Store(app_paths().database) as store:
        conv = store.find_conversation(cid)
        user = store.active_thread(conv.id)[0]
        sha = user.meta["images"][0]["sha256"]
        image = store.get_image(sha)
        assert image is not None and image.data == picture.read_bytes()


def test_bad_images_and_blind_models_are_refused(
    vision_dir: Path, smollm2_path: Path, tmp_path: Path
) -> None:
    model = vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    not_image = tmp_path / "notes.png"
    not_image.write_text("just text\n")
    bad = cli("chat", "-m", str(model), *FAST, "--image", str(not_image), "What?")
    assert bad.returncode != 0
    assert "notes.png is not an image" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = cli("chat", "-m", str(model), *FAST, "--image", str(tmp_path / "no.png"), "What?")
    assert missing.returncode != 0 and "no such file" in missing.stderr
    blind = cli(
        "chat", "-m", str(smollm2_path), *FAST, "--image", str(_png(tmp_path / "a.png")), "What?"
    )
    assert blind.returncode != 0
    assert "cannot see images" in blind.stderr
    with Store(app_paths().database) as store:
        assert store.list_conversations() == []
