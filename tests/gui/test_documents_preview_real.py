"""Show prompt for a draft with attached files is the prompt the next send evaluates,
with the real llama.cpp: SmolLM2 answers, and SmolLM2 run with embedding=True (mean
pooling) embeds a file too long to go in whole (no embedding GGUF is among the test
models, as in tests/service/test_documents_real.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.paths import app_paths
from chatapp.service import default_backend_factory

pytestmark = [pytest.mark.model, pytest.mark.qt_log_ignore("does not support propagateSizeHints")]
EXTENSIONS = (
    "chatapp.gui.chat_settings_panel",
    "chatapp.gui.template_actions",
    "chatapp.gui.documents_actions",
)
WAIT = 300_000
TOPICS = ("gardening", "astronomy", "baking", "sailing", "weaving", "pottery")


def _window(make_window: Any) -> Any:
    Settings(context_limit=1024, n_threads=2, max_tokens=12, seed=3, temperature=0.0).save(
        app_paths().ensure().settings
    )
    return make_window(engine_factory=default_backend_factory, extensions=EXTENSIONS)


def _load(qtbot: Any, w: Any, path: Path) -> None:
    with qtbot.waitSignal(w.session.model_loaded, timeout=WAIT):
        w.open_model(str(path))


def _attach(qtbot: Any, w: Any, path: Path) -> None:
    w.documents.attachments.add([path])
    qtbot.waitUntil(lambda: len(w.documents.attachments.items) == 1, timeout=30_000)


def _show_prompt(qtbot: Any, w: Any) -> tuple[str, list[int]]:
    """(the text Show prompt shows, its token ids)."""
    actions = w.template_actions
    with qtbot.waitSignal(actions.prompt_view_opened, timeout=WAIT) as blocker:
        assert actions.show_prompt()
    view = blocker.args[0]
    qtbot.waitUntil(lambda: view.token_model.rowCount() > 0, timeout=WAIT)
    ids = [int(view.token_model.index(r, 1).data()) for r in range(view.token_model.rowCount())]
    text = view.text
    view.close()
    return text, ids


def _send(qtbot: Any, w: Any) -> tuple[str, str]:
    """Send what is in the input: (the answer's id, the prompt text evaluated)."""
    prompts: list[str] = []
    w.session.bridge.turn_prompt.connect(lambda ev: prompts.append(ev.prompt.text))
    with qtbot.waitSignal(w.session.reply_finished, timeout=WAIT) as done:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert prompts, "no prompt was evaluated"
    return str(done.args[0]), prompts[-1]


def _shown_is_sent(qtbot: Any, w: Any, question: str) -> tuple[str, Any]:
    """Show prompt for the draft, then send it: what was shown is what was evaluated,
    token for token (the recorded prompt and the receipt); (the prompt, the answer)."""
    w.input.setPlainText(question)
    shown, ids = _show_prompt(qtbot, w)
    assert len(w.documents.attachments.items) == 1  # Show prompt leaves the chips
    assert len(w.documents.attachments.chip_widgets()) == 1
    mid, sent = _send(qtbot, w)
    assert w.documents.attachments.items == []  # the send took them
    assert sent == shown
    with Store(app_paths().database) as store:
        assert store.prompt_tokens(mid) == ids
        answer = store.get_message(mid)
    assert answer.meta["receipt"]["prompt_tokens"] == len(ids)
    assert answer.meta["documents"]["inserted"] in shown
    return shown, answer


def test_show_prompt_with_a_file_that_fits_is_what_the_send_evaluates(
    qtbot: Any, make_window: Any, smollm2_path: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    _load(qtbot, w, smollm2_path)
    note = tmp_path / "note.md"
    note.write_text("# Note\n\nThe spare key is under the blue flowerpot.\n")
    _attach(qtbot, w, note)
    shown, answer = _shown_is_sent(qtbot, w, "Where is the spare key?")
    assert "[1] note.md (whole file)" in shown and "blue flowerpot" in shown
    assert "Question: Where is the spare key?" in shown
    assert answer.meta["documents"]["passages"][0]["whole_file"]

    # without attachments the preview is the plain draft again
    w.input.setPlainText("And the back door?")
    plain, _ids = _show_prompt(qtbot, w)
    last = plain.rsplit("<|im_start|>user", 1)[1]
    assert last.startswith("\nAnd the back door?<|im_end|>")  # no sources, no "Question:"


def test_show_prompt_with_a_file_retrieved_in_chunks_is_what_the_send_evaluates(
    qtbot: Any, make_window: Any, smollm2_path: Path, tmp_path: Path
) -> None:
    w = _window(make_window)
    _load(qtbot, w, smollm2_path)
    w.documents.set_default_embedding_model(str(smollm2_path))  # SmolLM2 embeds (mean pooling)
    long = tmp_path / "handbook.md"
    parts = ["# Handbook", ""]
    for t in TOPICS:
        parts += [f"## {t.title()}", ""]
        parts += [
            " ".join(
                f"Note {i} on {t}: the club keeps its {t} gear tidy and logs each {t} session."
                for i in range(10)
            ),
            "",
        ]
    parts += ["## Keys", "", "The spare key of the lighthouse is kept in the brass tin.", ""]
    long.write_text("\n".join(parts))
    _attach(qtbot, w, long)
    shown, answer = _shown_is_sent(qtbot, w, "Where is the spare key of the lighthouse?")
    assert "(whole file)" not in shown  # too long for half the context: its best chunks
    assert "brass tin" in shown and "[1] handbook.md" in shown
    passages = answer.meta["documents"]["passages"]
    assert passages and not any(p.get("whole_file") for p in passages)
    assert all(str(p["chunk_id"]).split("#")[0] == p["sha256"][:12] for p in passages)
    assert any(p["vector_rank"] is not None for p in passages)  # ranked by embeddings too
