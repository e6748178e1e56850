"""Translation works end to end: lupdate extracts the GUI's tr() strings, lrelease
compiles a translated .ts, and the window's dialogs then show the translation."""

from __future__ import annotations

import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PySide6.QtCore import QLocale
from PySide6.QtWidgets import QApplication

from chatapp.gui.about import AboutDialog
from chatapp.gui.i18n import install_translators
from chatapp.paths import app_paths

# packaging/ is a folder of scripts, not a package (and `packaging` is a PyPI name)
_SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "update_translations.py"
_spec = importlib.util.spec_from_file_location("update_translations", _SCRIPT)
assert _spec is not None and _spec.loader is not None
update_translations = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(update_translations)


def _lrelease() -> list[str] | None:
    cmd = update_translations.lupdate_command()
    if cmd is None:
        return None
    exe = Path(cmd[0])
    name = exe.name.replace("lupdate", "lrelease")
    return [str(exe.with_name(name))] if exe.with_name(name).exists() else None


def test_a_compiled_translation_reaches_the_dialog(qtbot, tmp_path: Path) -> None:
    lrelease = _lrelease()
    if lrelease is None:
        pytest.skip("pyside6-lupdate/lrelease not installed (they ship with PySide6-Essentials)")
    ts = tmp_path / "chatapp_de.ts"
    update_translations.extract(ts)
    tree = ET.parse(ts)
    for message in tree.getroot().iter("message"):
        if message.findtext("source") == "&Copy diagnostics":
            translation = message.find("translation")
            assert translation is not None
            translation.text = "&Diagnose kopieren"
            translation.attrib.pop("type", None)  # no longer "unfinished"
    tree.write(ts, encoding="utf-8", xml_declaration=True)
    subprocess.run([*lrelease, str(ts), "-qm", str(tmp_path / "chatapp_de.qm")], check=True)

    app = QApplication.instance()
    assert app is not None
    translators = install_translators(app, QLocale("de_DE"), folder=tmp_path)
    try:
        dialog = AboutDialog(app_paths().ensure())
        qtbot.addWidget(dialog)
        assert dialog.copy_button.text() == "&Diagnose kopieren"
        assert dialog.windowTitle() == "About chatapp"  # untranslated strings stay English
    finally:
        for t in translators:
            app.removeTranslator(t)
    assert AboutDialog(app_paths()).copy_button.text() == "&Copy diagnostics"
