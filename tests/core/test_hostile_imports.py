"""Hostile imports: zip bombs, devices, pipes, folders, files too large, and values the
database cannot hold. `chatapp import` ends each in exit 1 with one line, under a hard
memory limit, and writes nothing: the conversation already there stays the only one."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from chatapp.core import export
from chatapp.core.errors import UserError
from chatapp.core.export import importers
from chatapp.core.store import Store
from tests.core import hostile_zip
from tests.core.hostile_run import GiB, json_lines, run_limited
from tests.golden.sample import sample

# RLIMIT_AS is enforced on Linux only (macOS ignores it), and these tests read /proc.
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux resource limits")

TITLE = repr(sample()[0].title)


def _chatapp_doc(**changes: Any) -> dict[str, Any]:
    doc = json.loads(export.to_json(*sample()))
    for path, value in changes.items():
        target = doc
        keys = path.split(".")
        for k in keys[:-1]:
            target = target[int(k)] if isinstance(target, list) else target[k]
        target[keys[-1] if isinstance(target, dict) else int(keys[-1])] = value
    return doc


def _chatgpt_doc(create_time: Any) -> list[dict[str, Any]]:
    def node(nid: str, parent: str | None, role: str | None, text: str = "") -> Any:
        msg = None
        if role:
            msg = {
                "author": {"role": role},
                "content": {"content_type": "text", "parts": [text]},
                "create_time": create_time,
            }
        return nid, {"id": nid, "parent": parent, "children": [], "message": msg}

    mapping = dict([node("root", None, None), node("u", "root", "user", "Hi")])
    return [{"title": "t", "conversation_id": "c", "create_time": 1.7e9, "mapping": mapping}]


def _json(folder: Path, name: str, doc: Any) -> Path:
    p = folder / name
    text = doc if isinstance(doc, str) else json.dumps(doc)
    p.write_bytes(text.encode("utf-8", "surrogatepass"))
    return p


def _cases(tmp: Path) -> list[tuple[str, Path, str]]:
    """(name, file, the one line `import` must print)."""
    fifo = tmp / "pipe.json"
    os.mkfifo(fifo)
    sparse = tmp / "huge.json"
    with open(sparse, "wb") as f:
        f.truncate(600 * 1024 * 1024)
    folder = tmp / "folder.json"
    folder.mkdir()
    digits = 10**399
    lone = _chatapp_doc(**{"messages.0.content": "Hel\ud800lo"})  # written as \ud800
    big_member = tmp / "declared.zip"
    with zipfile.ZipFile(big_member, "w") as zf:
        zf.writestr("conversations.json", "[]")
    data = bytearray(big_member.read_bytes())
    at = data.index(b"PK\x01\x02") + 24  # the central directory's uncompressed size
    data[at : at + 4] = (600 * 1024 * 1024).to_bytes(4, "little")
    big_member.write_bytes(bytes(data))
    ratio = "would expand 1,0"  # about 1,000 times
    return [
        (
            "bomb",
            hostile_zip.bomb(tmp / "bomb.zip", "conversations.json", 1500),
            (
                "bomb.zip/conversations.json would expand to 1573 MB; a JSON file over 537 MB "
                "cannot be imported at once."
            ),
        ),
        (
            "bomb-ratio",
            hostile_zip.bomb(tmp / "ratio.zip", "c.json", 100),
            f"ratio.zip/c.json {ratio}",
        ),
        (
            "bomb-lying",
            hostile_zip.bomb(tmp / "lying.zip", "c.json", 1500, declared=1000),
            "lying.zip is not a readable zip file (Bad CRC-32 for file 'c.json').",
        ),
        ("declared-size", big_member, "declared.zip/conversations.json would expand to 629 MB"),
        ("dev-zero", Path("/dev/zero"), "/dev/zero is not a regular file (a device or a pipe?)"),
        ("fifo", fifo, f"{fifo} is not a regular file (a device or a pipe?)"),
        ("folder", folder, f"{folder} is a folder; give a .json or .zip file to import."),
        ("sparse-600mb", sparse, "huge.json is 629 MB; a JSON file over 537 MB cannot be"),
        (
            "surrogate",
            _json(tmp, "surrogate.json", lone),
            (
                f"surrogate.json: conversation {TITLE}: message 'm01': "
                "content holds a lone surrogate (U+D800), which is not valid text."
            ),
        ),
        (
            "created-400-digits",
            _json(tmp, "created.json", _chatapp_doc(**{"conversation.created_at": digits})),
            "created.json: conversation.created_at is a number of 400 digits, out of range.",
        ),
        (
            "tokens-400-digits",
            _json(tmp, "tokens.json", _chatapp_doc(**{"messages.2.prompt_tokens": digits})),
            "tokens.json: messages.2.prompt_tokens is a number of 400 digits, out of range.",
        ),
        (
            "meta-400-digits",
            _json(tmp, "meta.json", _chatapp_doc(**{"messages.0.meta": {"n": -digits}})),
            "meta.json: 0.meta.n is a number of 400 digits, out of range.",
        ),
        (
            "5000-digits",
            _json(tmp, "digits.json", '{"format": "chatapp.conversation", "n": ' + "9" * 5000),
            (
                "digits.json is not valid JSON (Exceeds the limit (4300 digits) for integer "
                "string conversion"
            ),
        ),
        (
            "year-10000",
            _json(tmp, "year.json", _chatapp_doc(**{"messages.1.created_at": 1e300})),
            (
                f"year.json: conversation {TITLE}: message 'm02': created_at is out of range (1e+300)."
            ),
        ),
        (
            "chatgpt-400-digits",
            _json(tmp, "conversations.json", _chatgpt_doc(digits)),
            (
                "conversations.json: conversation 't': a timestamp is out of range (a number of "
                "400 digits)."
            ),
        ),
        (
            "meta-nan",
            _json(tmp, "nan.json", _chatapp_doc(**{"conversation.meta": {"x": float("nan")}})),
            (f"nan.json: conversation {TITLE}: a meta value is not a finite number."),
        ),
    ]


RUNNER = """
import contextlib, io, json, os, traceback
from chatapp.__main__ import main
for name, path in json.loads(os.environ["JOBS"]):
    out, err = io.StringIO(), io.StringIO()
    row = {"name": name}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            row["code"] = main(["import", path])
    except BaseException:
        row["code"] = "traceback"
        row["traceback"] = traceback.format_exc()[-1500:]
    row["stderr"] = err.getvalue()
    print(json.dumps(row), flush=True)
"""


def _counts(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as c:
        convs = c.execute("SELECT count(*) FROM conversations").fetchone()[0]
        msgs = c.execute("SELECT count(*) FROM messages").fetchone()[0]
    return convs, msgs


def test_hostile_imports_give_one_line_and_write_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cases = _cases(tmp_path)
    first = _json(tmp_path, "good.json", json.loads(export.to_json(*sample())))
    jobs = [("good", str(first))] + [(name, str(p)) for name, p, _ in cases]
    # 1 GiB of address space for the whole run: the bomb alone expands to 1.5 GB
    proc = run_limited(
        RUNNER, memory=GiB, cpu_s=120, env={"JOBS": json.dumps(jobs), "CHATAPP_HOME": str(home)}
    )
    rows = {r["name"]: r for r in json_lines(proc)}
    assert rows["good"]["code"] == 0, rows["good"]
    db = next(home.rglob("chatapp.sqlite3"))
    assert _counts(db) == (1, 5)  # the good import, and nothing from any bad one
    for name, _, says in cases:
        row = rows[name]
        lines = str(row["stderr"]).splitlines()
        assert row["code"] == 1 and len(lines) == 1, row
        assert lines[0].startswith(f"chatapp: error: {says}"), (name, lines[0])


def test_a_string_past_the_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importers, "MAX_TEXT_CHARS", 1000)
    path = _json(tmp_path, "long.json", _chatapp_doc(**{"messages.0.content": "x" * 1001}))
    with Store(tmp_path / "db.sqlite3") as store:
        with pytest.raises(UserError) as e:
            importers.import_file(store, path)
        assert store.list_conversations() == []
    assert str(e.value) == (
        f"long.json: conversation {TITLE}: message 'm01': content is "
        "1,001 characters long; the limit is 1,000."
    )


def test_a_value_the_database_refuses_rolls_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a value get past check_items, the insert still writes nothing and the user
    gets one line."""
    monkeypatch.setattr(importers, "check_items", lambda items, where: None)
    monkeypatch.setattr(importers, "_check_integers", lambda doc, where: None)
    path = _json(tmp_path, "t.json", _chatapp_doc(**{"messages.3.prompt_tokens": 10**30}))
    with Store(tmp_path / "db.sqlite3") as store:
        with pytest.raises(UserError, match="could not be stored, so none of it was") as e:
            importers.import_file(store, path)
        assert "\n" not in str(e.value)
        assert store.list_conversations() == []
