"""The trash (core.trash, migration 008_trash): a delete moves every row out of sight
(lists, search, exports), a restore puts every row back, the answers' token traces,
prompt token ids and receipts included, also after the database was closed and opened
again; emptying the trash deletes for good. A real SQLite file throughout."""

from __future__ import annotations

import sqlite3

import pytest

from chatapp.core.conversation import Message, Role, new_id
from chatapp.core.logprobs import TokenStep, TokenTrace
from chatapp.core.store import Store
from chatapp.core.store.migrations import MIGRATIONS
from chatapp.core.store.trash import CONVERSATION, MESSAGES, RestoreError, StillWriting

RECEIPT = {"prompt_tokens": 3, "prompt_sha256": "ab" * 32}


def _trace(n: int) -> TokenTrace:
    steps = tuple(
        TokenStep(100 + i, -0.5 * i, -0.25 * i, ((100 + i, -0.5 * i), (7, -3.0))) for i in range(n)
    )
    pieces = {100 + i: f"t{i}".encode() for i in range(n)} | {7: b"x"}
    return TokenTrace(steps, pieces, top_n=2, sampling={"temperature": 0.7})


def _chat(s: Store) -> dict[str, str]:
    """A chat of two turns, a second version of the first answer, answers with traces and
    prompt tokens, pinned and tagged."""
    c = s.create_conversation("Zebras and lions")
    q1 = s.add_message(c.id, Role.USER, "Tell me about zebras")
    a1 = s.add_message(
        c.id, Role.ASSISTANT, "Zebras have stripes.", parent_id=q1.id, meta={"receipt": RECEIPT}
    )
    a1b = s.add_message(c.id, Role.ASSISTANT, "Striped horses.", parent_id=q1.id)
    q2 = s.add_message(c.id, Role.USER, "And lions?", parent_id=a1.id)
    a2 = s.add_message(
        c.id, Role.ASSISTANT, "Lions roar loudly.", parent_id=q2.id, meta={"receipt": RECEIPT}
    )
    for m, n in ((a1, 3), (a2, 4)):
        s.save_prompt_tokens(m.id, list(range(10 * n)))
        s.save_token_trace(m.id, _trace(n))
    s.set_pinned(c.id, True)
    s.set_tags(c.id, ["animals", "Work"])
    return {"conv": c.id, "q1": q1.id, "a1": a1.id, "a1b": a1b.id, "q2": q2.id, "a2": a2.id}


def _everything(s: Store, cid: str) -> dict:
    conv = s.get_conversation(cid)
    msgs = s.messages(cid)
    return {
        "conv": conv,
        "messages": msgs,
        "prompt_tokens": {m.id: s.prompt_tokens(m.id) for m in msgs},
        "traces": s.token_traces(cid),
        "pinned": cid in s.pinned_ids(),
        "tags": s.tags(cid),
    }


def test_a_deleted_chat_is_gone_everywhere_and_comes_back_whole_after_a_reopen(tmp_path):
    path = tmp_path / "db.sqlite3"
    with Store(path) as s:
        ids = _chat(s)
        other = s.create_conversation("Other chat")
        before = _everything(s, ids["conv"])
        assert len(before["traces"]) == 2 and before["prompt_tokens"][ids["a2"]]
        entry = s.trash_conversation(ids["conv"])
        assert entry.kind == CONVERSATION and entry.message_count == 5
        assert entry.title == "Zebras and lions" and entry.preview == "Tell me about zebras"
        # out of every list, the search, the tag list and an export
        assert [c.id for c in s.list_conversations()] == [other.id]
        assert s.count_conversations() == 1 and s.pinned_ids() == set()
        assert s.get_conversation(ids["conv"]) is None and s.get_message(ids["a1"]) is None
        assert s.search("zebras") == [] and s.search("lions") == []
        assert s.all_tags() == [] and s.list_conversations(tag="animals") == []
        assert s.prompt_tokens(ids["a1"]) is None and s.token_trace(ids["a2"]) is None
    with Store(path) as s:  # another process, later
        assert [e.id for e in s.trash_entries()] == [entry.id]
        assert s.find_trash(ids["conv"][:6]) == entry
        restored = s.restore_trash(entry.id)
        assert restored == entry
        after = _everything(s, ids["conv"])
        assert after == before
        assert s.list_conversations()[0].id == ids["conv"]  # pinned: on top again
        # found again: the title and both messages
        assert {h.message_id for h in s.search("lions")} == {None, ids["q2"], ids["a2"]}
        assert {h.conversation_id for h in s.search("zebras")} == {ids["conv"]}
        assert s.trash_entries() == []


def test_deleting_a_message_takes_its_replies_and_their_data_and_undo_restores_it(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        ids = _chat(s)
        before = _everything(s, ids["conv"])
        s.set_current_leaf(ids["conv"], ids["a2"])
        leaf_before = s.get_conversation(ids["conv"]).current_leaf_id
        entry = s.trash_messages(ids["a1"], leaf_after=ids["a1b"])
        assert entry.kind == MESSAGES and entry.message_count == 3
        assert entry.preview == "Zebras have stripes."
        assert [m.id for m in s.messages(ids["conv"])] == [ids["q1"], ids["a1b"]]
        assert s.get_conversation(ids["conv"]).current_leaf_id == ids["a1b"]
        assert s.token_traces(ids["conv"]) == {}
        assert s.prompt_tokens(ids["a2"]) is None
        assert [h.message_id for h in s.search("lions")] == [None]  # the title only
        s.restore_trash(entry.id)
        after = _everything(s, ids["conv"])
        assert after["messages"] == before["messages"]
        assert (
            after["traces"] == before["traces"]
            and after["prompt_tokens"] == before["prompt_tokens"]
        )
        assert after["conv"].current_leaf_id == leaf_before
        assert s.get_message(ids["a2"]).meta["receipt"] == RECEIPT


def test_restore_says_why_it_cannot_and_loses_nothing(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        ids = _chat(s)
        inner = s.trash_messages(ids["q2"], leaf_after=ids["a1"])
        outer = s.trash_messages(ids["a1"], leaf_after=ids["a1b"])
        with pytest.raises(RestoreError, match="deleted later: restore that first"):
            s.restore_trash(inner.id)
        chat = s.trash_conversation(ids["conv"])
        with pytest.raises(RestoreError, match="restore the chat first"):
            s.restore_trash(outer.id)
        assert len(s.trash_entries()) == 3  # nothing lost by the refusals
        s.restore_trash(chat.id)
        s.restore_trash(outer.id)
        s.restore_trash(inner.id)
        assert len(s.messages(ids["conv"])) == 5
        assert len(s.token_traces(ids["conv"])) == 2
        with pytest.raises(RestoreError, match="no longer in the trash"):
            s.restore_trash(chat.id)


def test_emptying_the_trash_deletes_for_good(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        ids = _chat(s)
        keep = s.create_conversation("kept")
        s.trash_messages(ids["q2"], leaf_after=ids["a1"])
        s.trash_conversation(ids["conv"])
        assert s.purge_trash() == 2
        assert s.trash_entries() == [] and s.find_trash(ids["conv"]) is None
        for table in (
            "trash_conversations",
            "trash_messages",
            "trash_prompt_tokens",
            "trash_token_logprobs",
            "trash_conversation_tags",
            "prompt_tokens",
            "token_logprobs",
            "messages",
        ):
            assert s._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
        assert [c.id for c in s.list_conversations()] == [keep.id]


def test_a_2000_message_chat_can_be_deleted_from_its_first_message(tmp_path):
    # a single DELETE of the first message cascades one trigger level per reply; SQLite
    # stops at 1000 ("too many levels of trigger recursion")
    with Store(tmp_path / "db.sqlite3") as s:
        c = s.create_conversation("long")
        parent = None
        msgs = []
        for i in range(2000):
            m = Message(new_id(), c.id, parent, Role.USER, f"m{i}", created_at=1000 + i)
            msgs.append(m)
            parent = m.id
        s.insert_messages(msgs)
        s.set_current_leaf(c.id, parent)
        entry = s.trash_messages(msgs[0].id, leaf_after=None)
        assert entry.message_count == 2000 and s.messages(c.id) == []
        s.restore_trash(entry.id)
        assert [m.id for m in s.active_thread(c.id)] == [m.id for m in msgs]
        s.delete_message(msgs[1].id)  # for good, as a failed answer is
        assert len(s.messages(c.id)) == 1
        chat = s.trash_conversation(c.id)
        s.restore_trash(chat.id)
        s.delete_conversation(c.id)
        assert s.count_conversations() == 0


def test_a_chat_an_answer_is_being_written_into_is_not_deleted(tmp_path):
    from chatapp.core.conversation import FinishReason

    with Store(tmp_path / "db.sqlite3") as s:
        c = s.create_conversation("busy")
        q = s.add_message(c.id, Role.USER, "q")
        s.add_message(
            c.id, Role.ASSISTANT, "", parent_id=q.id, finish_reason=FinishReason.STREAMING
        )
        with pytest.raises(StillWriting):
            s.trash_conversation(c.id)
        with pytest.raises(StillWriting):
            s.trash_messages(q.id, leaf_after=None)
        assert len(s.messages(c.id)) == 2 and s.trash_entries() == []


def test_upgrade_from_the_schema_before_the_trash_keeps_everything_and_deletes(tmp_path):
    path = tmp_path / "db.sqlite3"
    before_trash = [m for m in MIGRATIONS if m[0] < "008"]
    with Store(path, migrations=before_trash) as old:
        ids = _chat(old)
        snapshot = _everything(old, ids["conv"])
        assert "008_trash" not in old.applied_migrations()
    with Store(path) as new:
        assert "008_trash" in new.applied_migrations()
        assert _everything(new, ids["conv"]) == snapshot
        entry = new.trash_conversation(ids["conv"])
        new.restore_trash(entry.id)
        assert _everything(new, ids["conv"]) == snapshot
    # the older code refuses the newer file rather than miss the trash
    with pytest.raises(Exception, match="newer chatapp"):
        Store(path, migrations=before_trash)


def test_the_trash_tables_copy_every_column_of_the_live_ones(tmp_path):
    # a migration that adds a column to a live table must add it to its trash copy too,
    # or a restore would lose that column's value
    with Store(tmp_path / "db.sqlite3") as s:
        db = s._db
        for table in (
            "conversations",
            "messages",
            "prompt_tokens",
            "token_logprobs",
            "conversation_tags",
        ):
            live = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
            copy = {r[1] for r in db.execute(f"PRAGMA table_info(trash_{table})")}
            assert live <= copy, (table, live - copy)


def test_a_database_with_rows_but_no_trash_tables_is_named_damaged(tmp_path):
    path = tmp_path / "db.sqlite3"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE trash_messages")
    db.commit()
    db.close()
    with pytest.raises(Exception, match="trash_messages"):
        Store(path)
