"""The window at start on a damaged database: a dialog that names the file and offers to
keep a copy and recover; the window then starts on the recovered file."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from chatapp.app import build_window
from chatapp.core.conversation import Role
from chatapp.core.store import DatabaseDamaged, Store
from chatapp.gui.damaged_db import damaged_box, offer_recovery
from chatapp.paths import app_paths


def _damaged_db() -> Path:
    path = app_paths().ensure().database
    with Store(path) as s:
        for i in range(40):
            conv = s.create_conversation(f"chat {i}")
            parent = None
            for j in range(8):
                parent = s.add_message(
                    conv.id, Role.USER, f"words {i}.{j} " * 40, parent_id=parent
                ).id
    db = sqlite3.connect(path)
    pages = [r[0] for r in db.execute("SELECT pageno FROM dbstat WHERE name = 'messages'")]
    db.close()
    data = bytearray(path.read_bytes())
    start = (pages[len(pages) // 2] - 1) * 4096
    data[start : start + 4096] = random.Random(5).randbytes(4096)
    path.write_bytes(bytes(data))
    return path


def _answer_boxes(answers: list[str], seen: list[str]) -> None:
    """Click the named button of each message box as it comes up."""

    def poll() -> None:
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox) and box.isVisible():
            seen.append(box.text())
            want = answers.pop(0)
            for b in box.buttons():
                if b.text().replace("&", "") == want:
                    b.click()
                    break
        if answers:
            QTimer.singleShot(20, poll)

    QTimer.singleShot(20, poll)


def test_a_damaged_database_is_named_and_recovered_before_the_window_starts(qtbot) -> None:
    path = _damaged_db()
    with pytest.raises(DatabaseDamaged) as info:
        build_window()
    box = damaged_box(info.value)
    qtbot.addWidget(box)
    assert str(path) in box.text() and "is damaged" in box.text()
    assert [b.text() for b in box.buttons()] == ["Keep a copy and recover", "Quit"]

    seen: list[str] = []
    _answer_boxes(["Keep a copy and recover", "OK"], seen)
    assert offer_recovery(info.value, path) is True
    assert seen[0] == info.value.message
    assert seen[1].startswith("Recovered 40 conversation(s) and ")
    assert len(list(path.parent.glob("*.damaged-*.sqlite3"))) == 1
    window = build_window()
    qtbot.addWidget(window)
    assert window.store.count_conversations() == 40
    window.session.shutdown()
    window.store.close()


def test_quit_leaves_the_damaged_file_alone(qtbot) -> None:
    path = _damaged_db()
    before = path.read_bytes()
    with pytest.raises(DatabaseDamaged) as info:
        build_window()
    seen: list[str] = []
    _answer_boxes(["Quit"], seen)
    assert offer_recovery(info.value, path) is False
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.damaged-*"))
