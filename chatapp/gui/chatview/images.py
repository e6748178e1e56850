"""Thumbnails of a message's images in the message view.

A message names its images in meta["images"] (core.store.images); the row's body shows
each as a thumbnail (a PNG data: URL, which Qt's rich text reads) inside a link
"chatapp-image:SHA256", so a click opens it at full size (gui.image_attach).

Thumbnails are made once per image and kept here by sha256: an image never changes
under its hash, so this is a cache, not state. `source` (set by gui.image_attach)
reads an image's bytes; without one, or for an image not in the database, the
message shows the image's size and hash instead.
"""

from __future__ import annotations

import base64
import html
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from chatapp.core.conversation import Message
from chatapp.core.images import ImageError, ImageFile, thumbnail_png

log = logging.getLogger(__name__)

SCHEME = "chatapp-image:"
KEPT = 256
_thumbs: OrderedDict[str, tuple[str, int, int]] = OrderedDict()  # sha -> (data URL, w, h)
source: Callable[[str], ImageFile | None] | None = None


def refs(msg: Message) -> list[dict[str, Any]]:
    found = msg.meta.get("images")
    return [r for r in found or [] if isinstance(r, dict) and isinstance(r.get("sha256"), str)]


def remember(image: ImageFile) -> tuple[str, int, int] | None:
    """The image's thumbnail (made now if it is new)."""
    got = _thumbs.get(image.sha256)
    if got is not None:
        _thumbs.move_to_end(image.sha256)
        return got
    try:
        png = thumbnail_png(image)
    except ImageError as e:
        log.warning("no thumbnail for %s: %s", image.sha256[:12], e)
        return None
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        w, h = im.size
    got = ("data:image/png;base64," + base64.b64encode(png).decode("ascii"), w, h)
    _thumbs[image.sha256] = got
    while len(_thumbs) > KEPT:
        _thumbs.popitem(last=False)
    return got


def _thumb(sha: str) -> tuple[str, int, int] | None:
    got = _thumbs.get(sha)
    if got is not None or source is None:
        return got
    try:
        image = source(sha)
    except Exception as e:  # a locked or damaged database: the label instead  # noqa: BLE001
        log.warning("image %s could not be read: %s", sha[:12], e)
        return None
    return remember(image) if image is not None else None


def label(r: dict[str, Any]) -> str:
    kind = str(r.get("mime", "image/?")).split("/")[-1].upper()
    return f"image {r.get('width', '?')}x{r.get('height', '?')} {kind}, sha256 {r['sha256'][:12]}…"


def images_html(msg: Message) -> str:
    """The thumbnails above a message's text ("" for a message without images)."""
    parts = []
    for r in refs(msg):
        sha = r["sha256"]
        text = html.escape(label(r))
        got = _thumb(sha)
        if got is None:
            parts.append(f'<a href="{SCHEME}{sha}">[{text}]</a>')
        else:
            url, w, h = got
            parts.append(
                f'<a href="{SCHEME}{sha}"><img src="{url}" width="{w}" height="{h}" '
                f'alt="{text}" title="{text}"></a>'
            )
    return ("<p>" + "&nbsp;".join(parts) + "</p>") if parts else ""
