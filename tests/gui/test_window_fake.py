"""Fast GUI tests of the real window driven by a scripted engine."""

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog

from chatapp.core.conversation import FinishReason, Role
from chatapp.gui.conversation_list import ConversationListModel


def _load(qtbot, w, path):
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(path))


def _send(qtbot, w, text):
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)


def test_send_streams_saves_and_lists(qtbot, make_window, fake_model_file):
    w = make_window(reply="**Bold** answer with `code`.")
    _load(qtbot, w, fake_model_file)
    assert w.model_label.text() == fake_model_file.name  # the file's name, not general.name
    assert fake_model_file.name in w.windowTitle()
    _send(qtbot, w, "Hello there")
    assert w.input.toPlainText() == ""
    conv_id = w.current_conversation_id()
    thread = w.store.active_thread(conv_id)
    assert [m.role for m in thread] == [Role.USER, Role.ASSISTANT]
    assert thread[1].content == "**Bold** answer with `code`."
    assert thread[1].finish_reason is FinishReason.STOP
    body = w.message_view.row_layout(thread[1].id).html
    assert "<strong>Bold</strong>" in body and "<code>code</code>" in body
    assert w.conversations.rowCount() == 1
    assert w.conversations.data(w.conversations.index(0)) == "Hello there"
    # the prompt the engine got is the template rendering of the conversation
    prompt = bytes(t - 1 for t in w.engines[0].prompts[-1]).decode()
    assert prompt == "<|user|>Hello there<|end|><|assistant|>"
    assert "context" in w.status_context.text()


def test_shift_enter_makes_a_new_line_and_does_not_send(qtbot, make_window, fake_model_file):
    w = make_window()
    _load(qtbot, w, fake_model_file)
    w.input.setPlainText("line one")
    w.input.moveCursor(w.input.textCursor().MoveOperation.End)
    qtbot.keyClick(w.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert w.input.toPlainText() == "line one\n"
    assert w.store.count_conversations() == 0


def test_stop_keeps_the_partial_answer(qtbot, make_window, fake_model_file):
    w = make_window(reply="word " * 2000, delay=0.002)
    _load(qtbot, w, fake_model_file)
    w.input.setPlainText("Tell me a long story")
    with qtbot.waitSignal(w.session.reply_finished, timeout=30000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
        qtbot.waitUntil(
            lambda: len(w.session._streaming.text) > 20 if w.session._streaming else False
        )
        qtbot.keyClick(w, Qt.Key.Key_Escape)
    answer = w.store.active_thread(w.current_conversation_id())[-1]
    assert answer.finish_reason is FinishReason.CANCELLED
    assert 20 <= len(answer.content) < len("word " * 2000)
    assert not w.session.busy and w.send_button.isEnabled()


def test_regenerate_adds_a_branch(qtbot, make_window, fake_model_file):
    w = make_window(reply="first")
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "Q")
    w.engines[0].reply = "second"
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        w.regenerate_button.click()
    cid = w.current_conversation_id()
    assert [m.content for m in w.store.active_thread(cid)] == ["Q", "second"]
    answers = [m for m in w.store.messages(cid) if m.role is Role.ASSISTANT]
    assert [a.content for a in answers] == ["first", "second"]
    assert answers[0].parent_id == answers[1].parent_id
    assert [x.text for x in w.message_view.widgets()] == ["Q", "second"]


def test_rename_delete_and_most_recent_first(qtbot, make_window, fake_model_file, monkeypatch):
    w = make_window(reply="ok")
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "older chat")
    w.session.new_conversation()
    _send(qtbot, w, "newer chat")
    titles = [w.conversations.data(w.conversations.index(r)) for r in range(2)]
    assert titles == ["newer chat", "older chat"]
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Renamed", True))
    w.rename_action.trigger()  # saved by the service, which tells the list
    qtbot.waitUntil(lambda: w.conversations.data(w.conversations.index(0)) == "Renamed")
    assert w.store.get_conversation(w.current_conversation_id()).title == "Renamed"
    # delete: to the trash at once, with Undo offered
    w.delete_action.trigger()
    qtbot.waitUntil(lambda: w.store.count_conversations() == 1)
    qtbot.waitUntil(lambda: w.conversations.rowCount() == 1)
    assert w.conversations.data(w.conversations.index(0)) == "older chat"
    assert w.message_view.widgets() == []
    assert w.message_bar.label.text() == "Deleted “Renamed”."


def test_selecting_a_conversation_shows_it(qtbot, make_window, fake_model_file):
    w = make_window(reply="answer A")
    _load(qtbot, w, fake_model_file)
    _send(qtbot, w, "question A")
    first = w.current_conversation_id()
    w.session.new_conversation()
    w.engines[0].reply = "answer B"
    _send(qtbot, w, "question B")
    w.conversation_view.setCurrentIndex(w.conversations.index(1))
    assert w.current_conversation_id() == first
    assert [x.text for x in w.message_view.widgets()] == ["question A", "answer A"]


def test_bad_model_file_shows_a_message_and_keeps_the_conversation(qtbot, make_window, tmp_path):
    from chatapp.engine.llama import LlamaEngine  # the real adapter rejects it before llama.cpp
    from chatapp.service import default_backend_factory

    w = make_window(engine_factory=default_backend_factory)
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are not weights")
    with qtbot.waitSignal(w.session.model_failed, timeout=10000):
        w.open_model(str(bad))
    assert w.message_bar.isVisible()
    assert "not a GGUF model file" in w.message_bar.label.text()
    assert LlamaEngine  # imported: the adapter module loads without touching the file
    w.open_model(str(tmp_path / "missing.gguf"))
    assert "No such file" in w.message_bar.label.text()


def test_conversation_list_model_passes_qtmodeltester(qtmodeltester, tmp_path):
    from chatapp.core.store import Store

    store = Store(tmp_path / "db.sqlite3")
    for i in range(250):
        store.create_conversation(f"chat {i}", created_at=i)
    model = ConversationListModel(store)
    assert model.rowCount() == 100 and model.canFetchMore()  # one page, not all 250
    model.fetchMore()
    model.fetchMore()
    assert model.rowCount() == 250 and not model.canFetchMore()
    assert model.data(model.index(0)) == "chat 249"
    qtmodeltester.check(model)
    store.close()


def test_send_without_model_says_so(qtbot, make_window):
    w = make_window()
    w.input.setPlainText("hi")
    qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert "No model" in w.message_bar.label.text()
    assert w.input.toPlainText() == "hi"  # nothing lost


def test_default_model_is_saved_and_used_for_new_chats(
    qtbot, make_window, fake_model_file, tmp_path
):
    w = make_window(reply="ok")
    _load(qtbot, w, fake_model_file)
    w.default_model_action.setChecked(True)
    assert w.settings.default_model == str(fake_model_file.resolve())
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    _load(qtbot, w, other)
    assert not w.default_model_action.isChecked()
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.new_action.trigger()
    assert w.session.model.info.path == str(fake_model_file.resolve())


def test_a_failed_answer_keeps_the_question_and_says_why(qtbot, make_window, fake_model_file):
    from chatapp.core.errors import ContextFullError
    from chatapp.engine.local import LocalBackend
    from tests.fakes import ScriptedEngine

    class FullEngine(ScriptedEngine):
        def generate(self, prompt, params, cancel, **_kw):
            raise ContextFullError("The conversation no longer fits in the context.")

    w = make_window(engine_factory=lambda req: LocalBackend(FullEngine(path=req.ref.name)))
    _load(qtbot, w, fake_model_file)
    w.input.setPlainText("a question")
    with qtbot.waitSignal(w.session.reply_finished, timeout=10000):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    cid = w.current_conversation_id()
    assert [(m.role, m.content) for m in w.store.active_thread(cid)] == [(Role.USER, "a question")]
    assert len(w.store.messages(cid)) == 1
    assert "no longer fits" in w.message_bar.label.text()
    assert not w.session.busy


def test_the_window_fits_the_screen_it_opens_on(qtbot, make_window):
    from PySide6.QtCore import QSize

    from chatapp.gui.mainwindow import first_size

    w = make_window()
    free = w.screen().availableGeometry()
    assert w.width() <= free.width() and w.height() <= free.height()
    # a geometry saved on a bigger monitor comes back inside this screen
    w.resize(4000, 3000)
    w.close()
    again = make_window()
    assert again.width() <= free.width() and again.height() <= free.height()
    assert first_size(None) == QSize(1100, 760)
    assert first_size(again.screen(), QSize(300, 200)) == QSize(300, 200)
