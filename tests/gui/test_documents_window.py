"""Documents in the window, driven by the scripted engine: attachment chips (paperclip,
drops, bad files), what a send carries, citation links and cards, the message's details,
the collections dialog (progress, cancel, report) and the chat's Documents section.
tests/gui/test_documents_window_real.py runs SmolLM2 and a real embedding model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QWidget

from chatapp.core.conversation import Role
from chatapp.core.docindex import DocIndex
from chatapp.core.message_info import details
from chatapp.gui.attachments import Chip
from chatapp.gui.theme import dark_palette
from chatapp.service.documents import EmbedderCache
from tests.docs_corpus import make_corpus, write_pdf
from tests.gui.drops import drag_files
from tests.service.test_documents_index import HashEmbedder

EXTENSIONS = ("chatapp.gui.chat_settings_panel", "chatapp.gui.documents_actions")


def _window(make_window: Any, **kw: Any) -> Any:
    return make_window(extensions=EXTENSIONS, **kw)


def _load(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        w.open_model(str(path))


def _send(qtbot: Any, w: Any, text: str) -> str:
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000) as done:
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    return str(done.args[0])


def _prompt(w: Any) -> str:
    return bytes(t - 1 for t in w.engines[-1].prompts[-1]).decode()


def _attach(qtbot: Any, w: Any, *paths: Path, expect: int) -> None:
    w.documents.attachments.add(list(paths))
    qtbot.waitUntil(lambda: w.documents.attachments.checking == 0, timeout=10000)
    assert len(w.documents.attachments.items) == expect


def _chips(w: Any) -> list[Chip]:
    return w.documents.attachments.chip_widgets()


def test_a_file_attached_with_the_paperclip_goes_into_the_next_send_whole(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    _load(qtbot, w, fake_model_file)
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe spare key is under the blue flowerpot.\n")
    _attach(qtbot, w, note, expect=1)
    [chip] = _chips(w)
    assert "note.md" in chip.label.text() and "markdown" in chip.detail.text()
    mid = _send(qtbot, w, "Where is the spare key?")
    prompt = _prompt(w)
    assert "[1] note.md (whole file)" in prompt and "blue flowerpot" in prompt
    assert "Question: Where is the spare key?" in prompt
    assert not w.documents.attachments.items and not _chips(w)  # the chips went with it
    answer = w.store.get_message(mid)
    assert answer.meta["documents"]["passages"][0]["whole_file"]
    # the conversation keeps the question as typed
    question = w.store.active_thread(w.current_conversation_id())[0]
    assert question.content == "Where is the spare key?"
    # a regenerate reads the same file again
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.session.regenerate(mid)
    assert "[1] note.md (whole file)" in _prompt(w)
    # the next message carries nothing
    _send(qtbot, w, "Thanks")
    assert "flowerpot" not in _prompt(w).split("<|user|>")[-1]
    # files but no question: the app says what is missing
    _attach(qtbot, w, note, expect=1)
    w.input.setPlainText("  ")
    qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert "Type a question" in w.message_bar.label.text()
    assert len(w.documents.attachments.items) == 1


def test_dropping_files_on_the_chat_attaches_them_and_a_gguf_still_opens_a_model(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    a, b = tmp_path / "a.py", tmp_path / "b.txt"
    a.write_text("def f():\n    return 42\n")
    b.write_text("plain words\n")
    w.input.setPlainText("draft")
    enter, drop = drag_files(w.input.viewport(), a, b)
    assert enter.isAccepted() and drop.isAccepted()
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 2, timeout=5000)
    assert w.input.toPlainText() == "draft"  # the paths were not pasted as text
    enter, _ = drag_files(w.message_view.viewport(), a)  # again: attached once
    assert enter.isAccepted()
    qtbot.waitUntil(lambda: w.documents.attachments.checking == 0, timeout=5000)
    assert len(w.documents.attachments.items) == 2
    # remove one with its ✕
    _chips(w)[0].remove_button.click()
    assert [x.name for x in w.documents.attachments.items] == ["b.txt"]
    # a .gguf passes through to the model drop (installed in the full window)
    from chatapp.gui.model_drop import ModelDrop

    ModelDrop(w)
    with qtbot.waitSignal(w.session.model_loaded, timeout=10000):
        drag_files(w, fake_model_file)
    assert len(w.documents.attachments.items) == 1


def test_bad_files_are_refused_in_one_line_and_nothing_is_lost(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    import pypdf

    w = _window(make_window)
    w.input.setPlainText("my half-typed question")
    good = tmp_path / "good.txt"
    good.write_text("Fine text.\n")
    _attach(qtbot, w, good, expect=1)
    pdf = pypdf.PdfWriter()
    pdf.add_blank_page(612, 792)
    pdf.encrypt("secret")
    with open(tmp_path / "locked.pdf", "wb") as f:
        pdf.write(f)
    pdf = pypdf.PdfWriter()
    pdf.add_blank_page(612, 792)
    with open(tmp_path / "scanned.pdf", "wb") as f:
        pdf.write(f)
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)) * 40)
    with open(tmp_path / "huge.txt", "wb") as f:
        f.truncate(65 * 1024 * 1024)
    (tmp_path / "picture.xyz").write_bytes(b"\x89PNG")
    cases = {
        "locked.pdf": "encrypted PDF",
        "scanned.pdf": "no text; scanned pages need OCR",
        "binary.txt": "binary data, not text",
        "huge.txt": "too large",
        "picture.xyz": "chatapp reads PDF",
    }
    for name, reason in cases.items():
        w.message_bar.hide()
        _attach(qtbot, w, tmp_path / name, expect=1)
        text = w.message_bar.label.text()
        assert w.message_bar.isVisible() and w.message_bar.error
        assert text.startswith(f"Cannot attach {name}: ") and reason in text, text
        assert "\n" not in text
    assert w.input.toPlainText() == "my half-typed question"
    assert [a.name for a in w.documents.attachments.items] == ["good.txt"]


def test_a_send_that_cannot_be_saved_gives_the_attachments_back(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    _load(qtbot, w, fake_model_file)
    note = tmp_path / "n.md"
    note.write_text("text\n")
    _attach(qtbot, w, note, expect=1)
    w.documents.attachments.take()  # as a send does
    assert not w.documents.attachments.items
    w.session.input_restored.emit("the question")
    assert [a.name for a in w.documents.attachments.items] == ["n.md"]


def _answer_with_passages(w: Any, pdf: Path) -> str:
    conv = w.store.create_conversation("cited")
    q = w.store.add_message(conv.id, Role.USER, "What speed?")
    meta = {
        "documents": {
            "collections": ["plant"],
            "files": [{"path": str(pdf), "sha256": "ab" * 32}],
            "chunk_ids": [7, 9],
            "passages": [
                {"n": 1, "where": "plant.pdf, page 2", "file": str(pdf), "sha256": "ab" * 32,
                 "chunk_id": 7, "page": 2, "heading": "", "score": 0.0325, "keyword_rank": 1,
                 "vector_rank": 2, "bm25": 3.2, "similarity": 0.71,
                 "text": "The reactor coolant pump runs at 1480 revolutions per minute."},
                {"n": 2, "where": "plant.pdf, page 1", "file": str(pdf), "sha256": "ab" * 32,
                 "chunk_id": 9, "page": 1, "heading": "", "score": 0.016, "keyword_rank": None,
                 "vector_rank": 1, "bm25": None, "similarity": 0.5,
                 "text": "Invoices are archived for eleven years in the basement vault."},
            ],
            "inserted": "Answer the question using the numbered sources below.\n[1] plant.pdf",
        }
    }  # fmt: skip
    a = w.store.add_message(
        conv.id, Role.ASSISTANT, "It runs at 1480 rpm [1], see also [2] and [7].",
        parent_id=q.id, meta=meta,
    )  # fmt: skip
    w.session.select_conversation(conv.id)
    return str(a.id)


def test_citations_are_links_to_cards_that_open_the_file_at_its_page(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    pdf = tmp_path / "plant.pdf"
    write_pdf(pdf, [["Records"], ["Machinery"]])
    w = _window(make_window)
    mid = _answer_with_passages(w, pdf)
    html = w.message_view.row_layout(mid).html
    assert '<a href="cite:1">[1]</a>' in html and '<a href="cite:2">[2]</a>' in html
    assert "cite:7" not in html  # no passage 7: plain text
    assert "Sources:" in html  # the sources line under the answer
    tip = w.message_view.token_tooltip(w.message_view.message_model.row_for(mid), "cite:1")
    assert "plant.pdf, page 2" in tip and "1480" in tip
    # a click on [1] (the view's link activation) opens its card
    row = w.message_view.message_model.row_for(mid)
    w.message_view._activate(row, "link", "cite:1")
    card = w.documents.citations.last_card
    assert card is not None and card.isVisible()
    assert "1480 revolutions" in card.text.toPlainText()
    assert "page 2" in card.where_label.text() and "keyword #1" in card.where_label.text()
    opened: list[QUrl] = []
    w.documents.citations.open_url = opened.append
    card.open_button.click()
    assert opened[0].toLocalFile() == str(pdf) and opened[0].fragment() == "page=2"
    # a citation with no passage says so in one line
    w.message_view.citation_clicked.emit(mid, 5)
    assert "no source [5]" in w.message_bar.label.text()


def test_the_details_show_the_passages_with_scores_and_what_was_inserted(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    pdf = tmp_path / "plant.pdf"
    write_pdf(pdf, [["Records"], ["Machinery"]])
    w = _window(make_window)
    mid = _answer_with_passages(w, pdf)
    rows = dict(details(w.store.get_message(mid)))
    assert "collections plant" in rows["Documents"]
    first = rows["[1] plant.pdf, page 2"]
    assert "score 0.0325" in first and "keyword #1 (bm25 3.20)" in first
    assert "vector #2 (similarity 0.710)" in first and "1480 revolutions" in first
    assert rows["Inserted into the question"].startswith("Answer the question")
    dialog = w.message_view.show_details(mid)
    assert dialog is not None
    text = dialog.browser.toPlainText()
    assert "1480 revolutions" in text and "Inserted into the question" in text


class SlowEmbedder(HashEmbedder):
    """Holds its first batch until released, so a test can cancel mid-run."""

    def __init__(self, path: str, started: threading.Event, release: threading.Event):
        super().__init__(path, hook=self._wait)
        self.started, self.release = started, release

    def _wait(self, _texts: Sequence[str]) -> None:
        self.started.set()
        self.release.wait(30)


def _fake_models(w: Any, tmp_path: Path, make: Any) -> Path:
    model = tmp_path / "fake-embedding.gguf"
    model.write_bytes(b"GGUF")
    w.documents.loader = make
    w.documents.embedders = EmbedderCache(make)
    return model


def test_collections_dialog_indexes_with_progress_cancel_and_a_report(
    qtbot: Any, make_window: Any, tmp_path: Path
) -> None:
    import pypdf

    corpus = make_corpus(tmp_path / "corpus")
    pdf = pypdf.PdfWriter()
    pdf.add_blank_page(612, 792)
    with open(corpus / "scanned.pdf", "wb") as f:
        pdf.write(f)
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 40)
    w = _window(make_window)
    started, release = threading.Event(), threading.Event()
    model = _fake_models(
        w, tmp_path, lambda path: SlowEmbedder(str(Path(path).resolve()), started, release)
    )
    d = w.documents.show_collections()
    assert d.create_collection("handbook")
    assert not d.create_collection("handbook")  # one line: it exists
    assert "already a collection" in w.message_bar.label.text()
    d.set_model(str(model))
    job = w.documents.jobs["handbook"]
    qtbot.waitUntil(lambda: job.result is not None, timeout=10000)  # no paths yet: nothing
    started.clear()
    d.add_paths([str(corpus)])  # starts indexing at once
    job = w.documents.jobs["handbook"]
    assert started.wait(10)
    qtbot.waitUntil(lambda: d.progress.maximum() == 26, timeout=5000)
    assert d.progress.isVisible() and d.cancel_button.isVisible()
    assert not d.index_button.isEnabled()
    d.cancel_button.click()
    release.set()
    qtbot.waitUntil(lambda: job.result is not None, timeout=10000)
    assert job.result.cancelled and "(cancelled)" in d.summary.text()
    assert not d.progress.isVisible()
    with DocIndex(w.documents.index_file) as index:
        assert index.collection("handbook").files < 26
    # index again, to the end: a line per bad file in the report
    done = d.index()
    qtbot.waitUntil(lambda: done.result is not None, timeout=20000)
    report = d.report.toPlainText().splitlines()
    assert any(line.endswith("scanned.pdf: no text; scanned pages need OCR") for line in report)
    assert any(line.endswith("binary.txt: binary data, not text") for line in report)
    assert len(report) == 2
    assert "24 files" in d.summary.text() and "fake-embedding.gguf" in d.summary.text()
    # another embedding model: every file is embedded again
    other = tmp_path / "other-embedding.gguf"
    other.write_bytes(b"GGUF")
    d.set_model(str(other))
    again = w.documents.jobs["handbook"]
    qtbot.waitUntil(lambda: again.result is not None, timeout=20000)
    assert again.result.updated == 24 and again.result.unchanged == 0
    with DocIndex(w.documents.index_file) as index:
        c = index.collection("handbook")
        assert c.embedding_model == str(other.resolve())
        assert {f.embedding_model for f in index.files(c.id).values()} == {str(other.resolve())}
    assert "other-embedding.gguf" in d.summary.text()
    # remove a path: the next run removes its files
    d.paths.setCurrentRow(0)
    d._remove_path()
    qtbot.waitUntil(lambda: w.documents.jobs["handbook"].result is not None, timeout=10000)
    with DocIndex(w.documents.index_file) as index:
        assert index.collection("handbook").files == 0


def test_a_chat_chooses_collections_in_its_settings_panel_and_sends_with_them(
    qtbot: Any, make_window: Any, fake_model_file: Path, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    w = _window(make_window)
    _load(qtbot, w, fake_model_file)
    d = w.documents.show_collections()
    d.create_collection("company")
    d.add_paths([str(corpus)])
    job = w.documents.jobs["company"]
    qtbot.waitUntil(lambda: job.result is not None, timeout=20000)
    d.close()
    section = w.documents.section
    assert section.parent() is not None  # inside the chat settings panel
    panel_body = w.chat_settings_panel.scroll.widget()
    assert section in panel_body.findChildren(QWidget)
    item = section.list.item(0)
    assert item.text() == "company"
    item.setCheckState(Qt.CheckState.Checked)  # a new chat: kept until its first message
    _send(qtbot, w, "What is the company mascot?")
    assert "Pemberton" in _prompt(w) and "[1] culture.md" in _prompt(w)
    cid = w.current_conversation_id()
    qtbot.waitUntil(
        lambda: (
            w.store.get_conversation(cid).meta.get("documents", {}).get("collections")
            == ["company"]
        ),
        timeout=5000,
    )
    # another chat does not use it; back in this one, it is still chosen
    w.session.new_conversation()
    assert section.list.item(0).checkState() == Qt.CheckState.Unchecked
    _send(qtbot, w, "Hello")
    assert "Pemberton" not in _prompt(w)
    w.session.select_conversation(cid)
    assert section.list.item(0).checkState() == Qt.CheckState.Checked
    # regenerate carries the chat's collections
    with qtbot.waitSignal(w.session.reply_finished, timeout=20000):
        w.session.regenerate()
    assert "Pemberton" in _prompt(w)


@pytest.mark.parametrize("dark", [False, True])
def test_long_names_fit_an_800_px_window_in_both_palettes(
    qtbot: Any, make_window: Any, tmp_path: Path, dark: bool
) -> None:
    w = _window(make_window)
    if dark:
        QApplication.instance().setPalette(dark_palette())
    try:
        w.resize(800, 600)
        long = tmp_path / ("a-very-long-file-name-that-goes-on-" * 6 + ".md")
        long.write_text("# T\n\n" + "word " * 3000)
        _attach(qtbot, w, long, expect=1)
        more = []
        for i in range(6):
            p = tmp_path / f"notes-{i}.txt"
            p.write_text("x\n")
            more.append(p)
        _attach(qtbot, w, *more, expect=7)
        qtbot.waitUntil(lambda: w.width() <= 800, timeout=2000)
        assert w.width() <= 800  # the chips scroll; they never widen the window
        chip = _chips(w)[0]
        qtbot.waitUntil(chip.isVisible, timeout=2000)  # laid out
        bar = w.documents.attachments.chips_widget
        for c in _chips(w):  # every chip inside the bar: they wrap onto lines
            assert c.geometry().right() <= bar.width()
        assert "…" in chip.label.text()  # the long name is elided in the middle
        assert len({c.y() for c in _chips(w)}) > 1
        base = chip.palette().color(QPalette.ColorRole.WindowText).lightness()
        assert (base > 128) == dark  # text colour follows the palette
        d = w.documents.show_collections()
        d.create_collection("x" * 200)
        d.resize(800, 500)
        assert d.width() <= 800
    finally:
        QApplication.instance().setPalette(QApplication.style().standardPalette())
