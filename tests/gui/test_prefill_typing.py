"""Issue 20 item 2, the window's part: opening a chat and typing ask the service to
prefill the next send's prompt (debounced); nothing is asked while an answer streams."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt

from chatapp.engine.local import LocalBackend
from tests.fakes import ScriptedEngine


class PrefillEngine(ScriptedEngine):
    """The scripted engine, recording what it was asked to prefill."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.prefilled: list[tuple[str, str | None]] = []

    def prefill(self, tokens: list[int], cache_key: str | None, should_stop: Any) -> int:
        self.prefilled.append((bytes(t - 1 for t in tokens).decode(), cache_key))
        return len(tokens)


def test_typing_prefills_the_next_prompt(qtbot, make_window, fake_model_file) -> None:
    engines: list[PrefillEngine] = []

    def factory(req: Any) -> LocalBackend:
        engines.append(PrefillEngine(path=req.ref.name, reply="first"))
        return LocalBackend(engines[-1])

    w = make_window(engine_factory=factory, extensions=("chatapp.gui.prefill_typing",))
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.input.setPlainText("Q")
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    conv = w.current_conversation_id()
    engine = engines[0]
    engine.prefilled.clear()
    qtbot.keyClicks(w.input, "How are")
    want = ("<|user|>Q<|end|><|assistant|>first<|end|><|user|>How are<|end|><|assistant|>", conv)
    qtbot.waitUntil(lambda: want in engine.prefilled, timeout=10000)
    # opening the chat again prefills what is typed in it
    engine.prefilled.clear()
    w.input.clear()
    w.session.select_conversation(conv)
    want = ("<|user|>Q<|end|><|assistant|>first<|end|><|assistant|>", conv)
    qtbot.waitUntil(lambda: want in engine.prefilled, timeout=10000)
