"""The Qt-free chat service: one inference thread owns the model and runs every chat
turn end to end, for the window, the CLI and the API server alike."""

from chatapp.service.chat_service import (
    BackendFactory,
    ChatService,
    ClientTurn,
    LoadRequest,
    TurnHandle,
    TurnOptions,
    default_backend_factory,
)
from chatapp.service.events import LoadedModel

__all__ = [
    "BackendFactory",
    "ChatService",
    "ClientTurn",
    "LoadRequest",
    "LoadedModel",
    "TurnHandle",
    "TurnOptions",
    "default_backend_factory",
]
