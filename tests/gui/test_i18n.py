"""Translation works end to end: lupdate extracts the GUI's tr() strings, lrelease
compiles a translated .ts, and the window's dialogs then show the translation."""

from __future__ import annotations

import importlib.util
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QLocale, QTranslator
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

# (context, source) from many modules and each way of marking a text: self.tr in a widget,
# QCoreApplication.translate in a plain function or class, QT_TRANSLATE_NOOP on a constant
SAMPLE = [
    ("MainWindow", "&Quit"),  # mainwindow.py, self.tr
    ("MainWindow", "Loading {name}…"),  # a text with a value: .format() after tr
    ("MessageView", "Copy code block {n}"),  # chatview/view.py
    ("MessageLayout", "Copy"),  # chatview/layout.py, QT_TRANSLATE_NOOP in a TranslatedTexts
    ("MessageLayout", "writing…"),  # chatview/layout.py, translate() in a function
    ("MessageListModel", "Assistant"),  # chatview/model.py
    ("UndoBar", "Undo"),  # chatview/widgets.py
    ("SettingsDialog", "Models && hardware"),
    ("SettingsDialog", "Follow the system"),  # a constant table
    ("ServerSwitch", "Serve the loaded model on http://{host}:{port}"),
    ("ServerSettingsPage", "API server"),
    ("ConversationDelegate", "Yesterday"),  # conversation_list.py group headings
    ("ShortcutSheet", "Open a menu"),
    ("ChatSettingsPanel", "Temperature"),
    ("ModelPicker", "CPU (this llama.cpp build is CPU-only)"),
    ("WelcomeView", "Welcome to chatapp"),
    ("DamagedDb", "Keep a copy and recover"),
    ("ExportActions", "Markdown (*.md)"),
]


def _lrelease() -> list[str] | None:
    cmd = update_translations.lupdate_command()
    if cmd is None:
        return None
    exe = Path(cmd[0])
    name = exe.name.replace("lupdate", "lrelease")
    return [str(exe.with_name(name))] if exe.with_name(name).exists() else None


def _messages(ts: Path) -> set[tuple[str, str]]:
    return {
        (ctx.findtext("name") or "", m.findtext("source") or "")
        for ctx in ET.parse(ts).getroot().iter("context")
        for m in ctx.iter("message")
    }


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _lrelease() is None:
        pytest.skip("pyside6-lupdate/lrelease not installed (they ship with PySide6-Essentials)")
    ts = tmp_path_factory.mktemp("i18n") / "chatapp_de.ts"
    update_translations.extract(ts)
    return ts


def _compile(extracted: Path, folder: Path, translations: dict[tuple[str, str], str]) -> Path:
    """A German .qm from the extraction with `translations` filled in."""
    tree = ET.parse(extracted)
    done = set()
    for ctx in tree.getroot().iter("context"):
        name = ctx.findtext("name")
        for message in ctx.iter("message"):
            key = (name or "", message.findtext("source") or "")
            if key in translations:
                translation = message.find("translation")
                assert translation is not None
                translation.text = translations[key]
                translation.attrib.pop("type", None)  # no longer "unfinished"
                done.add(key)
    assert done == set(translations), set(translations) - done
    ts = folder / "chatapp_de.ts"
    tree.write(ts, encoding="utf-8", xml_declaration=True)
    lrelease = _lrelease()
    assert lrelease is not None
    subprocess.run([*lrelease, str(ts), "-qm", str(folder / "chatapp_de.qm")], check=True)
    return folder


@pytest.fixture
def german(extracted: Path, tmp_path: Path) -> Iterator[Any]:
    """install(translations) -> the translators, removed again at the end of the test."""
    app = QApplication.instance()
    assert app is not None
    installed: list[QTranslator] = []

    def install(translations: dict[tuple[str, str], str]) -> list[QTranslator]:
        folder = _compile(extracted, tmp_path, translations)
        installed.extend(install_translators(app, QLocale("de_DE"), folder=folder))
        return installed

    yield install
    for t in installed:
        app.removeTranslator(t)


def test_lupdate_extracts_every_kind_of_marked_text(extracted: Path) -> None:
    found = _messages(extracted)
    missing = [pair for pair in SAMPLE if pair not in found]
    assert not missing, missing
    # the committed source-language file is such an extraction (packaging/update_translations.py)
    committed = _messages(Path(__file__).resolve().parents[2] / "resources/i18n/chatapp_en.ts")
    assert [pair for pair in SAMPLE if pair not in committed] == []


def test_a_compiled_translation_reaches_the_dialog(qtbot: Any, german: Any) -> None:
    german({("AboutDialog", "&Copy diagnostics"): "&Diagnose kopieren"})
    dialog = AboutDialog(app_paths().ensure())
    qtbot.addWidget(dialog)
    assert dialog.copy_button.text() == "&Diagnose kopieren"
    assert dialog.windowTitle() == "About chatapp"  # untranslated strings stay English


def test_the_main_window_menus_and_constant_tables_follow_the_translation(
    qtbot: Any, make_window: Any, german: Any
) -> None:
    from chatapp.gui.chatview.layout import ACTION_LABELS

    german(
        {
            ("MainWindow", "&File"): "&Datei",
            ("MainWindow", "&Quit"): "&Beenden",
            ("SettingsDialog", "Privacy"): "Datenschutz",
            ("SettingsDialog", "Follow the system"): "Wie das System",
            ("MessageLayout", "Copy"): "Kopieren",
            ("ServerSettingsPage", "API server"): "API-Server",
        }
    )
    w = make_window(extensions=("chatapp.gui.settings_dialog", "chatapp.gui.server_actions"))
    assert w.menus["file"].title() == "&Datei"
    texts = [a.text() for a in w.menus["file"].actions()]
    assert "&Beenden" in texts and "&Open model…" in texts  # the rest stays English
    d = w.settings_actions.show_dialog()
    tabs = [d.tabs.tabText(i) for i in range(d.tabs.count())]
    assert "Datenschutz" in tabs and "API-Server" in tabs
    assert d.theme.itemText(0) == "Wie das System" and d.theme.itemData(0) == "system"
    # a table built at import time translates on lookup (the translator came later)
    assert ACTION_LABELS["copy"] == "Kopieren"
    d.close()


def test_without_a_translator_the_texts_are_the_english_sources() -> None:
    from chatapp.gui.chatview.layout import ACTION_LABELS

    assert ACTION_LABELS["copy"] == "Copy" and next(iter(ACTION_LABELS)) == "copy"
    assert AboutDialog(app_paths()).copy_button.text() == "&Copy diagnostics"
