import sqlite3

import pytest

from chatapp.core.conversation import FinishReason, Role, thread
from chatapp.core.errors import StoreError
from chatapp.core.store import Store
from chatapp.core.store.migrations import MIGRATIONS


def test_blank_database_gets_every_migration(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        assert s.applied_migrations() == sorted(n for n, _ in MIGRATIONS)
        mode = s._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert s._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_upgrade_from_oldest_schema_keeps_data(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Store(path, migrations=MIGRATIONS[:1]) as old:
        conv = old.create_conversation("kept")
        old.add_message(conv.id, Role.USER, "hello")
        assert old.applied_migrations() == ["001_initial"]
    with Store(path) as new:
        assert new.applied_migrations() == sorted(n for n, _ in MIGRATIONS)
        assert [m.content for m in new.active_thread(conv.id)] == ["hello"]
        new.set_state("last_model", "/x.gguf")
        assert new.get_state("last_model") == "/x.gguf"


def test_refuses_database_from_newer_version(tmp_path):
    path = tmp_path / "db.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('999_from_the_future', 0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer chatapp"):
        Store(path)


def test_messages_form_a_tree_and_branches_survive(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        c = s.create_conversation("t")
        u = s.add_message(c.id, Role.USER, "q")
        a1 = s.add_message(c.id, Role.ASSISTANT, "first", parent_id=u.id)
        a2 = s.add_message(c.id, Role.ASSISTANT, "second", parent_id=u.id)
        assert [m.content for m in s.active_thread(c.id)] == ["q", "second"]
        s.set_current_leaf(c.id, a1.id)
        assert [m.content for m in s.active_thread(c.id)] == ["q", "first"]
        assert len(s.messages(c.id)) == 3
        assert thread(s.messages(c.id), a2.id)[-1].id == a2.id


def test_update_message_and_finish_reason(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        c = s.create_conversation("t")
        m = s.add_message(c.id, Role.ASSISTANT, "", finish_reason=FinishReason.STREAMING)
        s.update_message(m.id, content="partial", finish_reason=FinishReason.CANCELLED)
        got = s.get_message(m.id)
        assert got.content == "partial" and got.finish_reason is FinishReason.CANCELLED


def test_delete_message_moves_the_current_leaf_to_its_parent(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        c = s.create_conversation("t")
        u = s.add_message(c.id, Role.USER, "q")
        a = s.add_message(c.id, Role.ASSISTANT, "", parent_id=u.id)
        s.delete_message(a.id)
        assert s.get_message(a.id) is None
        assert s.get_conversation(c.id).current_leaf_id == u.id
        assert [m.content for m in s.active_thread(c.id)] == ["q"]


def test_transaction_rolls_back_on_error(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        with pytest.raises(RuntimeError), s.transaction():
            s.create_conversation("doomed")
            raise RuntimeError("boom")
        assert s.count_conversations() == 0


def test_list_is_most_recent_first_and_delete_cascades(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        a = s.create_conversation("a", created_at=1)
        b = s.create_conversation("b", created_at=2)
        assert [c.title for c in s.list_conversations()] == ["b", "a"]
        s.add_message(a.id, Role.USER, "bump")
        assert [c.title for c in s.list_conversations()] == ["a", "b"]
        s.delete_conversation(a.id)
        assert s.messages(a.id) == []
        assert [c.id for c in s.list_conversations()] == [b.id]
        assert s.find_conversation(b.id[:8]).id == b.id
