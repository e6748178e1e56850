"""Models > Use a model on a server…: list a real server's models (our own API over a
scripted engine, on 127.0.0.1), load one, chat with it in the window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatapp.core.backend import ModelRef
from chatapp.core.settings import Settings
from chatapp.engine.local import LocalBackend
from chatapp.server import ServerThread, create_app
from chatapp.service import ChatService, LoadRequest, default_backend_factory
from tests.fakes import ScriptedEngine


@pytest.fixture
def far_server(tmp_path: Path) -> Iterator[str]:
    """Another machine's server, as far as the window can tell."""

    def factory(req: LoadRequest) -> LocalBackend:
        return LocalBackend(ScriptedEngine(path=req.ref.name, reply="Hello from afar."))

    service = ChatService(tmp_path / "far.sqlite3", Settings(), factory)
    service.load(LoadRequest(ModelRef.local(tmp_path / "big-model.gguf"))).result(30)
    server = ServerThread(create_app(service)).start()
    yield server.url + "/v1"
    server.stop()
    service.shutdown()


def _factory(req: LoadRequest):  # remote refs through the real factory, local ones scripted
    if not req.ref.is_local:
        return default_backend_factory(req)
    return LocalBackend(ScriptedEngine(path=req.ref.name))


def test_pick_a_server_model_and_chat(make_window, far_server: str, qtbot) -> None:
    from chatapp.gui.remote_actions import RemoteDialog, use_remote

    w = make_window(engine_factory=_factory, extensions=("chatapp.gui.remote_actions",))
    assert w.remote_action.text() == "Use a model on a server…"
    dialog = RemoteDialog(w, w)
    dialog.url.setText(far_server)
    dialog.list_button.click()
    qtbot.waitUntil(lambda: dialog.models.count() == 1, timeout=10_000)
    assert dialog.models.currentText() == "big-model"
    ref, key = dialog.chosen()
    with qtbot.waitSignal(w.session.model_loaded, timeout=10_000) as loaded:
        use_remote(w, ref, key)
    assert loaded.args[0].ref == ModelRef("big-model", endpoint=far_server)
    assert loaded.args[0].capabilities.tokens is False

    with qtbot.waitSignal(w.session.reply_finished, timeout=10_000) as finished:
        w.session.send("Hi there")
    message = w.store.get_message(finished.args[0])
    assert message.content == "Hello from afar."
    conv = w.store.get_conversation(message.conversation_id)
    assert conv.model_path == f"remote:{far_server}#big-model"


def test_an_unreachable_server_is_one_line_in_the_dialog(make_window, qtbot) -> None:
    from chatapp.gui.remote_actions import RemoteDialog

    w = make_window(extensions=())
    dialog = RemoteDialog(w, w)
    dialog.url.setText("http://127.0.0.1:9/v1")
    dialog.list_button.click()
    qtbot.waitUntil(lambda: dialog.list_button.isEnabled(), timeout=15_000)
    assert dialog.status.text().startswith("Cannot reach http://127.0.0.1:9/v1")
    assert dialog.models.count() == 0
