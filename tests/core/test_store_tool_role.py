"""Migration 009: a database from before tool messages takes them after the upgrade,
keeping every row, its search index and the role check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatapp.core.conversation import Role
from chatapp.core.store import Store
from chatapp.core.store.migrations import MIGRATIONS


def test_upgrade_accepts_tool_messages_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = Store(path, migrations=MIGRATIONS[:7])
    conv = old.create_conversation("Old chat")
    user = old.add_message(conv.id, Role.USER, "find the lighthouse")
    with pytest.raises(sqlite3.IntegrityError):
        old.add_message(conv.id, Role.TOOL, "42", parent_id=user.id)
    old.close()

    store = Store(path)
    tool = store.add_message(
        conv.id, Role.TOOL, "lighthouse result", parent_id=user.id, meta={"tool_call_id": "c1"}
    )
    assert [m.role for m in store.active_thread(conv.id)] == [Role.USER, Role.TOOL]
    assert store.get_message(tool.id).meta["tool_call_id"] == "c1"
    assert {h.message_id for h in store.search("lighthouse")} >= {user.id, tool.id}
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(
            "INSERT INTO messages(id, conversation_id, role, content, created_at)"
            " VALUES ('x', ?, 'robot', '', 0)",
            (conv.id,),
        )
    db.close()
