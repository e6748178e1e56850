"""Full-text search: migration 004 (blank and upgraded databases), highlighting, hostile
queries, the index staying right through edits and deletes, branch selection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatapp.core.conversation import Role
from chatapp.core.search import (
    HIT_END,
    HIT_START,
    fts_query,
    leaf_through,
    mark_hits,
    open_readonly,
    search,
    snippet_parts,
)
from chatapp.core.store import Store
from chatapp.core.store.migrations import MIGRATIONS

# What people type into a search box that means something to FTS5.
HOSTILE = [
    "foo*",
    "*",
    '"unbalanced',
    'un"balanced"quote"',
    '""',
    "AND",
    "python AND",
    "OR python",
    "NOT",
    "NEAR",
    "NEAR(sort python, 2)",
    "-",
    "- python",
    "python -sorted",
    "(",
    ")",
    "(python",
    "key:",
    ":",
    "content:python",
    "thinking: python",
    "^python",
    "python^",
    "{content thinking}: x",
    "+",
    "'",
    "\\",
    "%_",
    "\x00python",
    "python\x00",
    "🙂",
    "   ",
    "",
    "a" * 5000,
    "word " * 200,
    "SELECT * FROM messages; DROP TABLE messages; --",
]


def _db(tmp_path: Path) -> Store:
    return Store(tmp_path / "chat.db")


def _sample(store: Store) -> dict[str, str]:
    c = store.create_conversation("Sorting in Python")
    u = store.add_message(c.id, Role.USER, "How do I sort a list of dicts by a key?")
    a = store.add_message(
        c.id,
        Role.ASSISTANT,
        "Use sorted(items, key=lambda d: d['age']); the sort is stable.",
        parent_id=u.id,
        thinking="They want the key function explained.",
    )
    d = store.create_conversation("Café recipes")
    q = store.add_message(d.id, Role.USER, "A recipe for crème brûlée, please.")
    return {"conv": c.id, "user": u.id, "answer": a.id, "conv2": d.id, "q": q.id}


def _index_ok(store: Store) -> None:
    # FTS5's own check, comparing the index with the content tables (rank=1)
    store._db.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    store._db.execute(
        "INSERT INTO conversations_fts(conversations_fts, rank) VALUES ('integrity-check', 1)"
    )


def test_blank_database_gets_the_index(tmp_path):
    with _db(tmp_path) as store:
        assert "004_search_index" in store.applied_migrations()
        ids = _sample(store)
        hits = store.search("stable")
        assert [(h.conversation_id, h.message_id, h.role) for h in hits] == [
            (ids["conv"], ids["answer"], "assistant")
        ]
        assert hits[0].title == "Sorting in Python"
        _index_ok(store)


def test_upgrade_indexes_existing_rows(tmp_path):
    path = tmp_path / "old.db"
    before_004 = [m for m in MIGRATIONS if m[0] < "004"]
    with Store(path, migrations=before_004) as old:
        assert "004_search_index" not in old.applied_migrations()
        ids = _sample(old)
        for i in range(50):
            c = old.create_conversation(f"Filler {i}")
            old.add_message(c.id, Role.USER, f"nothing to see number {i}")
    with Store(path) as store:
        assert {"004_search_index", "005_pins_and_tags"} <= set(store.applied_migrations())
        hits = store.search("brulee")
        assert [(h.conversation_id, h.message_id) for h in hits] == [(ids["conv2"], ids["q"])]
        titles = store.search("sorting")
        assert titles[0].message_id is None and titles[0].conversation_id == ids["conv"]
        assert len(store.search("nothing see", limit=100)) == 50
        _index_ok(store)
        # and it keeps working for rows written after the upgrade
        store.add_message(ids["conv"], Role.USER, "zebra crossing", parent_id=ids["answer"])
        assert len(store.search("zebra")) == 1


def test_hits_are_highlighted(tmp_path):
    with _db(tmp_path) as store:
        _sample(store)
        hit = store.search("lambda")[0]
        assert f"{HIT_START}lambda{HIT_END}" in hit.snippet
        assert mark_hits(hit.snippet, "[", "]") == (
            "Use sorted(items, key=[lambda] d: d['age']); the sort is stable."
        )
        assert ("lambda", True) in snippet_parts(hit.snippet)
        # thinking is searched too, and the snippet comes from the column that matched
        hit = store.search("explained")[0]
        assert mark_hits(hit.snippet, "<", ">") == "They want the key function <explained>."
        # titles are highlighted as well
        title = store.search("python")[0]
        assert title.message_id is None
        assert mark_hits(title.snippet, "*", "*") == "Sorting in *Python*"


def test_words_diacritics_and_prefix(tmp_path):
    with _db(tmp_path) as store:
        ids = _sample(store)
        # every word must be there (any order), accents do not matter, the last word is a prefix
        assert [h.message_id for h in store.search("stable sorted")] == [ids["answer"]]
        assert [h.message_id for h in store.search("key dicts")] == [ids["user"]]
        assert store.search("dicts stable") == []
        assert [h.message_id for h in store.search("creme brulee")] == [ids["q"]]
        assert [h.conversation_id for h in store.search("cafe")] == [ids["conv2"]]
        assert [h.message_id for h in store.search("lamb")] == [ids["answer"]]


def test_long_messages_get_a_short_snippet(tmp_path):
    with _db(tmp_path) as store:
        c = store.create_conversation("long")
        text = "filler " * 3000 + "needle " + "filler " * 3000
        store.add_message(c.id, Role.ASSISTANT, text)
        (hit,) = store.search("needle")
        assert f"{HIT_START}needle{HIT_END}" in hit.snippet
        assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
        assert len(hit.snippet) < 200


@pytest.mark.parametrize("query", HOSTILE)
def test_fts_syntax_is_searched_as_text(tmp_path, query):
    with _db(tmp_path) as store:
        _sample(store)
        c = store.create_conversation("syntax")
        store.add_message(c.id, Role.USER, "NEAR and AND or NOT content: thinking key: foo* bar")
        hits = store.search(query)  # never raises
        if fts_query(query) is None:
            assert hits == []
        # whatever is found is a real match, with the matching text highlighted
        for h in hits:
            assert any(hit and text.strip() for text, hit in snippet_parts(h.snippet)), h


def test_syntax_words_find_themselves(tmp_path):
    with _db(tmp_path) as store:
        c = store.create_conversation("syntax")
        m = store.add_message(c.id, Role.USER, "NEAR and AND or NOT content: key: foo* bar")
        for q in ["NEAR", "AND", "NOT", "foo*", "content:", "key:", '"foo', "bar)", "(foo"]:
            assert [h.message_id for h in store.search(q)] == [m.id], q
        assert store.search("-") == [] and store.search("* ( ) :") == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_text_never_raises(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz.db"
    with Store(path) as store:
        if store.count_conversations() == 0:
            _sample(store)
        store.search(text)


def test_index_follows_edits_and_deletes(tmp_path):
    with _db(tmp_path) as store:
        ids = _sample(store)
        # a streaming answer, saved again and again: only its latest text is found
        c = store.create_conversation("stream")
        m = store.add_message(c.id, Role.ASSISTANT, "")
        for text in ["first draft", "first draft grows", "replaced entirely by the final text"]:
            store.update_message(m.id, content=text)
        assert store.search("draft") == []
        assert [h.message_id for h in store.search("final")] == [m.id]
        # a change of anything but the text keeps the index as it is
        store.update_message(m.id, finish_reason="stop", completion_tokens=9, meta={"x": 1})
        assert [h.message_id for h in store.search("final")] == [m.id]
        _index_ok(store)
        # rename
        store.rename_conversation(ids["conv"], "Ordering with Python")
        assert [h.message_id for h in store.search("ordering")] == [None]
        assert all(h.message_id for h in store.search("sorting"))
        # deleting a message deletes its replies from the index too
        store.delete_message(ids["user"])
        assert store.search("stable") == [] and store.search("dicts") == []
        assert [h.conversation_id for h in store.search("ordering")] == [ids["conv"]]
        # deleting a conversation (messages go by cascade)
        store.delete_conversation(ids["conv2"])
        assert store.search("brulee") == [] and store.search("cafe") == []
        _index_ok(store)


def test_vacuum_keeps_the_index_right(tmp_path):
    # the index refers to rows by rowid; VACUUM must not leave it pointing elsewhere
    with _db(tmp_path) as store:
        c = store.create_conversation("v")
        msgs = [store.add_message(c.id, Role.USER, f"word{i}z common") for i in range(300)]
        for m in msgs[::3]:
            store.delete_message(m.id)
        store._db.execute("VACUUM")
        for i in (1, 2, 200, 299):
            assert [h.message_id for h in store.search(f"word{i}z")] == [msgs[i].id]
        _index_ok(store)
        store.rebuild_search_index()
        _index_ok(store)


def test_readonly_connection_searches_beside_the_writer(tmp_path):
    with _db(tmp_path) as store:
        ids = _sample(store)
        ro = open_readonly(store.path)
        try:
            assert [h.message_id for h in search(ro, "stable")] == [ids["answer"]]
            with pytest.raises(sqlite3.OperationalError):
                ro.execute("DELETE FROM messages")
        finally:
            ro.close()


def test_limit_counts_titles_and_messages(tmp_path):
    with _db(tmp_path) as store:
        for i in range(5):
            c = store.create_conversation(f"apple {i}")
            for _ in range(5):
                store.add_message(c.id, Role.USER, "apple pie")
        hits = store.search("apple", limit=8)
        assert len(hits) == 8
        assert [h.message_id is None for h in hits] == [True] * 5 + [False] * 3
        assert store.search("apple", limit=0) == []


def _two_branches(store: Store) -> dict[str, str]:
    c = store.create_conversation("branches", created_at=1000.0)
    q = store.add_message(c.id, Role.USER, "question", created_at=1001.0)
    a1 = store.add_message(
        c.id, Role.ASSISTANT, "first apple answer", parent_id=q.id, created_at=1002.0
    )
    f1 = store.add_message(
        c.id, Role.USER, "follow up on apple", parent_id=a1.id, created_at=1003.0
    )
    a2 = store.add_message(
        c.id, Role.ASSISTANT, "second banana answer", parent_id=q.id, created_at=1004.0
    )
    return {"conv": c.id, "q": q.id, "a1": a1.id, "f1": f1.id, "a2": a2.id}


def test_show_branch_of_selects_the_hit_branch(tmp_path):
    with _db(tmp_path) as store:
        ids = _two_branches(store)
        updated = store.get_conversation(ids["conv"]).updated_at
        assert store.get_conversation(ids["conv"]).current_leaf_id == ids["a2"]
        # a hit in the other branch: its newest leaf becomes current
        (hit,) = store.search("first apple")
        assert store.show_branch_of(hit.message_id) == ids["f1"]
        conv = store.get_conversation(ids["conv"])
        assert conv.current_leaf_id == ids["f1"]
        assert conv.updated_at == updated  # the chat does not jump to the top of the list
        assert [m.id for m in store.active_thread(conv.id)] == [ids["q"], ids["a1"], ids["f1"]]
        # a hit already on the shown branch keeps the leaf
        assert store.show_branch_of(ids["q"]) == ids["f1"]
        assert store.show_branch_of(ids["a2"]) == ids["a2"]
        assert store.show_branch_of("no-such-id") is None


def test_leaf_through_picks_the_newest_child():
    from chatapp.core.conversation import Message

    def m(i: str, parent: str | None, t: float) -> Message:
        return Message(i, "c", parent, Role.USER, i, t)

    msgs = [m("r", None, 0), m("a", "r", 1), m("b", "r", 1), m("b1", "b", 2), m("a1", "a", 3)]
    assert leaf_through(msgs, "r", None) == "b1"  # equal times: the later one
    assert leaf_through(msgs, "a", "b1") == "a1"
    assert leaf_through(msgs, "r", "a1") == "a1"
    assert leaf_through(msgs, "zzz", "a1") == "a1"


def test_relevance_order_and_newest_first_for_very_common_words(tmp_path, monkeypatch):
    from chatapp.core import search as search_mod

    with _db(tmp_path) as store:
        c = store.create_conversation("c")
        weak = store.add_message(c.id, Role.USER, "kiwi " + "filler words here " * 30)
        strong = store.add_message(c.id, Role.USER, "kiwi kiwi kiwi")
        # few matches: by relevance (bm25), the strong match first though it is newer
        # only by insertion; make the weak one the newest to be sure the order is rank
        newest_weak = store.add_message(c.id, Role.USER, "kiwi " + "more filler text " * 30)
        ranked = [h.message_id for h in store.search("kiwi")]
        assert ranked[0] == strong.id and set(ranked) == {weak.id, strong.id, newest_weak.id}
        # more matches than RANK_LIMIT: the newest first, and still only `limit` of them
        monkeypatch.setattr(search_mod, "RANK_LIMIT", 2)
        assert [h.message_id for h in store.search("kiwi", limit=2)] == [newest_weak.id, strong.id]
        assert all(HIT_START + "kiwi" + HIT_END in h.snippet for h in store.search("kiwi"))


def test_query_text_becomes_quoted_words():
    assert fts_query("sort python") == '"sort" "python"*'
    assert fts_query('say "hi" NEAR(x)') == '"say" """hi""" "NEAR(x)"*'
    assert fts_query("a") == '"a"'  # one letter: no prefix (it would merge half the index)
    assert fts_query("x -") == '"x"'  # a lone '-' is no word
    assert fts_query("- * ( ) :") is None
    assert fts_query("python", prefix_last=False) == '"python"'
