"""service.conversations: conversation edits run on the service's store thread, each
followed by a ConversationsChanged event; a delete goes to the trash and its undo
survives a restart (a new service on the same file), answers' recorded data included."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.core.settings import Settings
from chatapp.core.store import Store
from chatapp.core.store.trash import RestoreError
from chatapp.service import ChatService
from chatapp.service.events import ConversationsChanged, TurnFinished
from tests.service.conftest import Recorder

WAIT = 30


def _turn(service: ChatService, cid: str | None, text: str) -> TurnFinished:
    result = service.send(cid, text).result(WAIT)
    assert isinstance(result, TurnFinished), result
    return result


def test_edits_run_on_the_store_thread_and_tell_every_subscriber(fake_service):
    service = fake_service(reply="fine")
    heard = Recorder()
    service.subscribe(heard)
    first = _turn(service, None, "hello")
    cid = first.conversation_id
    threads: list[str] = []
    commands = service.conversations

    import threading

    real = service._db.submit

    def spy(fn):
        return real(lambda store: (threads.append(threading.current_thread().name), fn(store))[1])

    service._db.submit = spy  # type: ignore[method-assign]
    assert commands.rename(cid, "  Greetings ").result(WAIT).title == "Greetings"
    commands.set_pinned([cid], True).result(WAIT)
    assert commands.set_tags([cid], ["#b", "a", "A"]).result(WAIT) == ["a", "b"]
    assert commands.change_tags(cid, add=["c"], remove=["#B"]).result(WAIT) == ["a", "c"]
    assert set(threads) == {"chat-store"}
    edits = [(e.what, e.conversation_ids) for e in heard.of(ConversationsChanged)]
    assert edits == [("rename", (cid,)), ("pin", (cid,)), ("tags", (cid,)), ("tags", (cid,))]
    with Store(service._db.path) as store:
        conv = store.get_conversation(cid)
        assert conv.title == "Greetings" and store.pinned_ids() == {cid}
        assert store.tags(cid) == ["a", "c"]


def test_branch_switches_do_not_move_the_chat_up(fake_service):
    service = fake_service(reply="answer")
    a = _turn(service, None, "q")
    cid = a.conversation_id
    again = service.regenerate(cid).result(WAIT)
    assert isinstance(again, TurnFinished)
    other = _turn(service, None, "another chat")
    with Store(service._db.path) as store:
        assert store.list_conversations()[0].id == other.conversation_id
    leaf = service.conversations.switch_version(cid, again.message.id, -1).result(WAIT)
    assert leaf == a.message.id
    assert service.conversations.switch_version(cid, a.message.id, -1).result(WAIT) is None
    with Store(service._db.path) as store:
        assert store.get_conversation(cid).current_leaf_id == a.message.id
        assert store.list_conversations()[0].id == other.conversation_id
    service.conversations.show_branch_of(again.message.id).result(WAIT)
    service.conversations.switch_branch(cid, a.message.id).result(WAIT)
    with Store(service._db.path) as store:
        assert store.get_conversation(cid).current_leaf_id == a.message.id


def test_delete_then_restart_then_undo_brings_back_every_row(tmp_path: Path, fake_service):
    service = fake_service(reply="one two three")
    db = service._db.path
    first = _turn(service, None, "first question")
    cid = first.conversation_id
    second = _turn(service, cid, "second question")
    with Store(db) as store:
        before = store.messages(cid, with_tokens=True)
        tokens = {m.id: store.prompt_tokens(m.id) for m in before}
    assert tokens.get(second.message.id)
    assert [m.tokens is not None for m in before].count(True) == 2  # both answers
    gone = service.conversations.delete_message(second.message.parent_id).result(WAIT)
    assert gone.message_count == 2
    chat = service.conversations.delete([cid]).result(WAIT)
    assert [e.conversation_id for e in chat] == [cid]
    service.shutdown()

    later = ChatService(db, Settings())  # a new process on the same file
    try:
        commands = later.conversations
        deleted = commands.deleted().result(WAIT)
        assert [e.kind for e in deleted] == ["conversation", "messages"]
        with pytest.raises(RestoreError, match="restore the chat first"):
            commands.restore(gone.id).result(WAIT)
        found = commands.find_deleted(cid[:8]).result(WAIT)
        assert found is not None and found.id == chat[0].id
        commands.restore(found.id).result(WAIT)
        commands.restore(gone.id).result(WAIT)
        with Store(db) as store:
            after = store.messages(cid, with_tokens=True)
            assert after == before  # token traces included (with_tokens)
            assert {m.id: store.prompt_tokens(m.id) for m in after} == tokens
            assert store.get_message(second.message.id).meta["receipt"]
        assert commands.deleted().result(WAIT) == []
        # deleted again and the trash emptied: gone for good
        commands.delete([cid]).result(WAIT)
        assert commands.purge_deleted().result(WAIT) == 1
        assert commands.find_deleted(cid).result(WAIT) is None
    finally:
        later.shutdown()


def test_deleting_a_chat_or_its_messages_deletes_its_saved_kv_state(fake_service):
    """The KV state saved for a chat (engine.state_disk) holds its tokens, that is its
    text: a delete takes it away, whichever model saved it; other chats' stay."""
    import numpy as np

    from chatapp.engine.state_disk import SUFFIX, StateDisk
    from chatapp.paths import app_paths
    from chatapp.service.saved_states import STATE_FOLDER

    service = fake_service(reply="fine")
    kept = _turn(service, None, "keep me").conversation_id
    gone = _turn(service, None, "delete me").conversation_id
    pruned = _turn(service, None, "delete my answer")
    folder = app_paths().cache / STATE_FOLDER
    for n, key in enumerate(({"model": "a"}, {"model": "b"})):
        disk = StateDisk(folder, key, 1 << 20)
        for cid in (kept, gone, pruned.conversation_id):
            ids = np.arange(32 + n, dtype=np.int32)
            assert disk.save(cid, ids, bytearray(b"state" * 10), 50, 32)
        disk.close()

    def owners() -> list[str]:
        out = []
        for p in folder.glob(f"*{SUFFIX}"):
            raw = p.read_bytes()
            out.append(next(c for c in (kept, gone, pruned.conversation_id) if c.encode() in raw))
        return sorted(out)

    assert len(owners()) == 6
    service.conversations.delete([gone]).result(WAIT)
    service.conversations.delete_message(pruned.message.id).result(WAIT)
    assert owners() == [kept, kept]
