"""Documents in the window, after the send (scripted engine): a question shows the files
attached to it, from its own record, also in a window opened later; Settings > Documents
sets RAG-Fusion's rephrasings and the next send uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl

from chatapp.core.settings import Settings
from chatapp.gui.documents_settings import DocumentsSettingsPage
from chatapp.paths import app_paths
from chatapp.service.documents import REPHRASE
from tests.docs_corpus import make_corpus

EXTENSIONS = (
    "chatapp.gui.chat_settings_panel",
    "chatapp.gui.settings_dialog",
    "chatapp.gui.documents_actions",
)


def _window(qtbot: Any, make_window: Any, model: Path) -> Any:
    w = make_window(extensions=EXTENSIONS)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(model))
    return w


def _send(qtbot: Any, w: Any, text: str) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000) as done:
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    return str(done.args[0])


def _prompts(w: Any) -> list[str]:
    return [bytes(t - 1 for t in p).decode() for p in w.engines[-1].prompts]


def _html(w: Any, message_id: str) -> str:
    return str(w.message_view.row_layout(message_id).html)


def test_a_sent_question_shows_its_files_also_when_the_chat_is_opened_again(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    w = _window(qtbot, make_window, fake_model_file)
    note, other = tmp_path / "note.md", tmp_path / "todo.txt"
    note.write_text("# Note\n\nThe spare key is under the blue flowerpot.\n")
    other.write_text("Water the plants on Sunday.\n")
    w.documents.attachments.add([note, other])
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 2, timeout=10000)
    answer = w.store.get_message(_send(qtbot, w, "Where is the spare key?"))
    question = w.store.get_message(answer.parent_id)
    assert [f["name"] for f in question.meta["attachments"]] == ["note.md", "todo.txt"]
    assert question.meta["attachments"][0]["size"] == note.stat().st_size
    html = _html(w, question.id)
    assert "Attached:" in html
    assert f'href="{QUrl.fromLocalFile(str(note)).toString()}"' in html and "todo.txt" in html
    assert "Attached:" not in _html(w, answer.id)  # the answer has its Sources line
    assert "Sources:" in _html(w, answer.id)
    # a question without files shows none
    later = w.store.get_message(_send(qtbot, w, "Thanks"))
    assert "Attached:" not in _html(w, later.parent_id)

    # an edit of the question keeps its files (and the turn reads them again)
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.session.edit_message(question.id, "Where exactly is the spare key?")
    assert "[1] note.md (whole file)" in _prompts(w)[-1]
    thread = w.store.active_thread(w.current_conversation_id())
    edited = thread[-2]
    assert edited.content == "Where exactly is the spare key?"
    assert [f["name"] for f in edited.meta["attachments"]] == ["note.md", "todo.txt"]

    # the chat opened in a new window: read from what is stored; a file gone is said
    cid = w.current_conversation_id()
    w.close()
    other.unlink()
    w2 = make_window(extensions=EXTENSIONS)
    w2.session.select_conversation(cid)
    html = _html(w2, edited.id)
    assert "Attached:" in html and QUrl.fromLocalFile(str(note)).toString() in html
    assert "todo.txt" in html and "no longer there" in html
    assert QUrl.fromLocalFile(str(other)).toString() not in html  # no link to nothing


def _documents_page(dialog: Any) -> DocumentsSettingsPage:
    titles = [dialog.tabs.tabText(i) for i in range(dialog.tabs.count())]
    page = dialog.tabs.widget(titles.index("Documents"))
    assert isinstance(page, DocumentsSettingsPage)
    return page


def test_settings_set_the_rephrasings_and_the_next_send_uses_them(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    w = _window(qtbot, make_window, fake_model_file)
    d = w.documents.show_collections()
    d.create_collection("company")
    d.add_paths([str(corpus)])
    job = w.documents.jobs["company"]
    qtbot.waitUntil(lambda: job.result is not None, timeout=20000)
    d.close()
    w.documents.section.set_chosen(["company"])

    dialog = w.settings_actions.show_dialog()
    page = _documents_page(dialog)
    assert page.rewrites.value() == 0 and page.rewrites.text() == "Off"
    page.rewrites.setValue(2)
    dialog.accept()
    saved = Settings.load(app_paths().settings)
    assert saved.extra["documents"]["query_rewrites"] == 2  # in settings.json

    mid = _send(qtbot, w, "What is the company mascot?")
    asked = REPHRASE.format(n=2, question="What is the company mascot?")
    assert any(asked in p for p in _prompts(w))  # the chat model was asked to rephrase
    docs = w.store.get_message(mid).meta["documents"]
    assert docs["rewrites"] == ["Hello from the fake model."]  # the fake's rephrasing
    assert "Pemberton" in _prompts(w)[-1]

    # off again: the next send asks for no rephrasing
    dialog = w.settings_actions.show_dialog()
    page = _documents_page(dialog)
    assert page.rewrites.value() == 2
    page.rewrites.setValue(0)
    dialog.accept()
    before = len(_prompts(w))
    mid = _send(qtbot, w, "Who founded the company?")
    assert not any("search queries" in p for p in _prompts(w)[before:])
    assert "rewrites" not in w.store.get_message(mid).meta["documents"]


def _show_prompt(qtbot: Any, w: Any) -> str:
    actions = w.template_actions
    with qtbot.waitSignal(actions.prompt_view_opened, timeout=20000) as blocker:
        assert actions.show_prompt()
    view = blocker.args[0]
    view.close()
    return str(view.text)


def test_show_prompt_with_collections_and_rephrasings_is_what_the_send_inserts(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    w = make_window(extensions=(*EXTENSIONS, "chatapp.gui.template_actions"))
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(fake_model_file))
    d = w.documents.show_collections()
    d.create_collection("company")
    d.add_paths([str(corpus)])
    job = w.documents.jobs["company"]
    qtbot.waitUntil(lambda: job.result is not None, timeout=20000)
    d.close()
    w.documents.section.set_chosen(["company"])
    w.documents.set_query_rewrites(2)
    question = "What is the company mascot?"
    asked = REPHRASE.format(n=2, question=question)

    w.input.setPlainText(question)
    shown = _show_prompt(qtbot, w)
    assert "Pemberton" in shown and f"Question: {question}" in shown
    assert sum(asked in p for p in _prompts(w)) == 1  # the preview rephrased it
    _send(qtbot, w, question)
    sent = _prompts(w)[-1]
    # the send inserts the passages shown, found with the same rephrasings (not asked again)
    assert sum(asked in p for p in _prompts(w)) == 1
    inserted = shown.rsplit("<|user|>", 1)[1].split("<|end|>")[0]
    assert sent.rsplit("<|user|>", 1)[1].split("<|end|>")[0] == inserted

    # a file changed after Show prompt: the send reads it as it is now
    w.documents.section.set_chosen([])
    note = tmp_path / "note.md"
    note.write_text("The spare key is under the blue flowerpot.\n")
    w.documents.attachments.add([note])
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 1, timeout=10000)
    w.input.setPlainText("Where is the spare key?")
    assert "blue flowerpot" in _show_prompt(qtbot, w)
    note.write_text("The spare key is in the red letterbox now.\n")
    _send(qtbot, w, "Where is the spare key?")
    assert "red letterbox" in _prompts(w)[-1] and "blue flowerpot" not in _prompts(w)[-1]
