"""A real uvicorn server on 127.0.0.1 (a free port, on a thread) over a chat service
with the real SmolLM2, and the official openai client pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.server import ServerConfig, ServerThread, create_app
from chatapp.service import ChatService, LoadRequest
from tests.gui.conftest import fake_model_file, make_window  # noqa: F401  (fixtures used here)
from tests.service.conftest import fake_service  # noqa: F401  (fixture used here)

WAIT = 300
MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture(scope="module")
def smol(tmp_path_factory: pytest.TempPathFactory, smollm2_path: Path) -> Iterator[ChatService]:
    db = tmp_path_factory.mktemp("api") / "chat.sqlite3"
    service = ChatService(db, Settings())
    service.load(LoadRequest(ModelRef.local(smollm2_path), n_threads=2)).result(WAIT)
    yield service
    service.shutdown()


@pytest.fixture
def serve(smol: ChatService) -> Iterator[Callable[..., str]]:
    """serve(**config) -> the server's base URL (…/v1)."""
    started: list[ServerThread] = []

    def start(**config: Any) -> str:
        server = ServerThread(create_app(smol, ServerConfig(**config))).start()
        started.append(server)
        return server.url + "/v1"

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def api(serve: Callable[..., str]) -> str:
    return serve()


_CLIENTS: list[Any] = []


def client(base_url: str, key: str = "unused") -> Any:
    """An openai client, closed when the test ends (an unclosed one leaks its socket)."""
    import openai

    made = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=WAIT)
    _CLIENTS.append(made)
    return made


@pytest.fixture(autouse=True)
def _close_clients() -> Any:
    yield
    while _CLIENTS:
        _CLIENTS.pop().close()
