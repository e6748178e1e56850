"""Images in exports and imports.

A message names its images in meta["images"] (hash, format, size: core.store.images);
for an export the loader adds each image's bytes there as base64 (with_image_data), so
the pure writers can use them:

- JSON: meta keeps the images, each with its sha256 and "data_base64" (the bytes);
  an import checks the bytes against the hash and stores them once (take_image_data).
- HTML and PDF: each image embedded (a data: URL) above the message's text.
- Markdown and text: a line that says where an image was, with its size and hash.
"""

from __future__ import annotations

import base64
import binascii
import html
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from chatapp.core.conversation import Message
from chatapp.core.images import ImageError, ImageFile, check_image

log = logging.getLogger(__name__)

DATA_KEY = "data_base64"


class _Images(Protocol):
    def get_image(self, sha256: str, *, with_data: bool = True) -> ImageFile | None: ...


def _refs(m: Message) -> list[dict[str, Any]]:
    found = m.meta.get("images")
    return [r for r in found or [] if isinstance(r, dict) and isinstance(r.get("sha256"), str)]


def with_image_data(store: _Images, messages: Sequence[Message]) -> list[Message]:
    """The messages with each image's bytes in its meta entry (for the writers)."""
    out: list[Message] = []
    for m in messages:
        refs = _refs(m)
        if not refs:
            out.append(m)
            continue
        filled = []
        for r in refs:
            image = store.get_image(r["sha256"])
            entry = {k: v for k, v in r.items() if k != DATA_KEY}
            if image is not None:
                entry[DATA_KEY] = base64.b64encode(image.data).decode("ascii")
            filled.append(entry)
        out.append(m.with_(meta={**m.meta, "images": filled}))
    return out


def label(r: dict[str, Any]) -> str:
    kind = str(r.get("mime", "image/?")).split("/")[-1].upper()
    return f"[image {r.get('width', '?')}x{r.get('height', '?')} {kind}, sha256 {r['sha256']}]"


def text_lines(m: Message) -> list[str]:
    """Markdown and text: where each image was (its bytes are not in these formats)."""
    return [label(r) for r in _refs(m)]


def html_figures(m: Message) -> str:
    out = []
    for r in _refs(m):
        caption = html.escape(label(r))
        data = r.get(DATA_KEY)
        if isinstance(data, str) and data:
            mime = html.escape(str(r.get("mime", "image/png")))
            w, h = int(r.get("width") or 0), int(r.get("height") or 0)
            scale = min(1.0, 480 / max(w, h, 1))
            size = f' width="{round(w * scale)}" height="{round(h * scale)}"' if w and h else ""
            out.append(
                f'<figure class="image"><img src="data:{mime};base64,{data}" alt="{caption}"'
                f"{size}><figcaption>{caption}</figcaption></figure>"
            )
        else:
            out.append(f'<p class="image missing">{caption} (not in the database)</p>')
    return "".join(out)


def take_image_data(messages: Sequence[Message]) -> tuple[list[Message], list[ImageFile]]:
    """An import's messages without the bytes in their meta, and the images to store:
    only bytes that are an image and match their sha256 (others are left out, the
    message still names the image)."""
    images: dict[str, ImageFile] = {}
    out: list[Message] = []
    for m in messages:
        refs = _refs(m)
        if not refs:
            out.append(m)
            continue
        kept = []
        for r in refs:
            data = r.get(DATA_KEY)
            entry = {k: v for k, v in r.items() if k != DATA_KEY}
            if isinstance(data, str) and r["sha256"] not in images:
                try:
                    image = check_image(base64.b64decode(data, validate=True))
                except (ImageError, binascii.Error, ValueError) as e:
                    log.warning("import: image %s left out: %s", r["sha256"][:12], e)
                else:
                    if image.sha256 == r["sha256"]:
                        images[image.sha256] = image
                    else:
                        log.warning("import: image %s does not match its hash", r["sha256"][:12])
            kept.append(entry)
        out.append(m.with_(meta={**m.meta, "images": kept}))
    return out, list(images.values())
