"""Images in a prompt: where each one goes, and what Show prompt shows for it.

prepare_prompt renders and tokenizes text; images ride along as markers. Each image a
message names (meta["images"] of a stored Message, "images" of a role/content dict)
becomes a marker of its own in the message's content, "<image-NONCE-I>" (a nonce per
prompt: text a user typed never collides), on a line before the text, as llama.cpp's
own server places them. The tokenizer handed to prepare_prompt (ImageTokenizer) cuts
its text at the markers and puts the image's ids there (the engine's: a few text tokens
the model's format wants around an image, and one placeholder id per position).

Afterwards each marker in the prompt's text is replaced by a block that says what the
model got: "[image 640x480 PNG, sha256 3f2a..., 16 positions]"; PreparedPrompt.images
lists them (ImageBlock) for the token view and the receipt.

A model that cannot see gets, instead of the image, a line saying one was there
(images sent earlier in a conversation then stay readable for a text model); a new
image for such a model is refused before anything is sent (the service does that).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chatapp.core.backend import PreparedPrompt
from chatapp.core.conversation import Message
from chatapp.core.images import ImageFile, is_placeholder


@dataclass(frozen=True)
class ImageBlock:
    sha256: str
    mime: str
    width: int
    height: int
    positions: int  # context positions the image takes (mtmd's count)
    token_start: int  # index in PreparedPrompt.tokens of its first position

    @property
    def label(self) -> str:
        kind = self.mime.split("/")[-1].upper()
        return (
            f"[image {self.width}x{self.height} {kind}, sha256 {self.sha256}, "
            f"{self.positions} positions]"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "mime": self.mime,
            "width": self.width,
            "height": self.height,
            "positions": self.positions,
        }


class MissingImage(LookupError):
    pass


def _refs(item: Message | dict[str, Any]) -> list[dict[str, Any]]:
    meta = item.meta if isinstance(item, Message) else item
    found = meta.get("images") if isinstance(meta, dict) else None
    return [r for r in found or [] if isinstance(r, dict) and isinstance(r.get("sha256"), str)]


def has_images(history: Sequence[Any]) -> bool:
    return any(_refs(m) for m in history if isinstance(m, Message | dict))


def blind_note(ref: dict[str, Any]) -> str:
    w, h = ref.get("width", "?"), ref.get("height", "?")
    return f"[an image, {w}x{h}, was here: this model cannot see images]"


def with_markers(
    history: Sequence[Any], images: dict[str, ImageFile], *, can_see: bool
) -> tuple[list[Any], list[ImageFile], str]:
    """The history with each image as a marker line in its message's content (or, for
    a model that cannot see, a note); the images in marker order; the nonce."""
    nonce = secrets.token_hex(4)
    out: list[Any] = []
    order: list[ImageFile] = []
    for item in history:
        refs = _refs(item) if isinstance(item, Message | dict) else []
        if not refs:
            out.append(item)
            continue
        lines: list[str] = []
        for ref in refs:
            if not can_see:
                lines.append(blind_note(ref))
                continue
            image = images.get(ref["sha256"])
            if image is None:
                raise MissingImage(ref["sha256"])
            lines.append(f"<image-{nonce}-{len(order)}>")
            order.append(image)
        if isinstance(item, Message):
            out.append(item.with_(content="\n".join([*lines, item.content])))
        else:
            content = item.get("content")
            text = content if isinstance(content, str) else ""
            out.append({**item, "content": "\n".join([*lines, text])})
    return out, order, nonce


class ImageTokenizer:
    """The engine's tokenizer for prepare_prompt, with an image's ids where its marker
    is. encode(image) gives those ids (engine.image_tokens)."""

    def __init__(
        self,
        engine: Any,
        order: list[ImageFile],
        nonce: str,
        encode: Callable[[ImageFile], list[int]],
    ) -> None:
        self._engine = engine
        self.info = engine.info
        self._order = order
        self._rx = re.compile(rf"<image-{nonce}-(\d+)>")
        self._encode = encode
        self._ids: dict[int, list[int]] = {}

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        out: list[int] = []
        at = 0
        for m in self._rx.finditer(text):
            if m.start() > at:
                out += self._engine.tokenize(text[at : m.start()], special=special)
            i = int(m.group(1))
            if i not in self._ids:
                self._ids[i] = self._encode(self._order[i])
            out += self._ids[i]
            at = m.end()
        if at < len(text) or not out:
            out += self._engine.tokenize(text[at:], special=special) if text[at:] else []
        return out

    def token_bytes(self, token_id: int) -> bytes:
        return b"" if is_placeholder(token_id) else self._engine.token_bytes(token_id)


def finish(prompt: PreparedPrompt, order: list[ImageFile], nonce: str) -> PreparedPrompt:
    """The prompt with each marker in its text replaced by the image's block, and the
    blocks listed (PreparedPrompt.images)."""
    rx = re.compile(rf"<image-{nonce}-(\d+)>")
    blocks: list[ImageBlock] = []
    tokens = prompt.tokens
    searched = 0
    text_parts: list[str] = []
    shifts: list[tuple[int, int]] = []  # (position in the old text, characters added)
    at = 0
    for m in rx.finditer(prompt.text):
        image = order[int(m.group(1))]
        start = searched
        while start < len(tokens) and not is_placeholder(tokens[start]):
            start += 1
        end = start
        while end < len(tokens) and tokens[end] == tokens[start]:
            end += 1
        searched = end
        block = ImageBlock(image.sha256, image.mime, image.width, image.height, end - start, start)
        blocks.append(block)
        text_parts += [prompt.text[at : m.start()], block.label]
        shifts.append((m.end(), len(block.label) - (m.end() - m.start())))
        at = m.end()
    if not blocks:
        return prompt
    text_parts.append(prompt.text[at:])

    def moved(pos: int) -> int:
        return pos + sum(d for where, d in shifts if where <= pos)

    spans = tuple((moved(a), moved(b)) for a, b in prompt.text_spans)
    return replace(prompt, text="".join(text_parts), text_spans=spans, images=tuple(blocks))


def receipt_images(prompt: PreparedPrompt, stats: Any = None) -> dict[str, Any]:
    """What an answer's receipt adds about the images in its prompt: each one's hash,
    size and positions, and how many were encoded for this answer (the others came
    from the model's KV state, with the text before them)."""
    if not prompt.images:
        return {}
    encoded = int(getattr(stats, "images_encoded", 0) or 0)
    return {
        "images": [b.as_dict() for b in prompt.images],
        "images_encoded": encoded,
        "images_note": (
            f"{encoded} of {len(prompt.images)} encoded; the rest were in the model's state"
            if encoded < len(prompt.images)
            else "encoded for this answer (not in the model's state: first time, or "
            "the conversation before them changed, or the state was dropped)"
        ),
    }


def data_url(image: ImageFile) -> str:
    import base64

    return f"data:{image.mime};base64,{base64.b64encode(image.data).decode('ascii')}"


def openai_parts(
    history: Sequence[Any], messages: list[dict[str, Any]], images: dict[str, ImageFile]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """For a server that renders its own prompt (engine.remote): the OpenAI messages
    with each image as an image_url part (a data: URL) before the message's text, and
    the same messages for Show prompt, with the URL shortened to the image's hash.
    Messages are matched to the history's items by role and text, in order."""
    sent = [{k: v for k, v in m.items() if k != "images"} for m in messages]
    shown = [dict(m) for m in sent]
    at = 0
    for item in history:
        refs = _refs(item) if isinstance(item, Message | dict) else []
        if not refs:
            continue
        role = item.role.value if isinstance(item, Message) else item.get("role")
        text = item.content if isinstance(item, Message) else item.get("content", "")
        while at < len(sent) and not (
            sent[at].get("role") == role and sent[at].get("content") == text
        ):
            at += 1
        if at == len(sent):
            break
        parts: list[dict[str, Any]] = []
        short: list[dict[str, Any]] = []
        for r in refs:
            image = images.get(r["sha256"])
            if image is None:
                raise MissingImage(r["sha256"])
            parts.append({"type": "image_url", "image_url": {"url": data_url(image)}})
            short.append(
                {
                    "type": "image_url",
                    "image_url": {"url": f"data:{image.mime};base64,… (sha256 {image.sha256})"},
                }
            )
        if text:
            parts.append({"type": "text", "text": text})
            short.append({"type": "text", "text": text})
        sent[at]["content"], shown[at]["content"] = parts, short
        at += 1
    return sent, shown
