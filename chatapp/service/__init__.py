"""The Qt-free chat service: one inference thread owns the model and runs every chat
turn end to end, for the window, the CLI and the API server alike."""

from chatapp.service.chat_service import ChatService
from chatapp.service.events import LoadedModel
from chatapp.service.model_host import BackendFactory, LoadRequest, default_backend_factory
from chatapp.service.turn import ClientTurn, Completion, TurnHandle, TurnOptions

__all__ = [
    "BackendFactory",
    "ChatService",
    "ClientTurn",
    "Completion",
    "LoadRequest",
    "LoadedModel",
    "TurnHandle",
    "TurnOptions",
    "default_backend_factory",
]
