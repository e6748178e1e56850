"""`chatapp search`, `chatapp conversations ID --tree`, pins and tags from the command
line: the real dispatcher over a real database under CHATAPP_HOME."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatapp import cli
from chatapp.core.conversation import FinishReason, Role
from chatapp.core.store import Store
from chatapp.paths import app_paths

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def only_these_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("chatapp.cli.conversations", "chatapp.cli.search"))


def _db() -> Store:
    return Store(app_paths().ensure().database)


def _branched() -> dict[str, str]:
    """question -> (first answer -> follow-up) | (second answer, current)."""
    with _db() as s:
        c = s.create_conversation("Fruit talk", created_at=1000.0, model_path="/m/smol.gguf")
        q = s.add_message(c.id, Role.USER, "Which fruit is best?", created_at=1001.0)
        a1 = s.add_message(
            c.id, Role.ASSISTANT, "Apples, clearly.", parent_id=q.id, created_at=1002.0
        )
        f1 = s.add_message(c.id, Role.USER, "Why apples?", parent_id=a1.id, created_at=1003.0)
        a2 = s.add_message(
            c.id,
            Role.ASSISTANT,
            "Bananas: " + "potassium " * 20,
            parent_id=q.id,
            created_at=1004.0,
            finish_reason=FinishReason.CANCELLED,
        )
        return {"conv": c.id, "q": q.id, "a1": a1.id, "f1": f1.id, "a2": a2.id}


def test_tree_shows_every_branch_and_marks_the_active_one(capsys):
    ids = _branched()
    assert cli.run(["conversations", ids["conv"][:8], "--tree"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"# Fruit talk  ({ids['conv']})"
    assert out[1] == "model: smol.gguf"
    q, a1, f1, a2 = (ids[k][:8] for k in ("q", "a1", "f1", "a2"))
    bananas = ("Bananas: " + "potassium " * 20)[:69] + "…"
    assert out[2:] == [
        f"* {q}  user       Which fruit is best?",
        f"  ├─ {a1}  assistant  Apples, clearly.",
        f"  │  {f1}  user       Why apples?",
        f"* └─ {a2}  assistant  {bananas}  [stopped]",
    ]
    # switch the active branch: the marks follow
    with _db() as s:
        s.set_current_leaf(ids["conv"], ids["f1"])
    assert cli.run(["conversations", ids["conv"], "--tree"]) == 0
    marks = [line[0] for line in capsys.readouterr().out.splitlines()[2:]]
    assert marks == ["*", "*", "*", " "]


def test_tree_of_a_long_chain_does_not_indent(capsys):
    with _db() as s:
        c = s.create_conversation("long")
        parent = None
        for i in range(3000):  # deeper than Python's recursion limit
            parent = s.add_message(c.id, Role.USER, f"m{i}", parent_id=parent).id
    assert cli.run(["conversations", c.id, "--tree"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 3000
    assert all(line.startswith("* ") and "─" not in line for line in lines)
    assert lines[-1].endswith("m2999")


def test_search_prints_id_title_and_marked_text(capsys):
    ids = _branched()
    with _db() as s:
        other = s.create_conversation("Apple pie recipe")
    assert cli.run(["search", "apples"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"{ids['conv'][:12]}  Fruit talk  (assistant {ids['a1'][:8]}, " + out[0].split(", ", 1)[1],
        "    **Apples**, clearly.",
        f"{ids['conv'][:12]}  Fruit talk  (user {ids['f1'][:8]}, " + out[2].split(", ", 1)[1],
        "    Why **apples**?",
    ]
    assert cli.run(["search", "apple", "-n", "1"]) == 0  # prefix: the title "Apple pie"
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{other.id[:12]}  **Apple** pie recipe  (title, ")


@pytest.mark.parametrize("query", ["foo*", '"unbalanced', "AND", "NEAR", "(", ":", "a:b", "-"])
def test_search_with_fts_syntax_never_fails(capsys, query):
    _branched()
    assert cli.run(["search", "--", query]) == 1
    err = capsys.readouterr().err
    assert "No conversation matches" in err or "Nothing to search for" in err
    assert "Traceback" not in err and "error" not in err


def test_search_without_any_match(capsys):
    _branched()
    assert cli.run(["search", "durian"]) == 1
    assert capsys.readouterr().err == "No conversation matches 'durian'.\n"


def test_pins_and_tags_from_the_command_line(capsys):
    with _db() as s:
        old = s.create_conversation("Old one", created_at=1.0)
        new = s.create_conversation("New one", created_at=2.0)
    assert cli.run(["conversations"]) == 0
    titles = [line.split("  ", 2)[2] for line in capsys.readouterr().out.splitlines()]
    assert titles == ["New one", "Old one"]
    assert cli.run(["conversations", old.id, "--pin", "--add-tag", "work", "--add-tag", "#x"]) == 0
    assert capsys.readouterr().out == f"{old.id[:12]}  Old one: pinned, work, x\n"
    assert cli.run(["conversations"]) == 0
    titles = [line.split("  ", 2)[2] for line in capsys.readouterr().out.splitlines()]
    assert titles == ["📌 Old one  #work  #x", "New one"]
    assert cli.run(["conversations", "--tag", "WORK"]) == 0
    assert [ln.split("  ")[0] for ln in capsys.readouterr().out.splitlines()] == [old.id[:12]]
    assert cli.run(["conversations", old.id, "--unpin", "--remove-tag", "work"]) == 0
    assert capsys.readouterr().out == f"{old.id[:12]}  Old one: not pinned, x\n"
    assert cli.run(["conversations", "--tag", "work"]) == 1
    assert "No conversation is tagged 'work' (tags: x)." in capsys.readouterr().err
    assert cli.run(["conversations", "--pin"]) == 1
    assert "Give a conversation id" in capsys.readouterr().err
    del new


def test_cli_search_end_to_end_in_a_subprocess(tmp_path, chatapp_home):
    ids = _branched()
    run = [sys.executable, str(ROOT / "tests/hub/run_cli.py")]
    r = subprocess.run(
        [*run, "search", "potassium"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{ids['conv'][:12]}  Fruit talk  (assistant {ids['a2'][:8]}")
    assert "**potassium**" in r.stdout
    r = subprocess.run(
        [*run, "conversations", ids["conv"][:10], "--tree"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert f"* └─ {ids['a2'][:8]}  assistant" in r.stdout
