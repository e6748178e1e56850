"""Images in messages: reading and checking files (core.images) and storing them once by
sha256 (core.store.images, migration 010_images)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from chatapp.core.images import (
    ImageError,
    check_image,
    decode_for_model,
    placeholder_id,
    read_image_file,
    sha256_of,
    thumbnail_png,
)
from chatapp.core.store import Store
from chatapp.core.store import images as store_images


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels in a few bytes (what a decompression bomb does)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "fmt,mime",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_the_four_formats_are_read(fmt, mime):
    data = encode(Image.new("RGB", (30, 20), (10, 120, 240)), fmt)
    image = check_image(data)
    assert (image.mime, image.width, image.height) == (mime, 30, 20)
    assert image.sha256 == sha256_of(data)
    seen = decode_for_model(image, 0)
    assert len(seen.rgb) == 30 * 20 * 3


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (40, 10), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image = check_image(encode(im, "JPEG", exif=exif))
    assert (image.width, image.height) == (10, 40)
    seen = decode_for_model(image, 0)
    assert (seen.width, seen.height) == (10, 40)


def test_a_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    seen = decode_for_model(check_image(data), 0)
    r, _g, b = seen.rgb[:3]
    assert r > 200 and b < 50


def test_alpha_goes_over_white_and_large_images_are_downscaled():
    im = Image.new("RGBA", (1000, 500), (0, 0, 0, 0))
    seen = decode_for_model(check_image(encode(im, "PNG")), 336)
    assert (seen.width, seen.height) == (336, 168)
    assert seen.rgb[:3] == b"\xff\xff\xff"


@pytest.mark.parametrize(
    "data,said",
    [
        (b"hello, I am text\n" * 10, "not an image"),
        (b"", "empty"),
        (png_header_only(20_000, 20_000), "too many pixels (400 megapixels)"),
        (png_header_only(9_000, 9_000), "9000 x 9000 pixels"),
        (png_header_only(60_000, 60_000), "decompression bomb"),
        (b"\x89PNG\r\n\x1a\n" + b"\x13" * 200, "not an image"),
    ],
)
def test_bad_input_is_one_clear_line(data, said):
    with pytest.raises(ImageError) as e:
        check_image(data, name="x.png")
    assert said in str(e.value)
    assert "\n" not in str(e.value)


def test_a_truncated_file_is_refused():
    data = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match="damaged|truncated"):
        check_image(data[: len(data) // 2], name="cut.png")
    jpeg = encode(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="damaged|truncated"):
        check_image(jpeg[: len(jpeg) // 3], name="cut.jpg")


def test_animated_png_and_webp_are_refused():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    for fmt in ("PNG", "WEBP"):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
        with pytest.raises(ImageError, match="animated"):
            check_image(data, name=f"anim.{fmt.lower()}")


def test_other_formats_are_refused():
    with pytest.raises(ImageError, match="PNG, JPEG, WebP, GIF"):
        check_image(encode(Image.new("RGB", (4, 4)), "BMP"), name="x.bmp")


def test_read_image_file_says_what_is_wrong(tmp_path: Path):
    with pytest.raises(ImageError, match="no such file"):
        read_image_file(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="folder"):
        read_image_file(tmp_path)
    p = tmp_path / "a.png"
    p.write_bytes(encode(Image.new("RGB", (5, 5)), "PNG"))
    assert read_image_file(p).width == 5


def test_placeholder_ids_are_negative_and_follow_the_image():
    a, b = sha256_of(b"a"), sha256_of(b"b")
    assert placeholder_id(a) < 0 and placeholder_id(a) == placeholder_id(a) != placeholder_id(b)
    assert placeholder_id("f" * 64) >= -(2**31)


def test_thumbnail_is_a_small_png():
    image = check_image(encode(Image.new("RGB", (800, 400), (1, 2, 3)), "PNG"))
    thumb = Image.open(io.BytesIO(thumbnail_png(image)))
    assert thumb.format == "PNG" and max(thumb.size) == 160


def test_images_are_stored_once_by_hash_and_named_by_messages(tmp_path: Path):
    data = encode(Image.new("RGB", (12, 7), (5, 5, 5)), "PNG")
    image = check_image(data)
    with Store(tmp_path / "c.db") as s:
        c = s.create_conversation("pics")
        s.put_images([image])
        s.put_images([image])  # the same picture again: one row
        m = s.add_message(c.id, "user", "look", meta=store_images.with_images({}, [image]))
        got = s.get_image(image.sha256)
        assert got is not None and got.data == data and (got.width, got.height) == (12, 7)
        assert s._db.execute("SELECT count(*) FROM images").fetchone()[0] == 1
        again = s.messages(c.id)[0]
        assert store_images.image_refs(again) == [store_images.ref(image)]
        assert store_images.hashes([again]) == [image.sha256]
        assert s.get_image("0" * 64) is None
        assert m.id == again.id


def test_an_image_whose_bytes_do_not_match_its_hash_is_not_stored(tmp_path: Path):
    image = check_image(encode(Image.new("RGB", (3, 3)), "PNG"))
    from dataclasses import replace

    with Store(tmp_path / "c.db") as s, pytest.raises(ValueError):
        s.put_images([replace(image, data=image.data + b"x")])
