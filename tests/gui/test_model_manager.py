"""The Models dialog, built without a main window, against the fake hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QMenu

from chatapp.core import catalog
from chatapp.core.catalog import Starter
from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.settings import Settings
from chatapp.gui.model_manager import ModelManagerDialog
from chatapp.gui.model_manager_models import Column, JobBridge, ListTableModel, run_in_thread
from chatapp.hub import api
from chatapp.hub.download import Downloader
from chatapp.hub.queue import CANCELLED, DONE, PAUSED, DownloadQueue
from chatapp.paths import app_paths
from tests.hub.conftest import hub, online, small_blob  # noqa: F401  (fixtures)
from tests.hub.fake_hf import Blob, FakeHub


class Harness:
    def __init__(self, qtbot: Any, tmp_path: Path, answers: list[bool] | None = None) -> None:
        self.opened: list[str] = []
        self.answers = answers if answers is not None else []
        self.asked: list[str] = []
        self.library = catalog.Library(
            tmp_path / "models", tmp_path / "reg.json", hf_cache=tmp_path / "hf", lmstudio=[]
        )
        self.bridge = JobBridge()
        self.queue = DownloadQueue(
            lambda: Downloader(
                self.library.models_dir,
                endpoint=api.endpoint(),
                backoff=0.0,
                chunk_size=64 * 1024,
                progress_interval=0.0,
            ),
            self.bridge.changed.emit,
        )
        self.dialog = ModelManagerDialog(
            settings=Settings(context_limit=2048),
            library=self.library,
            queue=self.queue,
            bridge=self.bridge,
            open_model=self.opened.append,
            run_in_background=run_in_thread,
            starters=[Starter("org/smol-GGUF", "Q4_1", "Smol", "tiny", size_gb=0.1)],
            confirm=self._confirm,
        )
        qtbot.addWidget(self.dialog)

    def _confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers else False


@pytest.fixture
def harness(qtbot: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    h = Harness(qtbot, tmp_path)
    yield h
    h.queue.shutdown()
    QThreadPool.globalInstance().waitForDone(10_000)  # no callback outlives its test


def test_table_model_passes_qtmodeltester(qtmodeltester: Any) -> None:
    model: ListTableModel[int] = ListTableModel(
        [Column("n", str), Column("sq", lambda i: str(i * i))]
    )
    model.set_items([1, 2, 3])
    qtmodeltester.check(model)
    assert model.data(model.index(2, 1)) == "9"


@pytest.mark.model
def test_discover_download_verify_and_use(
    qtbot: Any, harness: Harness, hub: FakeHub, smollm2_path: Path
) -> None:
    hub.add(
        "org/smol-GGUF",
        {smollm2_path.name: Blob(path=smollm2_path), "mmproj-smol-f16.gguf": Blob(data=b"GGUF")},
    )
    d = harness.dialog
    assert d.results_model.rowCount() == 1  # the starter list, before any search
    d.results.selectRow(0)
    qtbot.waitUntil(lambda: d.files_model.rowCount() == 1, timeout=10_000)
    assert d.files_model.data(d.files_model.index(0, 1)) == "Q4_1"
    assert d.files_model.data(d.files_model.index(0, 3)) in ("fits", "tight", "will not fit")
    assert d.files.selectionModel().selectedRows()[0].row() == 0  # the starter's quant
    job = d.download_selected()
    assert job is not None and d.tabs.currentIndex() == 2
    qtbot.waitUntil(lambda: job.state == DONE, timeout=30_000)
    # the repository's projector is paired with the model and downloaded after it
    qtbot.waitUntil(lambda: all(j.state == DONE for j in harness.queue.jobs), timeout=30_000)
    assert len(harness.queue.jobs) == 2
    qtbot.waitUntil(lambda: d.library_model.rowCount() == 1, timeout=5_000)
    assert "verified" in d.status.text()
    check_model_file(job.path)
    assert d.jobs_model.data(d.jobs_model.index(0, 2)) == "done"
    d.library_view.selectRow(0)
    qtbot.waitUntil(lambda: "llama" in d.details_label.text(), timeout=5_000)
    d.use_button.click()
    assert harness.opened == [str(job.path)]


def test_search_pages_and_sorts(qtbot: Any, harness: Harness, hub: FakeHub) -> None:
    for i in range(25):
        hub.add(
            f"org/m{i:02d}-GGUF", {"m-Q4_0.gguf": Blob(data=b"GGUF")}, downloads=i, likes=25 - i
        )
    d = harness.dialog
    d.search_button.click()
    qtbot.waitUntil(lambda: "page 1" in d.status.text(), timeout=10_000)
    assert d.results_model.rowCount() == 20 and d.next_button.isEnabled()
    assert d.results_model.data(d.results_model.index(0, 0)) == "org/m24-GGUF"
    d.next_button.click()
    qtbot.waitUntil(lambda: "page 2" in d.status.text(), timeout=10_000)
    assert d.results_model.rowCount() == 5 and not d.next_button.isEnabled()
    d.sort.setCurrentText("likes")
    d.search_button.click()
    qtbot.waitUntil(lambda: "page 1" in d.status.text(), timeout=10_000)
    assert d.results_model.data(d.results_model.index(0, 0)) == "org/m00-GGUF"


def test_offline_search_says_so_and_the_library_still_works(
    qtbot: Any, harness: Harness, tmp_path: Path
) -> None:
    model = tmp_path / "models/org/x/x-Q4_0.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + b"\0" * 100)
    d = harness.dialog
    d.refresh_library()
    d.query.setText("llama")
    d.search_button.click()
    qtbot.waitUntil(lambda: "Offline" in d.status.text(), timeout=10_000)
    assert d.search_button.isEnabled()
    assert d.library_model.rowCount() == 1
    d.library_view.selectRow(0)
    d.use_button.click()
    assert harness.opened == [str(model)]


def test_pause_resume_and_cancel(qtbot: Any, harness: Harness, hub: FakeHub) -> None:
    hub.add("org/slow-GGUF", {"slow-Q4_0.gguf": Blob(data=b"GGUF" * 100_000)})
    hub.faults.delay["slow-Q4_0.gguf"] = 0.01
    d = harness.dialog
    files = api.repo_files("org/slow-GGUF")
    job = harness.queue.add("org/slow-GGUF", files.revision, files.groups[0])
    qtbot.waitUntil(lambda: d.jobs_model.rowCount() == 1 and job.done > 0, timeout=10_000)
    d.jobs_view.selectRow(0)
    assert d.pause_button.isEnabled()
    d.pause_button.click()
    qtbot.waitUntil(lambda: job.state == PAUSED and d.resume_button.isEnabled(), timeout=10_000)
    part = harness.library.models_dir / "org/slow-GGUF/slow-Q4_0.gguf.part"
    assert part.exists()
    d.resume_button.click()
    qtbot.waitUntil(lambda: job.state == "downloading", timeout=10_000)
    harness.answers[:] = [False, True]
    d.cancel_button.click()  # "no": keeps going
    assert job.state == "downloading"
    d.cancel_button.click()
    qtbot.waitUntil(lambda: job.state == CANCELLED, timeout=10_000)
    assert not part.exists()
    assert len(harness.asked) == 2


def test_delete_asks_first(qtbot: Any, harness: Harness, tmp_path: Path) -> None:
    model = tmp_path / "models/org/x/x-Q4_0.gguf"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"GGUF" + b"\0" * 100)
    d = harness.dialog
    d.refresh_library()
    d.library_view.selectRow(0)
    harness.answers[:] = [False]
    d.delete_button.click()
    assert model.exists() and "Delete org/x/x-Q4_0.gguf" in harness.asked[0]
    harness.answers[:] = [True]
    d.delete_button.click()
    assert not model.exists() and d.library_model.rowCount() == 0


def test_failed_download_shows_its_message(qtbot: Any, harness: Harness, hub: FakeHub) -> None:
    hub.add("org/gated-GGUF", {"g-Q4_0.gguf": Blob(data=b"GGUF")}, gated=True)
    files = api.repo_files("org/gated-GGUF")
    harness.queue.add("org/gated-GGUF", files.revision, files.groups[0])
    d = harness.dialog
    qtbot.waitUntil(lambda: "accept its license" in d.status.text(), timeout=10_000)
    assert "accept its license" in d.jobs_model.data(d.jobs_model.index(0, 2))


def test_token_is_saved_in_settings_and_sent(
    qtbot: Any, harness: Harness, hub: FakeHub, small_blob: Blob
) -> None:
    hub.add("org/private-GGUF", {"p-Q4_0.gguf": small_blob}, private=True)
    d = harness.dialog
    saved: list[str | None] = []
    d.save_settings = lambda: saved.append(d.settings.hf_token)
    d.results_model.set_items([api.RepoSummary("org/private-GGUF")])
    d.results.selectRow(0)
    qtbot.waitUntil(lambda: "login" in d.status.text(), timeout=10_000)
    d.ask_token = lambda: " hf_secret "
    d.token_button.click()
    assert saved == ["hf_secret"] and d.status.text() == "Token saved."
    d.results.clearSelection()
    d.results.selectRow(0)
    qtbot.waitUntil(lambda: d.files_model.rowCount() == 1, timeout=10_000)
    d.ask_token = lambda: None  # cancelled: nothing changes
    d.token_button.click()
    assert saved == ["hf_secret"]


class FakeWindow:
    """The main window's surface that install() uses."""

    def __init__(self) -> None:
        self.menus = {name: QMenu(name) for name in ("file", "chat", "models", "view", "help")}
        self.settings = Settings()
        self.paths = app_paths().ensure()
        self.opened: list[str] = []
        self.infos: list[str] = []
        self.errors: list[str] = []

    def open_model(self, path: str) -> None:
        self.opened.append(path)

    def save_settings(self) -> None:
        pass

    def run_in_background(self, fn: Any, on_done: Any, on_error: Any) -> None:
        run_in_thread(fn, on_done, on_error)

    def show_info(self, text: str) -> None:
        self.infos.append(text)

    def show_error(self, text: str) -> None:
        self.errors.append(text)


@pytest.mark.qt_log_ignore("does not support propagateSizeHints")  # offscreen platform
def test_install_adds_the_menu_entries(qtbot: Any, tmp_path: Path) -> None:
    from chatapp.gui.models_actions import install

    window = FakeWindow()
    controller = install(window)
    try:
        actions = {a.text(): a for a in window.menus["models"].actions()}
        assert set(actions) == {"Model manager…", "Import GGUF…"}
        assert actions["Model manager…"].shortcut().toString() == "Ctrl+M"
        actions["Model manager…"].trigger()
        dialog = controller.dialog
        assert dialog is not None and dialog.isVisible()
        qtbot.addWidget(dialog)
        assert dialog.results_model.rowCount() >= 5  # the curated starter list
        bad = tmp_path / "bad.gguf"
        bad.write_text("not a model")
        controller.import_path(bad, copy=True)
        qtbot.waitUntil(lambda: bool(window.errors), timeout=5_000)
        assert "not a GGUF" in window.errors[0]
    finally:
        controller.shutdown()
        QThreadPool.globalInstance().waitForDone(10_000)


def test_the_library_keeps_the_chosen_model_when_it_refreshes(
    qtbot: Any, harness: Harness, tmp_path: Path
) -> None:
    """A download that finishes (or any refresh) while a model is chosen in the library
    keeps it chosen: "Use this model" opens the one the user picked."""
    models = tmp_path / "models/org"
    for name in ("b/b-Q4_0.gguf", "c/c-Q4_0.gguf"):
        (models / name).parent.mkdir(parents=True)
        (models / name).write_bytes(b"GGUF" + b"\0" * 100)
    d = harness.dialog
    d.refresh_library()
    rows = [d.library_model.data(d.library_model.index(r, 0)) for r in range(2)]
    picked = next(r for r, name in enumerate(rows) if "c-Q4_0" in str(name))
    d.library_view.selectRow(picked)
    (models / "a/a-Q4_0.gguf").parent.mkdir(parents=True)
    (models / "a/a-Q4_0.gguf").write_bytes(b"GGUF" + b"\0" * 100)  # a download finished
    d.refresh_library()
    assert d.library_model.rowCount() == 3
    d.use_button.click()
    assert harness.opened == [str(models / "c/c-Q4_0.gguf")]
