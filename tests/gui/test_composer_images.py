"""The composer's images with a scripted (text-only) model: paste an image, remove it,
the notice that the model cannot see, and the refusal when sending."""

from __future__ import annotations

import io

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage

from chatapp.core.store import Store
from chatapp.gui.image_attach import ImageAttach
from chatapp.paths import app_paths

EXT = ("chatapp.gui.image_attach",)


def _controller(w) -> ImageAttach:
    return next(c for c in w.children() if isinstance(c, ImageAttach))


def test_paste_an_image_then_a_blind_model_refuses_it(qtbot, make_window, fake_model_file):
    w = make_window(extensions=EXT)
    w.session.open_model(str(fake_model_file))
    qtbot.waitUntil(lambda: w.session.model is not None, timeout=10_000)
    image = QImage(30, 20, QImage.Format.Format_RGB32)
    image.fill(Qt.GlobalColor.blue)
    QGuiApplication.clipboard().setImage(image)
    w.input.setFocus()
    qtbot.keyClick(w.input, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    waiting = w.session.pending_images
    assert len(waiting) == 1 and (waiting[0].width, waiting[0].height) == (30, 20)
    assert w.input.toPlainText() == ""  # the image did not paste as text
    assert "cannot see images" in w.message_bar.label.text()
    sha = waiting[0].sha256
    assert w.findChild(object, f"image-chip-{sha[:12]}") is not None

    w.input.setPlainText("What is this?")
    qtbot.keyClick(w.input, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: "Nothing was sent" in w.message_bar.label.text(), timeout=10_000)
    assert w.message_bar.error
    assert w.input.toPlainText() == "What is this?"  # the text is back in the input
    assert [i.sha256 for i in w.session.pending_images] == [sha]  # and the image
    assert w.findChild(object, f"image-chip-{sha[:12]}") is not None
    with Store(app_paths().database) as s:
        assert s.get_image(sha) is None and s.list_conversations() == []


def test_a_chip_can_be_removed_and_an_image_is_added_once(qtbot, make_window, tmp_path):
    w = make_window(extensions=EXT)
    path = tmp_path / "a.png"
    out = io.BytesIO()
    Image.new("RGB", (9, 9), (1, 2, 3)).save(out, "PNG")
    path.write_bytes(out.getvalue())
    controller = _controller(w)
    assert controller.add_file(str(path))
    assert not controller.add_file(str(path))  # the same image twice: once
    sha = w.session.pending_images[0].sha256
    controller.remove(sha)
    assert w.session.pending_images == ()
    qtbot.waitUntil(lambda: w.findChild(object, f"image-chip-{sha[:12]}") is None, timeout=2000)
