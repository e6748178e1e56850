"""A window with the app's tools (the real registry) for the tool tests."""

from __future__ import annotations

from typing import Any

from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.engine.local import LocalBackend
from chatapp.gui.chat_session import ChatSession
from chatapp.gui.mainwindow import MainWindow
from chatapp.paths import app_paths
from chatapp.tools.registry import ToolRegistry
from tests.fakes import ScriptedEngine

EXTENSIONS = (
    "chatapp.gui.chat_settings_panel",
    "chatapp.gui.tools_window",
    "chatapp.gui.template_actions",
)
CALL = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+3"}}\n</tool_call>'


class Replies(ScriptedEngine):
    """Each generate() answers with the next of `replies` (then "nothing more")."""

    def __init__(self, replies: list[str], **kw: Any) -> None:
        super().__init__(**kw)
        self.replies = list(replies)
        self.grammars: list[Any] = []

    def generate(self, prompt: list[int], params: Any, cancel: Any, **kw: Any) -> Any:
        self.reply = self.replies.pop(0) if self.replies else "nothing more"
        self.grammars.append(kw.pop("grammar", None))
        return super().generate(prompt, params, cancel, **kw)


def decoded(engine: ScriptedEngine, i: int) -> str:
    return bytes(t - 1 for t in engine.prompts[i]).decode("utf-8")


def tools_window(
    qtbot: Any, backend_factory: Any = None, replies: list[str] | None = None, **kw: Any
) -> Any:
    paths = app_paths().ensure()
    store = Store(paths.database)
    settings = Settings.load(paths.settings)
    engines: list[Replies] = []

    def factory(req: Any) -> LocalBackend:
        e = Replies(list(replies or []), path=req.ref.name, **kw)
        engines.append(e)
        return LocalBackend(e)

    registry = ToolRegistry(paths.config, scratch_dir=paths.data / "tool-scratch")
    session = ChatSession(store, settings, backend_factory or factory, tools=registry)
    w = MainWindow(store, settings, paths, session, extensions=EXTENSIONS)
    w.engines = engines
    qtbot.addWidget(w)
    w.show()
    return w


def load(qtbot: Any, w: Any, path: Any, timeout: int = 10_000) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=timeout):
        w.open_model(str(path))


def send_and_wait_started(qtbot: Any, w: Any, text: str, timeout: int = 20_000) -> None:
    with qtbot.waitSignal(w.session.reply_started, timeout=timeout):
        w.input.setPlainText(text)
        w.send_button.click()


def close(w: Any) -> None:
    if w.isVisible():
        w.close()
    w.store.close()
