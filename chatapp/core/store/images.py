"""The images table (migration 010_images): image bytes stored once, by sha256.

Messages name their images in meta["images"]: a list of {"sha256", "mime", "width",
"height"} (image_refs); the bytes are read from here by hash. Functions run on a
connection; the Store wraps them in its transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from chatapp.core.conversation import Message, now
from chatapp.core.images import ImageFile, sha256_of


def put(db: sqlite3.Connection, image: ImageFile) -> None:
    if sha256_of(image.data) != image.sha256:
        raise ValueError("an image's bytes do not match its sha256")
    db.execute(
        "INSERT OR IGNORE INTO images (sha256, mime, width, height, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (image.sha256, image.mime, image.width, image.height, image.data, now()),
    )


def get(db: sqlite3.Connection, sha256: str, *, with_data: bool = True) -> ImageFile | None:
    cols = "sha256, mime, width, height" + (", data" if with_data else "")
    row = db.execute(f"SELECT {cols} FROM images WHERE sha256 = ?", (sha256,)).fetchone()
    if row is None:
        return None
    data = bytes(row[4]) if with_data else b""
    return ImageFile(str(row[0]), str(row[1]), int(row[2]), int(row[3]), data)


def ref(image: ImageFile) -> dict[str, Any]:
    """What a message's meta holds about one of its images."""
    return {
        "sha256": image.sha256,
        "mime": image.mime,
        "width": image.width,
        "height": image.height,
    }


def image_refs(message: Message | dict[str, Any]) -> list[dict[str, Any]]:
    """The images a message names (stored Message or an API/role dict with "images")."""
    meta = message.meta if isinstance(message, Message) else message
    found = meta.get("images") if isinstance(meta, dict) else None
    return [r for r in found or [] if isinstance(r, dict) and isinstance(r.get("sha256"), str)]


def with_images(meta: dict[str, Any], images: Sequence[ImageFile]) -> dict[str, Any]:
    return {**meta, "images": [ref(i) for i in images]} if images else meta


def hashes(messages: Iterable[Message]) -> list[str]:
    out: list[str] = []
    for m in messages:
        out += [r["sha256"] for r in image_refs(m) if r["sha256"] not in out]
    return out
