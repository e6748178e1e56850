"""`chatapp export` / `chatapp import` end to end: real database under CHATAPP_HOME."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from chatapp import cli
from chatapp.core import export
from chatapp.core.store import Store
from chatapp.paths import app_paths
from tests.golden.sample import CONV_ID, long_conversation, sample

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def only_export_commands(monkeypatch):
    """The real dispatcher, loading just this module's commands (others may be missing)."""
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("chatapp.cli.export",))


@pytest.fixture
def exported_json(tmp_path):
    path = tmp_path / "sample.json"
    path.write_text(export.to_json(*sample()), encoding="utf-8")
    return path


def _db():
    return Store(app_paths().ensure().database)


def test_import_then_export_each_text_format(tmp_path, exported_json, capsys, monkeypatch):
    assert cli.run(["import", str(exported_json)]) == 0
    assert capsys.readouterr().out == "Imported 1 conversation (5 messages).\n"
    assert cli.run(["import", str(exported_json)]) == 0
    assert "1 already present" in capsys.readouterr().out
    conv, messages = sample()
    for fmt in export.TEXT_FORMATS:
        out = tmp_path / f"x.{fmt}"
        assert cli.run(["export", CONV_ID[:8], "-o", str(out)]) == 0  # format from the suffix
        assert out.read_text(encoding="utf-8") == export.render(fmt, conv, messages)
    monkeypatch.chdir(tmp_path)
    assert cli.run(["export", CONV_ID, "--format", "txt"]) == 0
    assert (tmp_path / "Sorting in Python_ _fast_ & _stable_.txt").exists()
    assert cli.run(["export", CONV_ID, "-o", "-"]) == 0
    assert capsys.readouterr().out.endswith(export.to_markdown(conv, messages))


def test_export_all_to_a_zip_and_to_a_folder(tmp_path, exported_json, capsys):
    cli.run(["import", str(exported_json)])
    with _db() as store:
        store.create_conversation("Another", created_at=1)
    assert cli.run(["export", "--all", "-f", "html", "-o", str(tmp_path / "everything")]) == 0
    with zipfile.ZipFile(tmp_path / "everything.zip") as zf:
        assert sorted(zf.namelist()) == [
            "Another.html",
            "Sorting in Python_ _fast_ & _stable_.html",
            "index.html",
            "index.json",
        ]
    folder = tmp_path / "folder"
    folder.mkdir()
    assert cli.run(["export", "--all", "-o", str(folder)]) == 0
    assert (folder / "Another.md").exists() and (folder / "index.json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["export"], "Name the conversations to export, or use --all"),
        (["export", "nope"], "No conversation 'nope'"),
        (["export", "--all"], "There are no conversations to export"),
        (["import", "/no/such/file.json"], "Cannot read"),
    ],
)
def test_mistakes_are_one_line_errors(argv, message, capsys):
    assert cli.run(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("chatapp: error: ") and message in err and "Traceback" not in err


def test_a_bad_import_leaves_the_database_as_it_was(tmp_path, exported_json, capsys):
    cli.run(["import", str(exported_json)])
    doc = json.loads(exported_json.read_text())
    doc["conversation"]["id"] = "other"
    doc["messages"][3]["role"] = "robot"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert cli.run(["import", str(bad)]) == 1
    assert "unknown role 'robot'" in capsys.readouterr().err
    with _db() as store:
        assert [c.id for c in store.list_conversations()] == [CONV_ID]


def test_pdf_export_runs_qt_in_a_child_process(tmp_path, capsys):
    conv, messages = long_conversation()
    with _db() as store:
        store.create_conversation(conv.title, conversation_id=conv.id, created_at=conv.created_at)
        store.insert_messages(messages)
        store.set_current_leaf(conv.id, conv.current_leaf_id)
    out = tmp_path / "long.pdf"
    assert cli.run(["export", conv.id, "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(b"%PDF-") and data.count(b"/Type /Page\n") > 3


def test_the_export_cli_never_imports_qt():
    # Other tests in this session may have imported Qt, so look in a fresh interpreter.
    code = (
        "import sys, chatapp.cli as c\n"
        "c.COMMAND_MODULES = ('chatapp.cli.export',)\n"
        "c._parser()\n"
        "assert 'chatapp.cli.export' in sys.modules\n"
        "assert not [m for m in sys.modules if m.startswith('PySide6')], 'CLI imported Qt'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_export_all_as_pdf_makes_a_zip_of_pdfs(tmp_path, exported_json):
    cli.run(["import", str(exported_json)])
    assert cli.run(["export", "--all", "-f", "pdf", "-o", str(tmp_path / "pdfs.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "pdfs.zip") as zf:
        pdf = zf.read("Sorting in Python_ _fast_ & _stable_.pdf")
        assert pdf.startswith(b"%PDF-") and b"/Type /Page" in pdf
        assert json.loads(zf.read("index.json"))["conversations"][0]["id"] == CONV_ID
