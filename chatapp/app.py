"""Composition root for the window: arguments, logging, paths, services, then Qt."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatapp import __version__
from chatapp.core.errors import StoreError
from chatapp.core.settings import Settings
from chatapp.core.store import DatabaseDamaged, Store
from chatapp.logsetup import setup_logging
from chatapp.paths import app_paths

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # Qt is imported lazily
    from chatapp.gui.mainwindow import MainWindow


def _args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="chatapp", description="chatapp desktop window")
    p.add_argument("--model", metavar="PATH", help="open this .gguf model")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"chatapp {__version__}")
    args, _qt_args = p.parse_known_args(list(argv))
    return args


def _route_qt_messages() -> None:
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    last_warning = [""]  # the cause often comes as a warning just before the fatal error

    def handler(mode: QtMsgType, _context: object, message: str) -> None:
        qt_log.log(levels.get(mode, logging.INFO), "%s", message)
        if mode == QtMsgType.QtWarningMsg:
            last_warning[0] = " ".join(message.split())
        if mode == QtMsgType.QtFatalMsg:  # Qt would abort (SIGABRT) next: say why, exit 1
            first = message.strip().splitlines()[0] if message.strip() else "fatal error"
            cause = f" ({last_warning[0]})" if last_warning[0] else ""
            print(f"chatapp: cannot start the window: Qt: {first}{cause}", file=sys.stderr)
            sys.stderr.flush()
            for h in logging.getLogger().handlers:
                h.flush()
            os._exit(1)

    qInstallMessageHandler(handler)


def build_window(model: str | None = None) -> MainWindow:
    """Build store, settings, session and window. Needs a QApplication."""
    from chatapp.gui.chat_session import ChatSession
    from chatapp.gui.mainwindow import MainWindow

    paths = app_paths().ensure()
    store = Store(paths.database)
    recovered = store.recover_interrupted()
    settings = Settings.load(paths.settings)
    session = ChatSession(store, settings, tools=_tools(paths))
    window = MainWindow(store, settings, paths, session)
    if recovered:
        window.show_info(
            f"{recovered} answer(s) were interrupted when chatapp last closed; "
            "they are kept as far as they got."
        )
    startup_model = model or settings.default_model or settings.last_model
    if startup_model:
        if Path(startup_model).expanduser().exists():
            session.open_model(startup_model)
        elif model:
            window.show_error(f"No such file: {startup_model}")
        else:
            window.show_info(f"The last model used is gone: {startup_model}")
    return window


def _tools(paths: Any) -> Any:
    """The app's tools (the built-ins and the MCP servers of mcp.json), closed with the
    window's session; each chat sees them with its own granted folders."""
    from chatapp.tools.registry import ToolRegistry

    return ToolRegistry(paths.config, scratch_dir=paths.data / "tool-scratch")


def _startup_probe(app: Any, window: Any) -> None:
    """For bench/startup.py (which cannot run code inside a frozen build): with
    CHATAPP_STARTUP_PROBE=<time.time() at launch>, print the seconds to a shown window and
    the conversation rows loaded, then quit."""
    t0 = os.environ.get("CHATAPP_STARTUP_PROBE")
    if not t0:
        return
    from PySide6.QtCore import QTimer

    def shown() -> None:
        print(time.time() - float(t0), window.conversations.rowCount(), flush=True)
        app.quit()

    QTimer.singleShot(0, shown)


def freeze_startup_objects() -> None:
    """The objects of start-up (Qt wrappers, modules, the chat list) live as long as the
    app: moved out of the garbage collector's reach, a full collection while an answer
    streams takes under a millisecond instead of about 30 (with the GIL held)."""
    gc.collect()
    gc.freeze()


def run_app(argv: Sequence[str]) -> int:
    args = _args(argv)
    setup_logging(verbose=args.verbose)
    from PySide6.QtWidgets import QApplication, QMessageBox

    from chatapp.gui.appicon import app_icon
    from chatapp.gui.i18n import install_translators

    _route_qt_messages()  # before QApplication: a platform plugin failure is logged too
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(sys.argv[:1])
    app.setApplicationName("chatapp")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("io.github.chatapp")  # Wayland: the icon and name of the launcher
    app.setWindowIcon(app_icon())
    install_translators(app)
    try:
        try:
            window = build_window(args.model)
        except DatabaseDamaged as e:
            from chatapp.gui.damaged_db import offer_recovery

            if not offer_recovery(e, app_paths().database):
                return 1
            window = build_window(args.model)
    except StoreError as e:
        QMessageBox.critical(None, "chatapp", str(e))
        return 1
    window.show()
    _startup_probe(app, window)
    freeze_startup_objects()
    code = app.exec()
    window.store.close()
    return int(code)
