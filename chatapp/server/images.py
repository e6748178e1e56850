"""Images in API requests: OpenAI's content parts.

A message's content may be a list of parts: {"type": "text", "text": ...} and
{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}} (the url may
also be given as a plain string). data: URLs are decoded and checked like any image
(core.images); http(s) URLs are refused unless the server was started to fetch them
(ServerConfig.fetch_image_urls, `chatapp serve --fetch-image-urls`): fetching makes the
server reach out to wherever a client points it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any

from chatapp.core.images import MAX_FILE_BYTES, ImageError, ImageFile, check_image
from chatapp.server.errors import bad_request

Fetch = Callable[[str], bytes]
_DATA_URL = re.compile(r"data:(image/[\w.+-]+)?(;[\w=-]+)*;base64,(.*)", re.S | re.I)


def _url(part: dict[str, Any]) -> str:
    inner = part.get("image_url")
    url = inner.get("url") if isinstance(inner, dict) else inner
    return url if isinstance(url, str) else ""


def image_from_url(url: str, where: str, fetch: Fetch | None) -> ImageFile:
    m = _DATA_URL.fullmatch(url.strip())
    if m:
        if len(m.group(3)) > MAX_FILE_BYTES * 4 // 3 + 4:
            raise bad_request(f"The image is larger than {MAX_FILE_BYTES // 2**20} MB.", where)
        try:
            data = base64.b64decode(m.group(3), validate=False)
        except (binascii.Error, ValueError):
            raise bad_request("The image's data: URL is not valid base64.", where) from None
    elif url.lower().startswith(("http://", "https://")):
        if fetch is None:
            raise bad_request(
                "Image URLs are not fetched by this server; send the image as a data: URL "
                "(base64), or start it with --fetch-image-urls.",
                where,
            )
        data = fetch(url)
    else:
        raise bad_request("An image_url must be a data: URL (or http(s) if allowed).", where)
    try:
        return check_image(data, name="the image")
    except ImageError as e:
        raise bad_request(e.message, where) from None


def message_content(value: Any, i: int, fetch: Fetch | None = None) -> tuple[str, list[ImageFile]]:
    """A message's text and its images. Text parts are joined as they come; images go
    before the text (as the model sees them, core.vision_prompt)."""
    if isinstance(value, str):
        return value, []
    if value is None:
        return "", []
    if not isinstance(value, list):
        raise bad_request(
            "A message's content must be a string or a list of parts.", f"messages[{i}]"
        )
    texts: list[str] = []
    images: list[ImageFile] = []
    for j, part in enumerate(value):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            images.append(image_from_url(_url(part), where, fetch))
        else:
            raise bad_request("Only text and image_url content parts are supported.", where)
    return "".join(texts), images


def http_fetcher(timeout: float = 20.0) -> Fetch:
    """GET an image over http(s), at most MAX_FILE_BYTES (for --fetch-image-urls)."""
    import httpx

    def fetch(url: str) -> bytes:
        try:
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as r:
                if r.status_code != 200:
                    raise bad_request(f"Fetching the image gave HTTP {r.status_code}.", "image_url")
                data = bytearray()
                for piece in r.iter_bytes():
                    data += piece
                    if len(data) > MAX_FILE_BYTES:
                        raise bad_request("The image is too large.", "image_url")
                return bytes(data)
        except httpx.HTTPError as e:
            raise bad_request(f"The image could not be fetched: {e}.", "image_url") from None

    return fetch
