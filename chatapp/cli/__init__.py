"""Headless commands on the same core and engines as the window. Never imports Qt.

Each command lives in its own module (COMMAND_MODULES) with `register(subparsers)`;
the module sets `func` on its parser, which takes the parsed args and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from chatapp import __version__
from chatapp.core.errors import UserError, exit_code

log = logging.getLogger(__name__)

COMMAND_MODULES = (
    "chatapp.cli.chat",  # chat
    "chatapp.cli.conversations",  # conversations (list, show, --tree, pin, tags)
    "chatapp.cli.search",  # search
    "chatapp.cli.models",  # models search|list|download|import|remove|info
    "chatapp.cli.export",  # export, import
    "chatapp.cli.prompt",  # prompt
    "chatapp.cli.db",  # db check|recover
    "chatapp.cli.complete",  # complete (completion mode)
    "chatapp.cli.serve",  # serve (the OpenAI-compatible API)
    "chatapp.cli.tools",  # tools (built-in and MCP tools a model may call)
    "chatapp.cli.docs",  # docs add|list|remove|search (document collections)
)


def command_names() -> set[str]:
    return set(_parser_and_commands()[1].choices)


def _parser() -> argparse.ArgumentParser:
    return _parser_and_commands()[0]


def _parser_and_commands() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    p = argparse.ArgumentParser(
        prog="chatapp",
        description="chatapp: chat with local GGUF models. With no command, opens the window.",
    )
    p.add_argument("--version", action="version", version=f"chatapp {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return p, sub


def run(argv: Sequence[str]) -> int:
    from chatapp.logsetup import setup_logging

    parser = _parser()
    args = parser.parse_args(list(argv))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(verbose=args.verbose)
    _warn_about_settings()
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        from chatapp.cli.common import shown

        # a message may quote what a server, a file or a title holds
        print(f"chatapp: error: {shown(str(e))}", file=sys.stderr)
        return exit_code(e.kind)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def _warn_about_settings() -> None:
    """Settings.load moves an unreadable settings file aside: say so, in one line."""
    from chatapp.core.settings import Settings
    from chatapp.paths import app_paths

    notice = Settings.load(app_paths().settings).notice
    if notice:
        print(f"chatapp: warning: {notice}", file=sys.stderr)
