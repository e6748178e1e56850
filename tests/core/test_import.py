"""Importing chatapp's own JSON: round trip, duplicates, and bad files changing nothing."""

import json
import zipfile

import pytest

from chatapp.core import export
from chatapp.core.conversation import Role
from chatapp.core.errors import UserError
from chatapp.core.export import importers
from chatapp.core.export.schema import ImportFormatError
from chatapp.core.store import Store
from tests.golden.sample import CONV_ID, sample


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "db.sqlite3") as s:
        yield s


@pytest.fixture
def existing(store):
    """A conversation that was there before any import and must survive every failure."""
    conv = store.create_conversation("mine", created_at=5)
    store.add_message(conv.id, Role.USER, "my own message")
    return conv


def _snapshot(store):
    return [(c, store.messages(c.id)) for c in store.list_conversations()]


def _write(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


def test_export_import_export_is_identical_and_keeps_ids_and_branches(tmp_path, store):
    conv, messages = sample()
    first = export.to_json(conv, messages)
    result = importers.import_file(store, _write(tmp_path, "c.json", first))
    assert result.imported == [CONV_ID] and result.messages == 5
    got = store.get_conversation(CONV_ID)
    again = export.to_json(got, store.messages(CONV_ID))
    assert again == first
    assert [m.id for m in store.active_thread(CONV_ID)] == ["m01", "m03", "m04", "m05"]
    assert store.get_message("m02").parent_id == "m01"  # the other branch is there
    assert store.get_message("m03").meta["model_sha256"] == "9a" * 32


def test_importing_twice_does_not_duplicate(tmp_path, store, existing):
    conv, messages = sample()
    path = _write(tmp_path, "c.json", export.to_json(conv, messages))
    importers.import_file(store, path)
    before = _snapshot(store)
    result = importers.import_file(store, path)
    assert result.imported == [] and result.duplicates == 1
    assert "1 already present" in result.summary()
    assert _snapshot(store) == before


def test_a_copy_under_a_new_id_gets_fresh_message_ids_with_the_same_tree(tmp_path, store):
    conv, messages = sample()
    importers.import_file(store, _write(tmp_path, "a.json", export.to_json(conv, messages)))
    doc = json.loads(export.to_json(conv, messages))
    doc["conversation"]["id"] = "copy"
    importers.import_file(store, _write(tmp_path, "b.json", doc))
    copy = store.active_thread("copy")
    assert [m.content for m in copy] == [m.content for m in store.active_thread(CONV_ID)]
    assert not {m.id for m in store.messages("copy")} & {m.id for m in messages}
    assert len(store.messages("copy")) == 5


def test_a_collection_file_and_an_export_all_zip_import(tmp_path, store):
    conv, messages = sample()
    convs = {}
    for i in range(3):
        cid = f"c{i}"
        convs[cid] = (
            conv.with_(id=cid, title=f"t{i}"),
            [
                m.with_(
                    id=f"{cid}-{m.id}",
                    conversation_id=cid,
                    parent_id=f"{cid}-{m.parent_id}" if m.parent_id else None,
                )
                for m in messages
            ],
        )
        convs[cid] = (convs[cid][0].with_(current_leaf_id=f"{cid}-m05"), convs[cid][1])
    zip_path = export.export_many(list(convs), convs.__getitem__, "json", tmp_path / "all.zip")
    result = importers.import_file(store, zip_path)
    assert sorted(result.imported) == ["c0", "c1", "c2"]
    for cid, (c, m) in convs.items():
        assert export.to_json(store.get_conversation(cid), store.messages(cid)) == export.to_json(
            c, m
        )
    coll = {
        "format": "chatapp.conversations",
        "version": 1,
        "conversations": [json.loads(export.to_json(*convs["c0"]))],
    }
    assert importers.import_file(store, _write(tmp_path, "coll.json", coll)).duplicates == 1


def _valid_doc():
    conv, messages = sample()
    return json.loads(export.to_json(conv, messages))


def _broken(change):
    doc = _valid_doc()
    change(doc)
    return doc


BAD = {
    "malformed JSON": ('{"format": "chatapp.conversation", "version": 1,', "not valid JSON"),
    "not JSON at all": ("\x89PNG\r\n", "not valid JSON"),
    "empty file": ("", "not valid JSON"),
    "newer version": (_broken(lambda d: d.update(version=7)), "newer chatapp"),
    "bad version": (_broken(lambda d: d.update(version="1")), "invalid schema version"),
    "unknown format": ({"format": "other.app", "version": 1}, "not a chatapp export"),
    "a bare number": ("42", "neither a chatapp export nor a ChatGPT"),
    "missing role": (
        _broken(lambda d: d["messages"][2].pop("role")),
        "message 3: missing field 'role'",
    ),
    "bad role": (
        _broken(lambda d: d["messages"][0].update(role="wizard")),
        "unknown role 'wizard'",
    ),
    "content not text": (
        _broken(lambda d: d["messages"][0].update(content=5)),
        "'content' must be a string",
    ),
    "missing messages": (_broken(lambda d: d.pop("messages")), "'messages' must be a list"),
    "dangling parent": (
        _broken(lambda d: d["messages"][1].update(parent_id="nope")),
        "not in the file",
    ),
    "duplicate id": (_broken(lambda d: d["messages"][1].update(id="m01")), "appears twice"),
    "loop": (_broken(lambda d: d["messages"][0].update(parent_id="m05")), "loop"),
    "bad leaf": (
        _broken(lambda d: d["conversation"].update(current_leaf_id="zz")),
        "current_leaf_id",
    ),
    "NaN time": (
        (
            '{"format": "chatapp.conversation", "version": 1, "conversation": '
            '{"id": "x", "title": "t", "created_at": NaN, "updated_at": 1}, "messages": []}'
        ),
        "finite number",
    ),
    "bool tokens": (
        _broken(lambda d: d["messages"][2].update(prompt_tokens=True)),
        "prompt_tokens",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_give_one_clear_error_and_change_nothing(tmp_path, store, existing, case):
    doc, message = BAD[case]
    before = _snapshot(store)
    with pytest.raises(UserError, match=message) as info:
        importers.import_file(store, _write(tmp_path, "bad.json", doc))
    assert "\n" not in str(info.value)
    assert _snapshot(store) == before


def test_a_bad_conversation_late_in_a_zip_imports_none_of_it(tmp_path, store, existing):
    good = export.to_json(*sample())
    bad = json.dumps(_broken(lambda d: d["messages"][4].pop("created_at")))
    path = tmp_path / "mixed.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("a.json", good)
        zf.writestr("b.json", bad)
    before = _snapshot(store)
    with pytest.raises(ImportFormatError, match="b.json.*message 5: missing field 'created_at'"):
        importers.import_file(store, path)
    assert _snapshot(store) == before


def test_a_failure_during_the_insert_rolls_everything_back(tmp_path, store, existing):
    conv, messages = sample()
    convs = [
        (
            conv.with_(id=f"c{i}"),
            [
                m.with_(
                    id=f"{i}{m.id}",
                    conversation_id=f"c{i}",
                    parent_id=f"{i}{m.parent_id}" if m.parent_id else None,
                )
                for m in messages
            ],
        )
        for i in range(3)
    ]
    convs = [(c.with_(current_leaf_id=f"{i}m05"), m) for i, (c, m) in enumerate(convs)]
    calls = []

    def progress(done, total):
        calls.append(done)
        if len(calls) == 3:  # in the middle of inserting
            raise importers.UserError("Cancelled.")

    before = _snapshot(store)
    with pytest.raises(UserError, match="Cancelled"):
        importers.insert(store, convs, importers.ImportResult(), progress)
    assert _snapshot(store) == before


def test_missing_file_and_oversized_file(tmp_path, store, monkeypatch):
    with pytest.raises(UserError, match="Cannot read"):
        importers.import_file(store, tmp_path / "nope.json")
    path = _write(tmp_path, "big.json", "[]")
    monkeypatch.setattr(importers, "MAX_IMPORT_BYTES", 1)
    with pytest.raises(UserError, match="cannot be imported"):
        importers.import_file(store, path)


def test_progress_goes_from_start_to_end(tmp_path, store):
    seen = []
    importers.import_file(
        store,
        _write(tmp_path, "c.json", export.to_json(*sample())),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (importers.PROGRESS_TOTAL, importers.PROGRESS_TOTAL)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
