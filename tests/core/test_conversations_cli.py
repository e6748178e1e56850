"""`chatapp conversations` edits through the chat service: rename, switch a branch,
delete a message or a chat to the trash, list the trash, restore (after the process
that deleted is gone), empty it. The real dispatcher over a real database."""

from __future__ import annotations

import pytest

from chatapp import cli
from chatapp.core.conversation import Role
from chatapp.core.store import Store
from chatapp.paths import app_paths


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch):
    monkeypatch.setattr(
        cli,
        "COMMAND_MODULES",
        ("chatapp.cli.conversations", "chatapp.cli.search", "chatapp.cli.export"),
    )


def _db() -> Store:
    return Store(app_paths().ensure().database)


def _chat() -> dict[str, str]:
    """question -> first answer -> follow-up -> its answer, and a second answer (current)."""
    with _db() as s:
        c = s.create_conversation("Fruit talk", created_at=1000.0)
        q = s.add_message(c.id, Role.USER, "Which fruit is best?", created_at=1001.0)
        a1 = s.add_message(c.id, Role.ASSISTANT, "Apples.", parent_id=q.id, created_at=1002.0)
        f = s.add_message(c.id, Role.USER, "Why apples?", parent_id=a1.id, created_at=1003.0)
        fa = s.add_message(c.id, Role.ASSISTANT, "Crunch.", parent_id=f.id, created_at=1004.0)
        a2 = s.add_message(c.id, Role.ASSISTANT, "Kiwis.", parent_id=q.id, created_at=1005.0)
        s.save_prompt_tokens(fa.id, [1, 2, 3])
        other = s.create_conversation("Other", created_at=900.0)
        return {"conv": c.id, "q": q.id, "a1": a1.id, "f": f.id, "fa": fa.id, "a2": a2.id,
                "other": other.id}  # fmt: skip


def _ids_listed(capsys) -> list[str]:
    assert cli.run(["conversations"]) == 0
    return [line.split("  ")[0] for line in capsys.readouterr().out.splitlines()]


def test_rename_and_switch_a_branch(capsys):
    ids = _chat()
    assert cli.run(["conversations", ids["conv"][:8], "--rename", "Best fruit"]) == 0
    assert capsys.readouterr().out == f"{ids['conv'][:12]}  Best fruit: not pinned, no tags\n"
    assert cli.run(["conversations", ids["conv"], "--branch", ids["f"][:8]]) == 0
    capsys.readouterr()
    with _db() as s:
        conv = s.get_conversation(ids["conv"])
        assert conv.title == "Best fruit" and conv.current_leaf_id == ids["fa"]
    assert cli.run(["conversations", ids["conv"]]) == 0
    assert "Crunch." in capsys.readouterr().out
    assert cli.run(["conversations", ids["conv"], "--branch", "zzzz"]) == 1
    assert "No message zzzz in this conversation" in capsys.readouterr().err
    assert cli.run(["conversations", ids["conv"], "--rename", "  "]) == 1
    assert capsys.readouterr().err == "chatapp: error: --rename needs a title.\n"


def test_delete_list_restore_and_empty_the_trash(capsys):
    ids = _chat()
    # a message with its replies
    assert cli.run(["conversations", ids["conv"], "--delete-message", ids["a1"][:8]]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Deleted 3 messages of") and f"--restore {ids['a1'][:12]}" in out
    with _db() as s:
        assert [m.id for m in s.messages(ids["conv"])] == [ids["q"], ids["a2"]]
        assert s.prompt_tokens(ids["fa"]) is None
    # the whole chat: gone from the list, the search and the export
    assert cli.run(["conversations", ids["conv"], "--delete"]) == 0
    assert f"undo: chatapp conversations --restore {ids['conv'][:12]}" in capsys.readouterr().out
    assert _ids_listed(capsys) == [ids["other"][:12]]
    assert cli.run(["search", "fruit"]) == 1
    assert cli.run(["export", ids["conv"], "-o", "-"]) == 1
    capsys.readouterr()
    assert cli.run(["conversations", ids["other"], "--delete"]) == 0
    assert cli.run(["export", "--all", "-o", "-"]) == 1
    assert "There are no conversations to export" in capsys.readouterr().err
    assert cli.run(["conversations", "--restore", ids["other"]]) == 0
    capsys.readouterr()
    assert cli.run(["conversations", ids["conv"]]) == 1
    assert "It is in the trash: chatapp conversations --restore" in capsys.readouterr().err
    assert cli.run(["conversations", "--deleted"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert f"chat {ids['conv'][:12]}  Fruit talk  (2 messages)" in lines[0]
    assert f"3 messages {ids['a1'][:8]} of {ids['conv'][:12]}  Fruit talk: Apples." in lines[1]
    # the message cannot come back before its chat; then both do
    assert cli.run(["conversations", "--restore", ids["a1"][:10]]) == 1
    assert "restore the chat first" in capsys.readouterr().err
    assert cli.run(["conversations", "--restore", ids["conv"][:10]]) == 0
    assert capsys.readouterr().out == f"Restored {ids['conv'][:12]}  Fruit talk\n"
    assert cli.run(["conversations", "--restore", ids["a1"]]) == 0
    assert capsys.readouterr().out == f"Restored 3 messages in {ids['conv'][:12]}  Fruit talk\n"
    with _db() as s:
        assert len(s.messages(ids["conv"])) == 5 and s.prompt_tokens(ids["fa"]) == [1, 2, 3]
    assert cli.run(["search", "crunch"]) == 0
    capsys.readouterr()
    # deleted again and the trash emptied: for good
    assert cli.run(["conversations", ids["other"], "--delete"]) == 0
    assert cli.run(["conversations", "--purge-deleted"]) == 0
    assert "1 delete(s) are gone for good" in capsys.readouterr().out
    assert cli.run(["conversations", "--deleted"]) == 0
    assert capsys.readouterr().out == "The trash is empty.\n"
    assert cli.run(["conversations", "--restore", ids["other"]]) == 1
    assert "Nothing deleted has the id" in capsys.readouterr().err
    assert _ids_listed(capsys) == [ids["conv"][:12]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restore"], "Give the id of the deleted conversation or message for --restore."),
        (["--deleted", "--purge-deleted"], "--deleted, --restore and --purge-deleted go alone."),
        (["abcd", "--deleted"], "--deleted and --purge-deleted take no conversation id."),
        (["--delete"], "Give a conversation id for --tree, --rename"),
        (["abcd", "--delete", "--pin"], "--delete goes alone."),
        (["abcd", "--rename", "x", "--delete-message", "ef"], "--delete-message goes alone."),
    ],
)
def test_bad_combinations_are_one_line_errors(capsys, args, message):
    _chat()
    assert cli.run(["conversations", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
