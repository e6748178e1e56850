"""The local OpenAI-compatible API: an ASGI app (Starlette) over the chat service."""

from chatapp.server.app import ServerConfig, create_app, model_id
from chatapp.server.run import ServerThread, check_binding, is_loopback

__all__ = ["ServerConfig", "ServerThread", "check_binding", "create_app", "is_loopback", "model_id"]
