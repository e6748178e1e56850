"""The real window with a model that sees (SmolLM2 + the tiny projector beside it,
tests/tiny_mmproj.py): a real PNG dropped on the input shows as a chip, Show prompt
shows its block, the sent message shows its thumbnail, a click opens it full size."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QDialog

from chatapp.app import build_window
from chatapp.core.conversation import Role
from chatapp.core.images import sha256_of
from tests.gui.drops import drag_files

pytestmark = pytest.mark.model


def _drop(widget, path: Path) -> None:
    enter, _drop_event = drag_files(widget, path)
    assert enter.isAccepted()


def test_drop_show_prompt_send_thumbnail_full_size(qtbot, vision_dir, tmp_path):
    picture = tmp_path / "sunset.png"
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (250, 120, 20)).save(out, "PNG")
    picture.write_bytes(out.getvalue())
    sha = sha256_of(picture.read_bytes())

    w = build_window(model=str(vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=60000)
    assert w.session.model.capabilities.vision

    _drop(w.input.viewport(), picture)
    assert [i.sha256 for i in w.session.pending_images] == [sha]
    assert w.findChild(object, f"image-chip-{sha[:12]}") is not None
    assert w.input.toPlainText() == ""  # the file's path was not typed into the input

    # Show prompt: the image as a block with its size, hash and positions
    w.input.setPlainText("What is in the picture?")
    with qtbot.waitSignal(w.template_actions.prompt_view_opened, timeout=60000) as opened:
        assert w.template_actions.show_prompt()
    view = opened.args[0]
    assert f"[image 64x48 PNG, sha256 {sha}, 16 positions]" in view.text
    view.close()

    with qtbot.waitSignal(w.session.reply_finished, timeout=120000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert w.session.pending_images == ()
    assert w.findChild(object, f"image-chip-{sha[:12]}") is None
    cid = w.current_conversation_id()
    question, answer = w.store.active_thread(cid)[-2:]
    assert question.role is Role.USER and question.meta["images"][0]["sha256"] == sha
    assert answer.meta["receipt"]["images"][0]["positions"] == 16

    # the message view: the thumbnail, a link to the full image
    lay = w.message_view.row_layout(question.id)
    assert lay is not None
    assert "<img" in lay.html and f"chatapp-image:{sha}" in lay.html
    w.message_view.scroll_to_message(question.id)
    qtbot.wait(50)
    where = w.message_view.row_rect(question.id).topLeft() + lay.body_origin + QPoint(8, 8)
    qtbot.mouseClick(w.message_view.viewport(), Qt.MouseButton.LeftButton, pos=where)
    full = w.findChild(QDialog, "image-full-size")
    assert full is not None and full.isVisible()
    assert "64x48 PNG" in full.windowTitle()
    full.close()
    w.close()
    w.store.close()


def test_a_file_that_is_not_an_image_is_one_line_and_not_added(qtbot, vision_dir, tmp_path):
    w = build_window(model=str(vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    qtbot.addWidget(w)
    w.show()
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    _drop(w.input.viewport(), fake)
    assert w.session.pending_images == ()
    assert "fake.png is not an image" in w.message_bar.label.text()
    assert w.message_bar.error
    w.close()
    w.store.close()


def test_a_model_without_its_projector_beside_it_gets_one_from_the_models_menu(
    qtbot, smollm2_path, vision_dir, tmp_path
):
    """SmolLM2 opened from the test models' folder (no projector beside it) cannot see;
    Models > Open a projector for this model… loads it again with the one the user picks,
    and then it can."""
    from tests.tiny_mmproj import FILE_NAME

    w = build_window(model=str(smollm2_path))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=60000)
    assert not w.session.model.capabilities.vision
    from chatapp.gui.image_attach import ImageAttach

    images = w.findChild(ImageAttach)
    assert images.projector_action in w.menus["models"].actions()
    assert images.choose_projector(str(vision_dir / FILE_NAME))
    qtbot.waitUntil(
        lambda: w.session.model is not None and w.session.model.capabilities.vision,
        timeout=60000,
    )
    assert w.session.model.ref.name == str(smollm2_path.resolve())

    # Settings > Speed loads the model again for a speculation change: the projector the
    # user picked stays (before: only one beside the model was found, and sight was lost)
    from chatapp.gui.settings_speed import reload_for_speculation

    w.settings.speculative = "lookup"
    loaded = w.session.model
    reload_for_speculation(w)
    qtbot.waitUntil(
        lambda: w.session.model is not None and w.session.model is not loaded, timeout=60000
    )
    assert w.session.model.capabilities.vision
    w.close()
