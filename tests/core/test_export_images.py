"""Images in exports and imports: embedded in JSON (with the bytes' hash), HTML and PDF;
Markdown and text say where each was; a JSON import stores them again, checked."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from chatapp import cli
from chatapp.core.export.images import DATA_KEY
from chatapp.core.images import check_image
from chatapp.core.store import Store
from chatapp.core.store import images as store_images
from chatapp.paths import app_paths


@pytest.fixture(autouse=True)
def only_export_commands(monkeypatch):
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("chatapp.cli.export",))


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (12, 7), (200, 0, 0)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def with_image():
    image = check_image(_png())
    with Store(app_paths().ensure().database) as s:
        c = s.create_conversation("A picture")
        s.put_images([image])
        q = s.add_message(c.id, "user", "What is it?", meta=store_images.with_images({}, [image]))
        s.add_message(c.id, "assistant", "A red square.", parent_id=q.id)
    return c.id, image


def test_each_format_keeps_the_image(with_image, tmp_path, capsys):
    cid, image = with_image
    label = f"[image 12x7 PNG, sha256 {image.sha256}]"
    for ext in ("json", "html", "md", "txt", "pdf"):
        assert cli.run(["export", cid, "-o", str(tmp_path / f"c.{ext}")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    found = [i for m in doc["messages"] for i in (m["meta"].get("images") or [])]
    assert found[0]["sha256"] == image.sha256
    assert base64.b64decode(found[0][DATA_KEY]) == image.data
    html = (tmp_path / "c.html").read_text()
    assert f'src="data:image/png;base64,{base64.b64encode(image.data).decode()}"' in html
    assert label[1:-1] in (tmp_path / "c.md").read_text()  # brackets escaped in Markdown
    assert label in (tmp_path / "c.txt").read_text()
    assert b"/Subtype /Image" in (tmp_path / "c.pdf").read_bytes()


def test_a_json_import_stores_the_image_again(with_image, tmp_path, monkeypatch, capsys):
    cid, image = with_image
    out = tmp_path / "c.json"
    assert cli.run(["export", cid, "-o", str(out)]) == 0
    monkeypatch.setenv("CHATAPP_HOME", str(tmp_path / "elsewhere"))
    assert cli.run(["import", str(out)]) == 0
    with Store(app_paths().ensure().database) as s:
        stored = s.get_image(image.sha256)
        assert stored is not None and stored.data == image.data
        user = next(m for m in s.messages(cid) if m.role.value == "user")
        assert store_images.image_refs(user) == [store_images.ref(image)]  # no bytes in meta


def test_an_image_whose_bytes_do_not_match_is_left_out(with_image, tmp_path, monkeypatch, capsys):
    cid, image = with_image
    out = tmp_path / "c.json"
    assert cli.run(["export", cid, "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    for m in doc["messages"]:
        for i in m["meta"].get("images") or []:
            other = io.BytesIO()
            Image.new("RGB", (3, 3)).save(other, "PNG")
            i[DATA_KEY] = base64.b64encode(other.getvalue()).decode()
    out.write_text(json.dumps(doc))
    monkeypatch.setenv("CHATAPP_HOME", str(tmp_path / "elsewhere"))
    assert cli.run(["import", str(out)]) == 0
    with Store(app_paths().ensure().database) as s:
        assert s.get_image(image.sha256) is None
        assert s.count_conversations() == 1
