from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.engine.local import LocalBackend
from chatapp.service import ChatService, LoadRequest
from tests.fakes import ScriptedEngine


class Recorder:
    """A turn listener that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def text(self) -> str:
        from chatapp.service.events import TurnChunk

        return "".join(e.chunk.text for e in self.of(TurnChunk) if e.chunk.channel == "answer")


@pytest.fixture
def fake_service(tmp_path: Path) -> Iterator[Callable[..., ChatService]]:
    """A chat service over a scripted engine and a real SQLite file."""
    made: list[ChatService] = []

    def make(settings: Settings | None = None, **engine_kw: Any) -> ChatService:
        engines: list[ScriptedEngine] = []

        def factory(req: LoadRequest) -> LocalBackend:
            e = ScriptedEngine(path=req.ref.name, **engine_kw)
            engines.append(e)
            return LocalBackend(e, version="scripted")

        service = ChatService(tmp_path / "chat.sqlite3", settings or Settings(), factory)
        service.engines = engines  # type: ignore[attr-defined]
        service.load(LoadRequest(ModelRef.local(tmp_path / "fake.gguf"))).result(timeout=30)
        made.append(service)
        return service

    yield make
    for s in made:
        s.shutdown()
