"""Images in turns: what the service does with them around the one pipeline.

A send with images (TurnOptions.images, already read and checked by core.images) is
refused before anything is stored when the loaded model cannot see; otherwise the
images are stored once by sha256 and named in the user message's meta. Every turn's
request carries the bytes of the images its history names (ChatRequest.images), read
from the store on its thread, so the backend never reads the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatapp.core.backend import ModelRef
from chatapp.core.conversation import Message
from chatapp.core.errors import UserError
from chatapp.core.images import ImageFile
from chatapp.core.store import Store
from chatapp.core.store import images as store_images
from chatapp.service.events import LoadedModel


class CannotSee(UserError):
    """An image for a model that reads text only."""


def refuse_blind(loaded: LoadedModel | None, images: Sequence[ImageFile]) -> None:
    if not images or loaded is None:
        return
    if getattr(loaded.capabilities, "vision", False):
        return
    ref: ModelRef = loaded.ref
    name = Path(ref.name).name if ref.is_local else ref.label
    hint = (
        "Put its projector (mmproj-*.gguf) beside the model file, or choose a vision model."
        if ref.is_local
        else ""
    )
    raise CannotSee(
        f"{name} cannot see images: it was loaded without a vision projector. Nothing was sent.",
        hint=hint,
    )


def images_for(
    store: Store, history: Sequence[Message | dict[str, Any]], given: Sequence[ImageFile] = ()
) -> dict[str, ImageFile]:
    """The bytes of every image the history names, by sha256 (given ones first)."""
    out = {i.sha256: i for i in given}
    for item in history:
        for ref in store_images.image_refs(item):
            sha = ref["sha256"]
            if sha not in out:
                image = store.get_image(sha)
                if image is not None:
                    out[sha] = image
    return out
