"""Documents in the window with the real llama.cpp: SmolLM2 answers, and SmolLM2 run
with embedding=True (mean pooling) embeds (no embedding GGUF is among the test models,
as in tests/service/test_documents_real.py).

- a file attached through the window is in the prompt the next send evaluates;
- a folder indexed from the collections dialog, with its progress bar, Cancel, and a
  chat that answers while the indexer is in the middle of the folder;
- a citation link of a real answer opens the passage the index holds."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from chatapp.core.docindex import DocIndex
from chatapp.core.settings import Settings
from chatapp.paths import app_paths
from chatapp.service import default_backend_factory
from chatapp.service.documents import EmbedderCache
from chatapp.service.machine import embedding_model
from tests.docs_corpus import make_corpus

pytestmark = pytest.mark.model
EXTENSIONS = ("chatapp.gui.chat_settings_panel", "chatapp.gui.documents_actions")
WAIT = 300_000


def _window(make_window: Any) -> Any:
    Settings(context_limit=1024, n_threads=2, max_tokens=24, seed=3, temperature=0.0).save(
        app_paths().ensure().settings
    )
    return make_window(engine_factory=default_backend_factory, extensions=EXTENSIONS)


def _load(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=WAIT):
        w.open_model(str(path))


def _send(qtbot: Any, w: Any, text: str) -> tuple[str, str]:
    """(the answer's id, the prompt text the model evaluated)."""
    prompts: list[str] = []
    w.session.bridge.turn_prompt.connect(lambda ev: prompts.append(ev.prompt.text))
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT) as done:
        w.input.setPlainText(text)
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert prompts, "no prompt was evaluated"
    return str(done.args[0]), prompts[-1]


def test_a_file_attached_in_the_window_is_in_the_prompt_smollm2_evaluates(
    qtbot: Any, make_window: Any, smollm2_path: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    _load(qtbot, w, smollm2_path)
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe spare key is under the blue flowerpot.\n")
    w.documents.attachments.add([note])
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 1, timeout=10_000)
    mid, prompt = _send(qtbot, w, "Where is the spare key?")
    assert "[1] note.md (whole file)" in prompt and "blue flowerpot" in prompt
    assert "Question: Where is the spare key?" in prompt
    answer = w.store.get_message(mid)
    assert answer.content.strip()
    receipt = answer.meta["receipt"]["documents"]
    assert receipt["files"][0]["path"] == str(note.absolute())
    assert answer.meta["documents"]["inserted"] in prompt


class Gated:
    """The real embedding model, held after its first batch until the test opens the gate."""

    def __init__(self, inner: Any, gate: threading.Event, reached: threading.Event) -> None:
        self.inner, self.gate, self.reached = inner, gate, reached
        self.path, self.dim = inner.path, inner.dim
        self.batches = 0

    def embed(self, texts: Sequence[str], **kw: Any) -> np.ndarray:
        out = self.inner.embed(texts, **kw)
        self.batches += 1
        if self.batches == 1:
            self.reached.set()
            assert self.gate.wait(WAIT / 1000)
        return out

    def close(self) -> None:
        self.inner.close()


def test_index_a_folder_from_the_dialog_while_a_chat_answers_then_cite_it(
    qtbot: Any, make_window: Any, smollm2_path: Path, tmp_path: Path
) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    w = _window(make_window)
    _load(qtbot, w, smollm2_path)
    gate, reached = threading.Event(), threading.Event()
    made: list[Gated] = []

    def loader(path: str) -> Any:
        g = Gated(embedding_model(path), gate, reached)
        made.append(g)
        return g

    w.documents.loader = loader
    w.documents.embedders = EmbedderCache(lambda path: embedding_model(path))
    d = w.documents.show_collections()
    assert d.create_collection("company")
    d.set_model(str(smollm2_path))  # SmolLM2 embeds (mean pooling)
    first = w.documents.jobs["company"]
    qtbot.waitUntil(lambda: first.result is not None, timeout=WAIT)  # no paths: nothing

    # 1. indexing starts; Cancel while the embedder is in the middle of the folder
    d.add_paths([str(corpus)])
    job = w.documents.jobs["company"]
    assert reached.wait(WAIT / 1000)
    qtbot.waitUntil(lambda: d.progress.maximum() == 24, timeout=10_000)
    assert d.progress.isVisible() and d.cancel_button.isEnabled()
    d.cancel_button.click()
    gate.set()
    qtbot.waitUntil(lambda: job.result is not None, timeout=WAIT)
    assert job.result.cancelled and "(cancelled)" in d.summary.text()
    with DocIndex(w.documents.index_file) as index:
        assert index.collection("company").files < 24

    # 2. index again; while the indexer holds its first batch, the chat answers
    gate.clear()
    reached.clear()
    job = d.index()
    assert reached.wait(WAIT / 1000)
    mid, _prompt = _send(qtbot, w, "Say hello.")
    assert w.store.get_message(mid).content.strip()
    assert job.running  # the answer came while the folder was still being indexed
    seen: list[int] = []
    job.updated.connect(lambda p: seen.append(p.done))
    gate.set()
    qtbot.waitUntil(lambda: job.result is not None, timeout=WAIT)
    assert not job.result.cancelled and not job.result.problems
    assert seen and seen[-1] == 24  # the bar went to the end
    assert "24 files" in d.summary.text()
    d.close()

    # 3. a chat that asks the collection: the answer's citation links open the passages
    w.session.new_conversation()
    w.documents.section.set_chosen(["company"])
    mid, prompt = _send(qtbot, w, "What is the company mascot?")
    answer = w.store.get_message(mid)
    passages = answer.meta["documents"]["passages"]
    assert any("Pemberton" in p["text"] for p in passages)
    assert f"[1] {passages[0]['where']}" in prompt
    html = w.message_view.row_layout(mid).html
    assert 'href="cite:1"' in html
    row = w.message_view.message_model.row_for(mid)
    w.message_view._activate(row, "link", "cite:1")
    card = w.documents.citations.last_card
    assert card is not None
    with DocIndex(w.documents.index_file) as index:
        held = index.hits([passages[0]["chunk_id"]])[passages[0]["chunk_id"]]
    assert card.text.toPlainText() == held.text
    assert Path(card.file_label.text()) == Path(held.path)
    for g in made:
        g.close()
