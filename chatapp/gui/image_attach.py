"""Images in the composer: paste, drop or attach them; they go with the next message.

A strip above the input holds an "Image…" button and a chip (thumbnail, size, a remove button) per
image waiting to be sent. Images come in by pasting (a copied image or image file), by
dropping image files on the input, or through the button. Each is read and checked at
once (core.images): a bad file is one line in the message bar and is not added. The
waiting images live in the session (ChatSession.pending_images), which hands them to
the next send and to Show prompt's draft; the strip empties when they are sent.

A click on a thumbnail in the message view opens the image at full size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QBuffer, QByteArray, QEvent, QIODevice, QMimeData, QObject, Qt
from PySide6.QtGui import (
    QAction,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from chatapp.core.images import ImageError, ImageFile, check_image, read_image_file
from chatapp.gui.chatview import images as thumbs

if TYPE_CHECKING:  # the window imports its extensions, not the reverse
    from chatapp.gui.mainwindow import MainWindow

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")
MAX_WAITING = 8


def image_paths(mime: QMimeData | None) -> list[str]:
    if mime is None or not mime.hasUrls():
        return []
    return [
        u.toLocalFile()
        for u in mime.urls()
        if u.isLocalFile() and u.toLocalFile().lower().endswith(SUFFIXES)
    ]


def _png_of(image: QImage) -> bytes:
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")  # type: ignore[call-overload]  # PySide takes str at run time
    return bytes(data.data())


class ImageStrip(QWidget):
    """The waiting images, as chips, and the button that adds one."""

    def __init__(self, owner: ImageAttach) -> None:
        super().__init__()
        self.owner = owner
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.add_button = QToolButton()
        self.add_button.setText(self.tr("Image…"))
        self.add_button.setToolTip(
            self.tr("Add an image to the message (or paste one, or drop image files here)")
        )
        self.add_button.clicked.connect(owner.choose_files)
        self.row.addWidget(self.add_button)
        self.row.addStretch(1)
        self.chips: dict[str, QWidget] = {}

    def add_chip(self, image: ImageFile) -> None:
        chip = QWidget()
        chip.setObjectName(f"image-chip-{image.sha256[:12]}")
        lay = QHBoxLayout(chip)
        lay.setContentsMargins(2, 2, 2, 2)
        pic = QLabel()
        pix = QPixmap()
        got = thumbs.remember(image)
        if got is not None:
            import base64

            pix.loadFromData(base64.b64decode(got[0].split(",", 1)[1]))
            side = self.fontMetrics().height() * 3
            pic.setPixmap(pix.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio))
        pic.setToolTip(
            self.tr("{label}, sha256 {sha256}").format(label=image.label, sha256=image.sha256)
        )
        pic.setAccessibleName(self.tr("Image {label}").format(label=image.label))
        lay.addWidget(pic)
        lay.addWidget(QLabel(image.label))
        remove = QToolButton()
        remove.setText("\u2715")  # a cross
        remove.setToolTip(self.tr("Remove this image from the message"))
        remove.clicked.connect(lambda: self.owner.remove(image.sha256))
        lay.addWidget(remove)
        self.row.insertWidget(self.row.count() - 1, chip)
        self.chips[image.sha256] = chip

    def remove_chip(self, sha: str) -> None:
        chip = self.chips.pop(sha, None)
        if chip is not None:
            chip.setParent(None)
            chip.deleteLater()


class ImageAttach(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.strip = ImageStrip(self)
        layout = window.chat_layout
        layout.insertWidget(layout.count() - 1, self.strip)  # just above the input row
        self.watched = [window.input, window.input.viewport()]
        for w in self.watched:
            w.setAcceptDrops(True)
            w.installEventFilter(self)
        window.session.images_taken.connect(self._sent)
        window.session.images_restored.connect(self._restored)
        window.message_view.image_clicked.connect(self.open_full)
        # a model opened from a file without its projector beside it: the user names it
        self.projector_action = QAction(self.tr("Open a &projector for this model…"), window)
        self.projector_action.setToolTip(
            self.tr("Load the model again with its vision projector (mmproj-*.gguf)")
        )
        self.projector_action.triggered.connect(lambda: self.choose_projector())
        window.menus["models"].addAction(self.projector_action)
        store = window.session.store
        thumbs.source = lambda sha: store.get_image(sha)

    # -- the waiting images -----------------------------------------------------------

    @property
    def waiting(self) -> tuple[ImageFile, ...]:
        return tuple(self.window.session.pending_images)

    def add(self, image: ImageFile) -> bool:
        if any(i.sha256 == image.sha256 for i in self.waiting):
            return False
        if len(self.waiting) >= MAX_WAITING:
            self.window.show_error(
                self.tr("A message takes at most {n} images.").format(n=MAX_WAITING)
            )
            return False
        self.window.session.pending_images = (*self.waiting, image)
        self.strip.add_chip(image)
        model = self.window.session.model
        if model is not None and not model.capabilities.vision:
            self.window.show_info(
                self.tr(
                    "The loaded model cannot see images (no projector, mmproj-*.gguf, was "
                    "found beside it): a message with an image will be refused. Models > "
                    "Open a projector for this model… loads it with one."
                )
            )
        return True

    def choose_projector(self, path: str | None = None) -> bool:
        """Reload the loaded model file with a projector the user picks (or `path`)."""
        model = self.window.session.model
        if model is None or not model.ref.is_local:
            self.window.show_error(self.tr("Open a model file first."))
            return False
        if path is None:
            path, _ = QFileDialog.getOpenFileName(
                self.window,
                self.tr("The vision projector of {name}").format(name=Path(model.ref.name).name),
                str(Path(model.ref.name).parent),
                self.tr("Projectors (*mmproj*.gguf);;GGUF files (*.gguf)"),
            )
            if not path:
                return False
        self.window.session.open_model(model.ref.name, mmproj=path)
        return True

    def add_file(self, path: str) -> bool:
        try:
            image = read_image_file(path)
        except ImageError as e:
            self.window.show_error(str(e))
            return False
        return self.add(image)

    def add_bytes(self, data: bytes, name: str) -> bool:
        try:
            image = check_image(data, name=name)
        except ImageError as e:
            self.window.show_error(str(e))
            return False
        return self.add(image)

    def remove(self, sha: str) -> None:
        self.window.session.pending_images = tuple(i for i in self.waiting if i.sha256 != sha)
        self.strip.remove_chip(sha)

    def _sent(self) -> None:
        for sha in list(self.strip.chips):
            self.strip.remove_chip(sha)

    def _restored(self) -> None:
        for image in self.waiting:
            if image.sha256 not in self.strip.chips:
                self.strip.add_chip(image)

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self.window,
            self.tr("Add images"),
            str(Path.home()),
            self.tr("Images (*.png *.jpg *.jpeg *.webp *.gif)"),
        )
        for p in paths:
            self.add_file(p)

    # -- paste and drop -----------------------------------------------------------------

    def take_mime(self, mime: QMimeData | None) -> bool:
        """Images in a paste or a drop; False when there are none (text goes on)."""
        paths = image_paths(mime)
        if paths:
            for p in paths:
                self.add_file(p)
            return True
        if mime is not None and mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage) and not image.isNull():
                self.add_bytes(_png_of(image), self.tr("the pasted image"))
                return True
        return False

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        try:
            return self._filter(event)
        except Exception:  # an exception out of an event filter takes Qt down
            log.exception("image paste or drop failed")
            self.window.show_error(self.tr("The image could not be taken (see the log)."))
            return False

    def _filter(self, event: QEvent) -> bool:
        kind = event.type()
        if kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove) and isinstance(
            event, (QDragEnterEvent, QDragMoveEvent)
        ):
            mime = event.mimeData()
            if image_paths(mime) or mime.hasImage():
                event.acceptProposedAction()
                return True
        elif kind == QEvent.Type.Drop and isinstance(event, QDropEvent):
            if self.take_mime(event.mimeData()):
                event.acceptProposedAction()
                return True
        elif (
            kind == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.matches(QKeySequence.StandardKey.Paste)
        ):
            return self.take_mime(QGuiApplication.clipboard().mimeData())
        return False

    # -- full size ----------------------------------------------------------------------

    def open_full(self, sha: str) -> None:
        image = next((i for i in self.waiting if i.sha256 == sha), None)
        if image is None:
            image = self.window.session.store.get_image(sha)
        if image is None:
            self.window.show_error(self.tr("That image is not in the database."))
            return
        pix = QPixmap()
        if not pix.loadFromData(image.data):
            self.window.show_error(self.tr("Qt cannot show this image."))
            return
        dialog = QDialog(self.window)
        dialog.setObjectName("image-full-size")
        dialog.setWindowTitle(
            self.tr("{label} · sha256 {sha256}…").format(
                label=image.label, sha256=image.sha256[:12]
            )
        )
        lay = QVBoxLayout(dialog)
        area = QScrollArea()
        label = QLabel()
        label.setPixmap(pix)
        area.setWidget(label)
        lay.addWidget(area)
        screen = self.window.screen().availableGeometry()
        dialog.resize(
            min(pix.width() + 40, screen.width()), min(pix.height() + 40, screen.height())
        )
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()


def install(window: MainWindow) -> ImageAttach:
    return ImageAttach(window)
