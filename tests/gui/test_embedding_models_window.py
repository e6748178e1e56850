"""Embedding models in the window: the model manager's Embedding models tab (starters
with fit labels, a download through the queue from the fake hub, the ones on disk, the
documents' default), and the model picker that never offers one as a chat model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QThreadPool

from chatapp.core import catalog
from chatapp.core.settings import Settings
from chatapp.gui.model_manager import ModelManagerDialog
from chatapp.gui.model_manager_models import JobBridge, run_in_thread
from chatapp.hub import api
from chatapp.hub.download import Downloader
from chatapp.hub.queue import DONE, DownloadQueue
from chatapp.paths import app_paths
from tests.hub.conftest import hub, online  # noqa: F401  (fixtures)
from tests.hub.fake_hf import Blob, FakeHub


def write_gguf(path: Path, arch: str, *, chat_template: str | None = None) -> Path:
    """A small GGUF with the metadata that tells a chat model from an embedding model."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_uint32(f"{arch}.context_length", 512)
    if chat_template:
        w.add_chat_template(chat_template)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture
def dialog(qtbot: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    library = catalog.Library(
        tmp_path / "models", tmp_path / "reg.json", hf_cache=tmp_path / "hf", lmstudio=[]
    )
    write_gguf(tmp_path / "models/org/chat/chatty-Q8_0.gguf", "llama", chat_template="{{ x }}")
    write_gguf(tmp_path / "models/org/emb/bge-small-test-Q8_0.gguf", "bert")
    bridge = JobBridge()
    queue = DownloadQueue(
        lambda: Downloader(
            library.models_dir, endpoint=api.endpoint(), backoff=0.0, progress_interval=0.0
        ),
        bridge.changed.emit,
    )
    saved: list[bool] = []
    d = ModelManagerDialog(
        settings=Settings(context_limit=2048),
        library=library,
        queue=queue,
        bridge=bridge,
        open_model=lambda _p: None,
        run_in_background=run_in_thread,
        save_settings=lambda: saved.append(True),
    )
    d.saved = saved
    qtbot.addWidget(d)
    yield d
    queue.shutdown()
    QThreadPool.globalInstance().waitForDone(10_000)


def test_the_embedding_tab_lists_starters_with_fit_labels_and_the_models_on_disk(
    qtbot: Any, dialog: ModelManagerDialog
) -> None:
    tab = dialog.embedding_tab
    names = [tab.starters_model.data(tab.starters_model.index(r, 0)) for r in range(4)]
    assert names == [
        "nomic-embed-text v1.5",
        "bge-small-en v1.5",
        "EmbeddingGemma 300M",
        "Qwen3-Embedding 0.6B",
    ]
    for r in range(4):
        assert tab.starters_model.data(tab.starters_model.index(r, 3)) in (
            "fits", "tight", "too large", "?",
        )  # fmt: skip
    qtbot.waitUntil(lambda: tab.local_model.rowCount() == 1, timeout=10_000)
    assert "bge-small-test" in tab.local_model.data(tab.local_model.index(0, 0))
    assert "No embedding model chosen" in tab.current.text()
    tab.local.selectRow(0)
    tab.use_button.click()
    chosen = dialog.settings.extra["documents"]["embedding_model"]
    assert chosen.endswith("bge-small-test-Q8_0.gguf") and dialog.saved
    assert "bge-small-test" in tab.current.text()
    assert tab.local_model.data(tab.local_model.index(0, 2)) == "✓"


def test_a_starter_embedding_model_downloads_through_the_queue(
    qtbot: Any,
    dialog: ModelManagerDialog,
    hub: FakeHub,
    tmp_path: Path,
) -> None:
    blob = write_gguf(tmp_path / "blob/bge.gguf", "bert")
    hub.add(
        "CompendiumLabs/bge-small-en-v1.5-gguf",
        {
            "bge-small-en-v1.5-q8_0.gguf": Blob(path=blob),
            "bge-small-en-v1.5-f16.gguf": Blob(path=blob),
        },
    )
    tab = dialog.embedding_tab
    tab.starters.selectRow(1)
    tab.download_button.click()
    qtbot.waitUntil(lambda: len(dialog.queue.jobs) == 1, timeout=10_000)
    job = dialog.queue.jobs[0]
    assert job.group.name.endswith("bge-small-en-v1.5-q8_0.gguf")
    assert dialog.tabs.currentIndex() == 2  # the Downloads tab shows it
    qtbot.waitUntil(lambda: job.state == DONE, timeout=30_000)
    qtbot.waitUntil(lambda: tab.local_model.rowCount() == 2, timeout=10_000)


def test_the_model_picker_never_offers_an_embedding_model(qtbot: Any, make_window: Any) -> None:
    models = app_paths().ensure().data / "models"
    write_gguf(models / "org/chat/chatty-Q8_0.gguf", "llama", chat_template="{{ x }}")
    write_gguf(models / "org/emb/bge-small-test-Q8_0.gguf", "bert")
    w = make_window(extensions=("chatapp.gui.model_picker",))
    combo = w.model_picker.combo
    qtbot.waitUntil(lambda: combo.count() >= 2, timeout=10_000)
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert any("chatty" in t for t in labels)
    assert not any("bge-small-test" in t for t in labels)
