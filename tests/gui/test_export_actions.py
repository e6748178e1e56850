"""File menu export/import actions, driven as a person would, against a real store.

The window is a small stand-in offering exactly the surface the main window promises
(menus, store, settings, run_in_background delivering results on the GUI thread).
"""

from __future__ import annotations

import json
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest
from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QFileDialog, QMenu, QPushButton

from chatapp.core import export
from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.gui import export_actions
from chatapp.paths import app_paths
from tests.golden.sample import long_conversation, sample


class _Deliver(QObject):
    """Runs callables on the GUI thread: emitted from a worker, queued to its slot."""

    call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.gui_thread = threading.current_thread()
        self.call.connect(self.run)

    @Slot(object)
    def run(self, fn) -> None:
        assert threading.current_thread() is self.gui_thread
        fn()


class FakeWindow:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = Settings()
        self.paths = app_paths()
        self.menus = {k: QMenu(k) for k in ("file", "chat", "models", "view", "help")}
        self.conversation_list_menu_hooks: list = []
        self.errors: list[str] = []
        self.infos: list[str] = []
        self.refreshed = 0
        self.saved = 0
        self.selected: list[str] = []
        self.current: str | None = None
        self.gate = threading.Event()  # jobs start when set; tests may hold them back
        self.gate.set()
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._deliver = _Deliver()

    def current_conversation_id(self):
        return self.current

    def selected_conversation_ids(self):
        return list(self.selected)

    def refresh_conversations(self):
        self.refreshed += 1

    def show_error(self, text):
        self.errors.append(text)

    def show_info(self, text):
        self.infos.append(text)

    def save_settings(self):
        self.saved += 1

    def run_in_background(self, fn, on_done, on_error):
        def work():
            self.gate.wait()
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001 - handed to on_error like the window does
                self._deliver.call.emit(lambda e=e: on_error(e))
            else:
                self._deliver.call.emit(lambda: on_done(result))

        self._pool.submit(work)


def _add(store: Store, conv, messages):
    store.create_conversation(
        conv.title,
        system_prompt=conv.system_prompt,
        meta=conv.meta,
        created_at=conv.created_at,
        conversation_id=conv.id,
        model_path=conv.model_path,
    )
    store.insert_messages(messages)
    store.update_conversation(
        conv.id, current_leaf_id=conv.current_leaf_id, updated_at=conv.updated_at
    )


@pytest.fixture
def window(tmp_path, qtbot):
    with Store(tmp_path / "db.sqlite3") as store:
        _add(store, *sample())
        w = FakeWindow(store)
        yield w
        w._pool.shutdown(wait=True)


@pytest.fixture
def actions(window):
    return export_actions.install(window)


def _finish(qtbot, window, actions, n_messages=1):
    qtbot.waitUntil(lambda: len(window.infos) + len(window.errors) >= n_messages, timeout=30_000)
    assert not actions.busy


def test_install_adds_file_menu_entries_and_a_list_hook(window, actions):
    texts = [a.text() for a in window.menus["file"].actions() if not a.isSeparator()]
    assert texts == ["Export conversation…", "Export all…", "Import…"]
    assert window.conversation_list_menu_hooks == [actions.add_context_entries]
    menu = QMenu()
    window.conversation_list_menu_hooks[0](menu, ["a", "b"])
    assert [a.text() for a in menu.actions()] == ["Export 2 conversations…"]
    empty = QMenu()
    window.conversation_list_menu_hooks[0](empty, [])
    assert empty.actions() == []


def test_export_conversation_action_writes_the_chosen_format(
    window, actions, qtbot, tmp_path, monkeypatch
):
    conv, _ = sample()
    window.current = conv.id
    target = tmp_path / "out" / "chat"
    target.parent.mkdir()
    asked = {}

    def fake_save(parent, caption, start, filters, selected):
        asked["start"], asked["filters"], asked["selected"] = start, filters, selected
        return str(target), "HTML page (*.html)"

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(fake_save))
    actions.export_action.trigger()
    _finish(qtbot, window, actions)
    written = target.with_suffix(".html")
    assert written.read_text(encoding="utf-8") == export.to_html(
        window.store.get_conversation(conv.id), window.store.messages(conv.id)
    )
    assert asked["start"].endswith("Sorting in Python_ _fast_ & _stable_.md")
    assert asked["selected"] == "Markdown (*.md)"
    assert window.infos == [f"Exported 1 conversation to {written}"] and window.errors == []
    assert window.settings.export_dir == str(target.parent)
    assert window.settings.extra["export.format"] == "html" and window.saved == 2
    # next time HTML is offered first, and a typed .txt wins over the chosen filter
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(lambda *a: (asked.update(again=a) or str(tmp_path / "x.txt"), a[4])),
    )
    actions.export_action.trigger()
    _finish(qtbot, window, actions, 2)
    assert asked["again"][2].endswith("_stable_.html") and asked["again"][4].startswith("HTML")
    assert (tmp_path / "x.txt").read_text(encoding="utf-8").startswith("Sorting in Python")


def test_export_with_nothing_open_says_so(window, actions):
    actions.export_action.trigger()
    assert window.infos == ["There is no conversation to export yet."]


def test_context_menu_export_of_several_makes_a_zip(window, actions, qtbot, tmp_path, monkeypatch):
    conv, messages = sample()
    _add(
        window.store,
        conv.with_(id="second", title="Second"),
        [
            m.with_(
                id="s" + m.id,
                conversation_id="second",
                parent_id="s" + m.parent_id if m.parent_id else None,
            )
            for m in messages
        ],
    )
    monkeypatch.setattr(
        QFileDialog,
        "getSaveFileName",
        staticmethod(
            lambda *a: (str(tmp_path / "both"), "JSON, lossless, importable files in a zip (*.zip)")
        ),
    )
    menu = QMenu()
    window.conversation_list_menu_hooks[0](menu, [conv.id, "second"])
    menu.actions()[0].trigger()
    _finish(qtbot, window, actions)
    with zipfile.ZipFile(tmp_path / "both.zip") as zf:
        assert sorted(zf.namelist()) == [
            "Second.json",
            "Sorting in Python_ _fast_ & _stable_.json",
            "index.html",
            "index.json",
        ]


def test_import_refreshes_the_list_and_a_bad_file_shows_an_error(
    window, actions, qtbot, tmp_path, monkeypatch
):
    conv, messages = sample()
    good = tmp_path / "copy.json"
    doc = json.loads(export.to_json(conv, messages))
    doc["conversation"]["id"] = "imported"
    good.write_text(json.dumps(doc))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a: (str(good), "")))
    actions.import_action.trigger()
    _finish(qtbot, window, actions)
    assert window.infos == ["Imported 1 conversation (5 messages)."]
    assert window.refreshed == 1 and window.store.get_conversation("imported") is not None

    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "chatapp.conversation", "version": 99}')
    before = window.store.count_conversations()
    actions.start_import(bad)
    _finish(qtbot, window, actions, 2)
    assert window.errors == [
        (
            "bad.json: written by a newer chatapp (schema version 99); this chatapp reads "
            "version 1. Update chatapp to import it."
        )
    ]
    assert window.store.count_conversations() == before and window.refreshed == 1


def test_cancelling_an_import_changes_nothing(window, actions, qtbot, tmp_path):
    conv, messages = sample()
    path = tmp_path / "c.json"
    doc = json.loads(export.to_json(conv, messages))
    doc["conversation"]["id"] = "other"
    path.write_text(json.dumps(doc))
    before = window.store.count_conversations()
    window.gate.clear()  # the job waits until the user has pressed Cancel
    actions.start_import(path)
    cancel = actions._dialog.findChild(QPushButton)
    assert cancel.text() == "Cancel"
    qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    window.gate.set()
    _finish(qtbot, window, actions)
    assert window.infos == ["Cancelled; nothing was changed."] and window.errors == []
    assert window.store.count_conversations() == before and window.refreshed == 0


def _pages(pdf: bytes) -> int:
    return pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") + pdf.count(b"/Type /Page/")


def test_pdf_of_a_long_conversation_has_several_pages(qtbot):
    from chatapp.gui.pdf import conversation_pdf

    conv, messages = long_conversation()
    pdf = conversation_pdf(conv, messages)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert _pages(pdf) > 3
    short = conversation_pdf(*sample())
    assert _pages(short) >= 1 and _pages(short) < _pages(pdf)


def test_pdf_export_runs_in_the_background(window, actions, qtbot, tmp_path):
    conv, messages = long_conversation()
    _add(window.store, conv, messages)
    dest = tmp_path / "long.pdf"
    actions.start_export(["long"], "pdf", dest, as_zip=False)
    _finish(qtbot, window, actions)
    assert window.errors == []
    data = dest.read_bytes()
    assert data.startswith(b"%PDF-") and _pages(data) > 3


def test_pdf_keeps_tool_calls_and_results(qtbot):
    """The PDF is laid out from print_html: the calls (tool, id, arguments) and the
    results are in the text Qt lays out."""
    from PySide6.QtGui import QTextDocument

    from chatapp.gui.pdf import conversation_pdf
    from tests.golden.sample import sample_tools

    conv, messages = sample_tools()
    doc = QTextDocument()
    doc.setHtml(export.print_html(conv, messages))
    text = doc.toPlainText()
    assert "Tool call: calculator (id call_1)" in text and '"expression": "12345 * 6789"' in text
    assert "Tool result: calculator" in text and "83810205" in text
    assert "for call call_2, denied" in text
    pdf = conversation_pdf(conv, messages)
    assert pdf.startswith(b"%PDF-") and _pages(pdf) >= 1
