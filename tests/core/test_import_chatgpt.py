"""Importing ChatGPT's conversations.json (the data export's format)."""

import json
import zipfile

import pytest

from chatapp.core.conversation import Role
from chatapp.core.errors import UserError
from chatapp.core.export import importers
from chatapp.core.store import Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        yield s


def node(nid, parent, role=None, parts=None, t=None, children=(), **content):
    message = None
    if role is not None:
        body = {"content_type": "text", "parts": parts} if parts is not None else content
        message = {
            "id": nid,
            "author": {"role": role},
            "content": body,
            "create_time": t,
            "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
        }
    return nid, {"id": nid, "message": message, "parent": parent, "children": list(children)}


def chatgpt_conversation(cid="conv-1", title="Trip planning", current="a2"):
    mapping = dict(
        [
            node("root", None, children=["sys"]),
            node("sys", "root", "system", [""], children=["u1"]),
            node(
                "u1",
                "sys",
                "user",
                ["Plan a trip to Kyoto 京都", {"content_type": "image_asset_pointer"}],
                t=1_700_000_010.0,
                children=["a1", "a1b"],
            ),
            node("a1", "u1", "assistant", ["Day 1: temples."], t=1_700_000_020.0, children=["u2"]),
            node("a1b", "u1", "assistant", ["A regenerated answer."], t=1_700_000_025.0),
            node("u2", "a1", "user", ["Run some code"], t=1_700_000_030.0, children=["code"]),
            node(
                "code",
                "u2",
                "assistant",
                content_type="code",
                language="python",
                text="print('hi')",
                t=1_700_000_031.0,
                children=["tool"],
            ),
            node(
                "tool",
                "code",
                "tool",
                content_type="execution_output",
                text="hi",
                t=1_700_000_032.0,
                children=["think"],
            ),
            node(
                "think",
                "tool",
                "assistant",
                content_type="thoughts",
                thoughts=[{"summary": "s", "content": "Consider the output."}],
                t=1_700_000_033.0,
                children=["a2"],
            ),
            node(
                "a2", "think", "assistant", ["It printed hi. <script>x</script>"], t=1_700_000_040.0
            ),
        ]
    )
    return {
        "title": title,
        "create_time": 1_700_000_000.0,
        "update_time": 1_700_000_040.0,
        "mapping": mapping,
        "current_node": current,
        "conversation_id": cid,
        "id": cid,
    }


def _write(tmp_path, data, name="conversations.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_imports_threads_branches_models_and_placeholders(tmp_path, store):
    result = importers.import_file(store, _write(tmp_path, [chatgpt_conversation()]))
    assert len(result.imported) == 1 and result.skipped_messages == 0
    cid = result.imported[0]
    conv = store.get_conversation(cid)
    assert conv.title == "Trip planning" and conv.meta == {
        "source": "chatgpt",
        "source_id": "conv-1",
    }
    assert (conv.created_at, conv.updated_at) == (1_700_000_000.0, 1_700_000_040.0)
    branch = store.active_thread(cid)
    assert [m.role for m in branch] == [
        Role.USER,
        Role.ASSISTANT,
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.ASSISTANT,
    ]
    assert branch[0].content == "Plan a trip to Kyoto 京都\n\n[image_asset_pointer not imported]"
    assert branch[0].parent_id is None  # the empty system message was passed over
    assert branch[1].model == "gpt-4o"
    assert branch[3].content == "```python\nprint('hi')\n```"
    assert branch[4].content == "hi" and branch[4].role is Role.TOOL
    assert branch[5].thinking == "Consider the output."
    assert branch[5].content.endswith("<script>x</script>")
    siblings = [m.content for m in store.messages(cid) if m.parent_id == branch[0].id]
    assert sorted(siblings) == ["A regenerated answer.", "Day 1: temples."]


def test_importing_twice_does_not_duplicate_and_ids_are_stable(tmp_path, store):
    path = _write(tmp_path, [chatgpt_conversation()])
    first = importers.import_file(store, path)
    second = importers.import_file(store, path)
    assert second.imported == [] and second.duplicates == 1
    assert store.count_conversations() == 1
    with Store(tmp_path / "other.sqlite3") as other:
        assert importers.import_file(other, path).imported == first.imported


def test_a_data_export_zip_is_read(tmp_path, store):
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("conversations.json", json.dumps([chatgpt_conversation()]))
        zf.writestr("user.json", json.dumps({"id": "user"}))
        zf.writestr("chat.html", "<html></html>")
    assert len(importers.import_file(store, path).imported) == 1


def test_missing_fields_skip_messages_with_a_count(tmp_path, store):
    conv = chatgpt_conversation()
    del conv["mapping"]["a1b"]["message"]["author"]  # a message without an author
    conv["mapping"]["u2"]["message"]["content"] = None  # and one without content
    del conv["current_node"]
    del conv["create_time"]
    del conv["title"]
    result = importers.import_file(store, _write(tmp_path, [conv]))
    assert result.skipped_messages == 2
    assert "skipped 2 message(s) with missing fields" in result.summary()
    cid = result.imported[0]
    conv_row = store.get_conversation(cid)
    assert conv_row.title == "Imported ChatGPT conversation"
    assert conv_row.created_at == 1_700_000_010.0
    branch = store.active_thread(cid)  # the newest leaf, re-parented past the broken node
    assert branch[-1].content.startswith("It printed hi") and branch[2].content.startswith("```")
    assert branch[2].parent_id == branch[1].id


def test_unusable_entries_are_skipped_and_counted(tmp_path, store):
    data = [
        chatgpt_conversation(),
        {"title": "no mapping"},
        "junk",
        chatgpt_conversation(cid="empty", current=None) | {"mapping": {}},
    ]
    result = importers.import_file(store, _write(tmp_path, data))
    assert len(result.imported) == 1 and result.skipped_conversations == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"not": "a list"}, "neither a chatapp export nor a ChatGPT"),
        ([{"title": "x"}, {"title": "y"}], "none of its 2 entries is a conversation"),
        ('[{"title": "cut off', "not valid JSON"),
    ],
)
def test_bad_exports_are_refused_with_a_clear_message(tmp_path, store, data, message):
    path = tmp_path / "conversations.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(UserError, match=message):
        importers.import_file(store, path, "auto")
    assert store.count_conversations() == 0


def test_forcing_the_wrong_format_is_a_clear_error(tmp_path, store):
    path = _write(tmp_path, [chatgpt_conversation()])
    with pytest.raises(UserError, match="must be an object"):
        importers.import_file(store, path, "chatapp")
    with pytest.raises(UserError, match="Unknown import format"):
        importers.import_file(store, path, "gemini")


def test_a_big_file_imports_in_one_go(tmp_path, store):
    convs = [chatgpt_conversation(cid=f"c{i}", title=f"Chat {i}") for i in range(400)]
    for c in convs:  # ~25 kB a message
        c["mapping"]["a1"]["message"]["content"]["parts"] = ["long answer " * 2000]
    path = _write(tmp_path, convs)
    assert path.stat().st_size > 9_000_000
    seen = []
    result = importers.import_file(store, path, progress=lambda d, t: seen.append(d))
    assert len(result.imported) == 400 and result.messages == 400 * 7
    assert seen[-1] == importers.PROGRESS_TOTAL and len(seen) > 3


@pytest.mark.slow
def test_a_200_mb_file_imports_whole_or_not_at_all(tmp_path, store):
    one = chatgpt_conversation()
    one["mapping"]["a1"]["message"]["content"]["parts"] = ["long answer, 世界 " * 2500]
    blobs = []
    for i in range(5000):
        one["conversation_id"] = f"c{i}"
        blobs.append(json.dumps(one, ensure_ascii=False).encode())
    data = b"[" + b",".join(blobs) + b"]"
    assert len(data) > 200_000_000
    cut = tmp_path / "cut.json"
    cut.write_bytes(data[:-500])  # a download that stopped short
    with pytest.raises(UserError, match="not valid JSON"):
        importers.import_file(store, cut)
    assert store.count_conversations() == 0
    whole = tmp_path / "conversations.json"
    whole.write_bytes(data)
    del data, blobs
    seen = []
    result = importers.import_file(store, whole, progress=lambda d, t: seen.append(d))
    assert len(result.imported) == 5000 and store.count_conversations() == 5000
    assert seen == sorted(seen) and seen[-1] == importers.PROGRESS_TOTAL


def _real_node(nid, parent, author, content, recipient="all", t=None, children=(), slug=None):
    """A node as ChatGPT's data export writes it (the fields it has, not only the ones
    read)."""
    message = {
        "id": nid,
        "author": author,
        "create_time": t,
        "update_time": None,
        "content": content,
        "status": "finished_successfully",
        "end_turn": None if recipient != "all" else True,
        "weight": 1.0,
        "metadata": {"model_slug": slug} if slug else {},
        "recipient": recipient,
        "channel": None,
    }
    return nid, {"id": nid, "message": message, "parent": parent, "children": list(children)}


def test_tool_messages_stay_tool_messages_with_their_calls(tmp_path, store):
    """A realistic conversations.json fragment: the assistant calls the python tool and
    then web.run (recipient), the tools answer (author role tool with a name); the calls
    become tool calls and the outputs tool results that answer them."""
    me = {"role": "user", "name": None, "metadata": {}}
    gpt = {"role": "assistant", "name": None, "metadata": {}}
    mapping = dict(
        [
            (
                "client-root",
                {"id": "client-root", "message": None, "parent": None, "children": ["u1"]},
            ),
            _real_node(
                "u1",
                "client-root",
                me,
                {"content_type": "text", "parts": ["What is 10 factorial? Then search."]},
                t=1_710_000_000.0,
                children=["c1"],
            ),
            _real_node(
                "c1",
                "u1",
                gpt,
                {
                    "content_type": "code",
                    "language": "unknown",
                    "text": "import math\nmath.factorial(10)",
                },
                recipient="python",
                t=1_710_000_001.0,
                children=["r1"],
                slug="gpt-4o",
            ),
            _real_node(
                "r1",
                "c1",
                {"role": "tool", "name": "python", "metadata": {}},
                {"content_type": "execution_output", "text": "3628800"},
                t=1_710_000_002.0,
                children=["c2"],
            ),
            _real_node(
                "c2",
                "r1",
                gpt,
                {
                    "content_type": "code",
                    "language": "unknown",
                    "text": '{"search_query": [{"q": "factorial history"}]}',
                },
                recipient="web.run",
                t=1_710_000_003.0,
                children=["r2"],
                slug="gpt-4o",
            ),
            _real_node(
                "r2",
                "c2",
                {"role": "tool", "name": "web.run", "metadata": {}},
                {"content_type": "text", "parts": ["Results: factorials date to ..."]},
                t=1_710_000_004.0,
                children=["a1"],
            ),
            _real_node(
                "a1",
                "r2",
                gpt,
                {"content_type": "text", "parts": ["10! = 3,628,800."]},
                t=1_710_000_005.0,
                slug="gpt-4o",
            ),
        ]
    )
    conv = {
        "title": "Factorial",
        "create_time": 1_710_000_000.0,
        "update_time": 1_710_000_005.0,
        "mapping": mapping,
        "current_node": "a1",
        "conversation_id": "c-tools",
        "id": "c-tools",
    }
    result = importers.import_file(store, _write(tmp_path, [conv]))
    cid = result.imported[0]
    branch = store.active_thread(cid)
    roles = [m.role for m in branch]
    assert roles == [
        Role.USER,
        Role.ASSISTANT,
        Role.TOOL,
        Role.ASSISTANT,
        Role.TOOL,
        Role.ASSISTANT,
    ]
    _, call1, out1, call2, out2, answer = branch
    (c1,) = call1.meta["tool_calls"]
    assert c1["name"] == "python" and c1["arguments"] == {"code": "import math\nmath.factorial(10)"}
    assert call1.content == "" and call1.finish_reason.value == "tool_calls"
    assert out1.content == "3628800" and out1.meta["name"] == "python"
    assert out1.meta["tool_call_id"] == c1["id"]
    (c2,) = call2.meta["tool_calls"]
    assert c2["name"] == "web.run" and c2["arguments"] == {
        "search_query": [{"q": "factorial history"}]
    }
    assert out2.meta["tool_call_id"] == c2["id"] and out2.content.startswith("Results")
    assert answer.content == "10! = 3,628,800." and answer.meta.get("tool_calls") is None
    # shown as calls and results in the exports, never as the assistant's words
    from chatapp.core import export

    md = export.to_markdown(store.get_conversation(cid), store.messages(cid))
    assert "**Tool call: python (id " in md and "## Tool result: python" in md
    assert "## Assistant" in md and md.count("## Tool result") == 2
    # importing again gives the same ids (the call ids too)
    assert importers.import_file(store, _write(tmp_path, [conv])).duplicates == 1
