"""The factory make_window needs for the real llama.cpp model, wherever this tree keeps it
(chatapp.service after the chat-service change, chatapp.gui.worker before it)."""

from __future__ import annotations

from typing import Any


def real_factory() -> Any:
    try:
        from chatapp.service import default_backend_factory  # type: ignore[attr-defined]
    except ImportError:
        from chatapp.gui.worker import default_engine_factory as default_backend_factory
    return default_backend_factory
