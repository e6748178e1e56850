"""The desktop integration files: AppStream metainfo validates, the .desktop file, the
MIME type, the metainfo and the icons agree, and the PNGs are renders of the SVG.

The bundle itself is built and its --self-test run by packaging/build.sh (a CI step).
"""

from __future__ import annotations

import configparser
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
ICONS = ROOT / "resources" / "icons"
APP_ID = "io.github.chatapp"
SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def _desktop() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(PACKAGING / f"{APP_ID}.desktop", encoding="utf-8")
    return parser["Desktop Entry"]


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstreamcli not installed")
def test_metainfo_validates() -> None:
    r = subprocess.run(
        ["appstreamcli", "validate", "--no-net", "--pedantic", f"{APP_ID}.metainfo.xml"],
        cwd=PACKAGING,
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Validation was successful" in r.stdout


@pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed"
)
def test_desktop_file_validates_without_hints() -> None:
    r = subprocess.run(
        ["desktop-file-validate", str(PACKAGING / f"{APP_ID}.desktop")],
        check=False,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr


def test_desktop_file_metainfo_and_mime_type_agree() -> None:
    entry = _desktop()
    assert entry["Type"] == "Application"
    assert entry["Exec"] == "chatapp %f"
    assert entry["Icon"] == APP_ID
    assert entry["Categories"].endswith(";") and entry["MimeType"].endswith(";")
    meta = ET.parse(PACKAGING / f"{APP_ID}.metainfo.xml").getroot()
    assert meta.findtext("id") == APP_ID
    assert meta.findtext("launchable") == f"{APP_ID}.desktop"
    assert meta.findtext("icon") == APP_ID
    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    mime = ET.parse(PACKAGING / f"{APP_ID}.mime.xml").getroot()
    types = [t.get("type") for t in mime.findall("m:mime-type", ns)]
    assert entry["MimeType"].rstrip(";").split(";") == types
    assert meta.findtext("provides/mediatype") == types[0]
    magic = mime.find("m:mime-type/m:magic/m:match", ns)
    assert (
        magic is not None and magic.get("value") == "GGUF"
    )  # what chatapp.core.catalog.gguf checks


def test_every_icon_size_is_there_and_small() -> None:
    assert (ICONS / "chatapp.svg").is_file()
    for size in SIZES:
        png = ICONS / f"chatapp-{size}.png"
        assert _png_size(png) == (size, size)
        assert png.stat().st_size < 40_000
    assert (ICONS / "chatapp.ico").read_bytes()[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_pngs_are_renders_of_the_svg(qapp) -> None:
    """Someone who edits the SVG must re-run packaging/render_icons.py."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(ICONS / "chatapp.svg"))
    assert renderer.isValid()
    for size in (16, 64, 256):
        fresh = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        fresh.fill(Qt.GlobalColor.transparent)
        painter = QPainter(fresh)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        committed = QImage(str(ICONS / f"chatapp-{size}.png")).convertToFormat(fresh.format())
        worst = 0
        for y in range(size):
            for x in range(size):
                a, b = QColor(fresh.pixel(x, y)), QColor(committed.pixel(x, y))
                worst = max(
                    worst,
                    abs(a.red() - b.red()),
                    abs(a.green() - b.green()),
                    abs(a.blue() - b.blue()),
                    abs(a.alpha() - b.alpha()),
                )
        assert worst <= 8, f"chatapp-{size}.png differs from the SVG by {worst}"


def test_ci_builds_and_self_tests_the_bundle_after_the_tests() -> None:
    lines = [ln.split("#")[0].strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    # the README's test command runs in the test venv that install.sh --test makes
    assert lines.index("bash packaging/build.sh") > lines.index(".venv/bin/python -m pytest")
    build = (PACKAGING / "build.sh").read_text()
    assert "--self-test --model" in build and "QT_QPA_PLATFORM=offscreen" in build


def _load_script(name: str):  # type: ignore[no-untyped-def]
    """packaging/ holds scripts, not a package (and `packaging` is a PyPI name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, PACKAGING / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# (context, source) pairs from each converted module, as pyside6-lupdate must find them
KNOWN = [
    ("AboutDialog", "&Copy diagnostics"),
    ("ModelManagerDialog", "Search Hugging Face for GGUF models…"),
    ("ModelManagerDialog", "Queued {name}."),
    ("ModelsController", "Model manager…"),
    ("InputBox", "Message the model (Enter to send, Shift+Enter for a new line)"),
    ("ExportActions", "Exported {what} to {path}"),
    ("PromptView", "Show whitespace"),
]


def _messages(ts: Path) -> set[tuple[str, str]]:
    root = ET.parse(ts).getroot()
    return {
        (ctx.findtext("name") or "", m.findtext("source") or "")
        for ctx in root.iter("context")
        for m in ctx.iter("message")
    }


def test_lupdate_extracts_the_gui_strings(tmp_path: Path) -> None:
    tool = _load_script("update_translations")
    if tool.lupdate_command() is None:
        pytest.skip("pyside6-lupdate is not installed (it ships with PySide6-Essentials)")
    ts = tmp_path / "chatapp_en.ts"
    tool.extract(ts)
    found = _messages(ts)
    for pair in KNOWN:
        assert pair in found, pair
    # the committed file is such an extraction (regenerate: packaging/update_translations.py)
    committed = _messages(ROOT / "resources" / "i18n" / "chatapp_en.ts")
    for pair in KNOWN:
        assert pair in committed, pair


def _install_build(tmp_path: Path, cmake_args: str | None) -> dict[str, str]:
    """What `install.sh --print-build` says it would build with (it changes nothing)."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CMAKE_ARGS"}
    env.update(CHATAPP_WHEEL_CACHE=str(tmp_path / "wheels"), PYTHON=sys.executable)
    if cmake_args is not None:
        env["CMAKE_ARGS"] = cmake_args
    out = subprocess.run(
        ["bash", str(PACKAGING / "install.sh"), "--print-build"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout
    return dict(
        line.split("=", 1) if "=" in line else line.split(": ", 1) for line in out.splitlines()
    )


def test_install_keeps_the_users_cmake_args_and_caches_each_build_apart(tmp_path: Path) -> None:
    import platform

    no_amx = "-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"
    x86 = platform.machine() == "x86_64"
    cpu = _install_build(tmp_path, None)
    cuda = _install_build(tmp_path, "-DGGML_CUDA=on")
    own = _install_build(tmp_path, "-DGGML_CUDA=on -DCMAKE_C_FLAGS=-O2")
    # the user's CMAKE_ARGS first, the AMX-off flags appended (x86_64), never replaced
    assert cuda["CMAKE_ARGS"].startswith("-DGGML_CUDA=on")
    assert (no_amx in cuda["CMAKE_ARGS"]) == x86 and (no_amx in cpu["CMAKE_ARGS"]) == x86
    assert own["CMAKE_ARGS"] == "-DGGML_CUDA=on -DCMAKE_C_FLAGS=-O2"  # their flags win
    # a CUDA build never reuses the CPU wheel: a folder of its own, a build name of its own
    assert cpu["wheels"] == str(tmp_path / "wheels")
    assert Path(cuda["wheels"]).parent == tmp_path / "wheels"
    assert len({cpu["wheels"], cuda["wheels"], own["wheels"]}) == 3
    assert cpu["build"].endswith(" default") and cuda["build"] != own["build"]
    assert _install_build(tmp_path, "-DGGML_CUDA=on") == cuda  # the same args: the same build
    assert not (tmp_path / "wheels").exists()  # --print-build changed nothing
