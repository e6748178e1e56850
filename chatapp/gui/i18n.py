"""Translations: Qt's own (standard buttons, dialogs) and chatapp's, for the system locale.

chatapp's strings go through tr() / QCoreApplication.translate(); packaging/
update_translations.py extracts them with pyside6-lupdate into resources/i18n/chatapp_*.ts,
and pyside6-lrelease compiles a translated .ts into the chatapp_<locale>.qm loaded here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from chatapp.resources import resource_path

log = logging.getLogger(__name__)

K = TypeVar("K")


def QT_TRANSLATE_NOOP(context: str, text: str) -> str:
    """Marks a constant's `text` for pyside6-lupdate under `context` (lupdate knows the
    name); translate it where it is shown: QCoreApplication.translate(context, text), or
    self.tr(text) in the class named `context`. PySide6's own returns `object` to mypy."""
    return text


def install_translators(
    app: QCoreApplication, locale: QLocale | None = None, folder: Path | None = None
) -> list[QTranslator]:
    """Install what exists for `locale` (default: the system's); returns the translators
    installed (removeTranslator undoes it)."""
    locale = locale or QLocale.system()
    folder = folder or resource_path("i18n")
    loaded: list[QTranslator] = []
    names = []
    sources = [
        ("qtbase", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)),
        ("chatapp", str(folder)),
    ]
    for name, directory in sources:
        translator = QTranslator(app)
        if translator.load(locale, name, "_", directory):
            app.installTranslator(translator)
            loaded.append(translator)
            names.append(name)
    log.info("translations for %s: %s", locale.name(), ", ".join(names) or "none")
    return loaded


class TranslatedTexts(Mapping[K, str]):
    """A constant table of texts, each marked for lupdate with QT_TRANSLATE_NOOP(context,
    "..."), that translates on lookup: a table built at import time still follows the
    translator installed later (and a change of language)."""

    def __init__(self, context: str, texts: Mapping[K, str]) -> None:
        self.context = context
        self._texts = dict(texts)

    def __getitem__(self, key: K) -> str:
        return QCoreApplication.translate(self.context, self._texts[key])

    def __iter__(self) -> Iterator[K]:
        return iter(self._texts)

    def __len__(self) -> int:
        return len(self._texts)
