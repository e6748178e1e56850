"""Translations: Qt's own (standard buttons, dialogs) and chatapp's, for the system locale.

chatapp's strings go through tr() / QCoreApplication.translate(); packaging/
update_translations.py extracts them with pyside6-lupdate into resources/i18n/chatapp_*.ts,
and pyside6-lrelease compiles a translated .ts into the chatapp_<locale>.qm loaded here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from chatapp.resources import resource_path

log = logging.getLogger(__name__)


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
