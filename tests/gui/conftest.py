from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.engine.local import LocalBackend
from chatapp.paths import app_paths
from tests.fakes import ScriptedEngine


@pytest.fixture
def fake_model_file(tmp_path: Path) -> Path:
    p = tmp_path / "fake-model.gguf"
    p.write_bytes(b"GGUF")  # the scripted engine never reads it
    return p


@pytest.fixture
def make_window(qtbot) -> Callable[..., object]:
    from chatapp.gui.chat_session import ChatSession
    from chatapp.gui.mainwindow import MainWindow

    made = []

    def make(engine_factory=None, extensions=(), **engine_kw):
        paths = app_paths().ensure()
        store = Store(paths.database)
        settings = Settings.load(paths.settings)
        engines: list[ScriptedEngine] = []

        def factory(req):
            e = ScriptedEngine(path=req.ref.name, **engine_kw)
            engines.append(e)
            return LocalBackend(e)

        session = ChatSession(store, settings, engine_factory or factory)
        w = MainWindow(store, settings, paths, session, extensions=extensions)
        w.engines = engines
        qtbot.addWidget(w)
        w.show()
        made.append(w)
        return w

    yield make
    for w in made:
        if w.isVisible():
            w.close()
        w.store.close()
