"""Images in messages: read and check a file once, before anything is stored or sent.

An image is kept as the bytes the user gave (content-addressed by their sha256, so a
picture sent twice is stored once) with its format and size; what a model sees is made
from those bytes here: EXIF orientation applied, the first frame of a GIF, alpha over
white, RGB, downscaled so the longest side fits the projector's input.

Bad input is refused with one line (ImageError) before anything is stored: not an
image, an unsupported format, a truncated or corrupt file, too many pixels (a
decompression bomb declares a huge size in a tiny file: the header is checked before a
pixel is decoded), an animated PNG or WebP.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from chatapp.core.errors import UserError

MAX_FILE_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 8192 * 8192  # 67 Mpx: a phone's photo passes, 20,000 x 20,000 does not
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
THUMBNAIL_SIDE = 160


class ImageError(UserError):
    """An image that cannot be used; the message is one line that says why."""


@dataclass(frozen=True)
class ImageFile:
    """An image as stored: the original bytes and what was read from them."""

    sha256: str
    mime: str
    width: int  # after EXIF orientation
    height: int
    data: bytes = b""

    @property
    def label(self) -> str:
        return f"{self.width}x{self.height} {self.mime.split('/')[-1].upper()}"


@dataclass(frozen=True)
class DecodedImage:
    """What a model sees: RGB pixels, row by row, width x height x 3 bytes."""

    sha256: str
    width: int
    height: int
    rgb: bytes


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def placeholder_id(sha256: str) -> int:
    """The negative id an image's positions carry in a prompt's token list (never a
    real token id; the same image gives the same id)."""
    return -(1 + int(sha256[:7], 16))


def is_placeholder(token_id: int) -> bool:
    return token_id < 0


def read_image_file(path: str | Path) -> ImageFile:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(
                f"{p.name} is {size / 1e6:.0f} MB; images up to {MAX_FILE_BYTES // 2**20} MB "
                "are taken."
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{p}: no such file.") from None
    except IsADirectoryError:
        raise ImageError(f"{p} is a folder, not an image.") from None
    except OSError as e:
        raise ImageError(f"{p.name} cannot be read: {e.strerror or e}.") from None
    return check_image(data, name=p.name)


def _open(data: bytes, name: str):  # type: ignore[no-untyped-def]
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_FILE_BYTES:
        raise ImageError(f"{name} is larger than {MAX_FILE_BYTES // 2**20} MB.")
    if not data:
        raise ImageError(f"{name} is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        count = f" ({int(found.group(1)) / 1e6:,.0f} megapixels)" if found else ""
        raise ImageError(
            f"{name} declares too many pixels{count}: a decompression bomb? Not opened; "
            f"images up to {MAX_PIXELS // 1_000_000} megapixels are taken."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image chatapp reads (PNG, JPEG, WebP, GIF).") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{name} is damaged: {e}.") from None
    w, h = im.size
    if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
        raise ImageError(
            f"{name} is {w} x {h} pixels; images up to {MAX_PIXELS // 1_000_000} megapixels "
            "are taken. Scale it down first."
        )
    if im.format != "GIF" and getattr(im, "is_animated", False):
        raise ImageError(
            f"{name} is an animated {im.format}; save one frame as a still image to send it."
        )
    return im


def check_image(data: bytes, *, name: str = "the image") -> ImageFile:
    """Read and fully decode `data` once (a truncated or corrupt file fails here, not
    later); returns what is stored. Raises ImageError with one line."""
    from PIL import ImageOps

    im = _open(data, name)
    fmt = str(im.format)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's notes about odd EXIF/ICC data
            im.seek(0)
            im.load()
            oriented = ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageError(f"{name} is damaged or truncated: {e}.") from None
    w, h = oriented.size
    return ImageFile(sha256_of(data), FORMATS[fmt], w, h, data)


def decode_for_model(image: ImageFile, max_side: int) -> DecodedImage:
    """RGB pixels for the encoder: oriented, the first frame, alpha over white,
    downscaled (never up) so the longest side is at most max_side."""
    rgb = _rgb(image.data, image.sha256[:12])
    if max_side > 0 and max(rgb.size) > max_side:
        from PIL import Image

        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return DecodedImage(image.sha256, rgb.width, rgb.height, rgb.tobytes())


def _rgb(data: bytes, name: str):  # type: ignore[no-untyped-def]
    from PIL import Image, ImageOps

    im = _open(data, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im.seek(0)
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            white = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(white, im)
        return im.convert("RGB")


def thumbnail_png(image: ImageFile, side: int = THUMBNAIL_SIDE) -> bytes:
    """A small PNG of the image for message views and exports."""
    im = _rgb(image.data, image.sha256[:12])
    im.thumbnail((side, side))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()
