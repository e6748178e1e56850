"""Which Hugging Face token to send: HF_TOKEN, the `huggingface-cli login` token, or settings."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def find_token(settings_token: str | None = None) -> str | None:
    """The token to use, or None (public repositories need none)."""
    env = os.environ.get("HF_TOKEN", "").strip()
    if env:
        return env
    try:
        from huggingface_hub import get_token

        stored = get_token()
    except Exception as e:  # a broken token file must not stop downloads of public models  # noqa: BLE001
        log.warning("could not read the huggingface_hub token: %s", e)
        stored = None
    if stored:
        return stored
    return (settings_token or "").strip() or None
