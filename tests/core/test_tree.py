"""The conversation tree: versions, the branch a version selects, delete with undo data."""

from __future__ import annotations

from chatapp.core.conversation import Message, Role, thread
from chatapp.core.store import Store
from chatapp.core.tree import Tree


def _m(mid: str, parent: str | None, t: float, role: Role = Role.USER) -> Message:
    return Message(mid, "c", parent, role, f"text {mid}", created_at=t)


def _tree() -> list[Message]:
    # u1 ── a1 ── u2 ── a2
    #   │         └──── a2b (regenerated)
    #   └── a1b ── u3   (u1 answered again, then a new question on that branch)
    # u1b (the first message edited) ── a4
    return [
        _m("u1", None, 1),
        _m("a1", "u1", 2, Role.ASSISTANT),
        _m("u2", "a1", 3),
        _m("a2", "u2", 4, Role.ASSISTANT),
        _m("a1b", "u1", 5, Role.ASSISTANT),
        _m("u3", "a1b", 6),
        _m("a2b", "u2", 7, Role.ASSISTANT),
        _m("u1b", None, 8),
        _m("a4", "u1b", 9, Role.ASSISTANT),
    ]


def test_versions_are_siblings_in_creation_order():
    t = Tree(_tree())
    assert [m.id for m in t.siblings("a1b")] == ["a1", "a1b"]
    assert t.version("a1") == (1, 2) and t.version("a1b") == (2, 2)
    assert t.version("u1b") == (2, 2)  # roots are versions of each other
    assert t.version("u2") == (1, 1)
    assert t.version("nope") == (0, 0) and t.siblings("nope") == []
    assert t.versions(["u1", "a1", "u2", "a2b"]) == {"u1": (1, 2), "a1": (1, 2), "a2b": (2, 2)}


def test_switching_a_version_selects_the_newest_leaf_under_it():
    msgs = _tree()
    t = Tree(msgs)
    assert t.newest_leaf("u1") == "a2b"  # a2b (t=7) is newer than u3 (t=6)
    assert t.newest_leaf("a1b") == "u3"
    assert t.newest_leaf("a4") == "a4"
    assert t.switch("a1", +1) == "u3"
    assert t.switch("a1b", -1) == "a2b"
    assert t.switch("a1", -1) is None and t.switch("a1b", +1) is None
    assert t.switch("u1b", -1) == "a2b"
    # the thread follows the chosen version all the way down
    assert [m.id for m in thread(msgs, t.switch("a2b", -1))] == ["u1", "a1", "u2", "a2"]


def test_delete_plans_a_neighbour_and_keeps_what_undo_needs():
    t = Tree(_tree())
    d = t.plan_delete("a1", current_leaf_id="a2b")
    assert d is not None
    assert [m.id for m in d.messages] == ["a1", "u2", "a2", "a2b"]  # parents first
    assert d.leaf_before == "a2b" and d.leaf_after == "u3"  # the other version of a1
    # a branch that is not shown: the shown one stays
    d = t.plan_delete("a1b", current_leaf_id="a2b")
    assert d.leaf_after == "a2b" and [m.id for m in d.messages] == ["a1b", "u3"]
    # the last version: its parent becomes the leaf
    d = t.plan_delete("u3", current_leaf_id="u3")
    assert d.leaf_after == "a1b"
    # the second of two roots: the first root's newest leaf
    d = t.plan_delete("u1b", current_leaf_id="a4")
    assert d.leaf_after == "a2b"
    assert t.plan_delete("nope", "a4") is None


def test_delete_everything_leaves_no_leaf():
    t = Tree([_m("u", None, 1), _m("a", "u", 2, Role.ASSISTANT)])
    d = t.plan_delete("u", "a")
    assert d.leaf_after is None and len(d.messages) == 2


def test_a_cycle_in_damaged_data_does_not_hang():
    bad = [_m("x", "y", 1), _m("y", "x", 2)]
    t = Tree(bad)
    assert [m.id for m in t.subtree("x")] == ["x", "y"]
    assert t.version("x") == (1, 1)
    assert t.newest_leaf("x") is None


def test_delete_and_undo_through_the_store_restore_every_message(tmp_path):
    store = Store(tmp_path / "db.sqlite3")
    conv = store.create_conversation("t")
    u1 = store.add_message(conv.id, Role.USER, "q1")
    a1 = store.add_message(conv.id, Role.ASSISTANT, "a1", parent_id=u1.id)
    u2 = store.add_message(conv.id, Role.USER, "q2", parent_id=a1.id)
    store.add_message(conv.id, Role.ASSISTANT, "a2", parent_id=u2.id)
    a1b = store.add_message(conv.id, Role.ASSISTANT, "a1b", parent_id=u1.id)
    store.set_current_leaf(conv.id, store.messages(conv.id)[3].id)  # back on a1's branch
    before = store.messages(conv.id)
    # the light links give the same versions as whole messages
    ids = [m.id for m in before]
    assert Tree(store.message_links(conv.id)).versions(ids) == Tree(before).versions(ids)
    assert Tree(before).versions(ids) == {a1.id: (1, 2), a1b.id: (2, 2)}
    d = Tree(before).plan_delete(a1.id, store.get_conversation(conv.id).current_leaf_id)
    with store.transaction():
        store.delete_message(d.message_id)
        store.set_current_leaf(conv.id, d.leaf_after)
    assert [m.content for m in store.active_thread(conv.id)] == ["q1", "a1b"]
    assert len(store.messages(conv.id)) == 2
    with store.transaction():
        store.insert_messages(d.messages)
        store.set_current_leaf(conv.id, d.leaf_before)
    assert store.messages(conv.id) == before
    assert [m.content for m in store.active_thread(conv.id)] == ["q1", "a1", "q2", "a2"]
    assert a1b.id in {m.id for m in store.messages(conv.id)}
    store.close()
