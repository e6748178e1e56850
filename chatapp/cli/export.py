"""`chatapp export` and `chatapp import`: the same core code as the window's File menu.

    chatapp export [--format md|html|json|txt|pdf] [--all | ID...] [-o PATH]
    chatapp import FILE [--format auto|chatapp|chatgpt]

One conversation goes to one file; several (or --all) go to a zip with an index, or
into a folder when -o names an existing folder. PDF is made by chatapp.gui.pdf in a
child process, so this module never imports Qt.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatapp.cli.common import shown, shown_json
from chatapp.core import atomic
from chatapp.core.conversation import Conversation, Message
from chatapp.core.errors import UserError
from chatapp.core.export import (
    EXTENSIONS,
    FORMATS,
    export_many,
    print_html,
    render,
    safe_filename,
)
from chatapp.core.export.images import with_image_data
from chatapp.core.export.importers import IMPORT_FORMATS, import_file
from chatapp.core.store import Store
from chatapp.paths import app_paths

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    ex = subparsers.add_parser(
        "export",
        help="export conversations to Markdown, HTML, JSON, text or PDF",
        description="Export conversations. One conversation is written to one file; several "
        "(or --all) to a zip with an index, or into PATH if it is an existing folder.",
    )
    ex.add_argument("ids", nargs="*", metavar="ID", help="conversation id or unique id prefix")
    ex.add_argument("--all", action="store_true", help="export every conversation")
    ex.add_argument(
        "-f", "--format", choices=FORMATS, help="default: from the -o extension, else md"
    )
    ex.add_argument("-o", "--output", metavar="PATH", help="file, .zip or folder; '-' = stdout")
    ex.set_defaults(func=export_command)

    im = subparsers.add_parser(
        "import",
        help="import conversations from a chatapp JSON export or ChatGPT's conversations.json",
        description="Import conversations (a .json file, or a .zip holding them). "
        "Conversations already imported are skipped.",
    )
    im.add_argument("file", metavar="FILE")
    im.add_argument("-f", "--format", choices=IMPORT_FORMATS, default="auto")
    im.set_defaults(func=import_command)


def _open_store() -> Store:
    return Store(app_paths().ensure().database)


def _format_for(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output and args.output != "-":
        suffix = Path(args.output).suffix.lower().lstrip(".")
        if suffix in FORMATS:
            return suffix
    return "md"


def export_command(args: argparse.Namespace) -> int:
    if args.all and args.ids:
        raise UserError("Give conversation ids or --all, not both.")
    if not args.all and not args.ids:
        raise UserError(
            "Name the conversations to export, or use --all.",
            hint="`chatapp conversations` lists them with their ids.",
        )
    fmt = _format_for(args)
    with _open_store() as store:
        if args.all:
            ids = [c.id for c in store.list_conversations()]
            if not ids:
                raise UserError("There are no conversations to export.")
        else:
            ids = [_find(store, ref).id for ref in args.ids]

        def load(conv_id: str) -> tuple[Conversation, list[Message]]:
            conv = store.get_conversation(conv_id)
            assert conv is not None
            return conv, with_image_data(store, store.messages(conv_id, with_tokens=fmt == "json"))

        if len(ids) == 1 and not args.all:
            return _export_one(*load(ids[0]), fmt, args.output)
        dest = Path(args.output) if args.output else Path(_default_zip_name())
        if args.output == "-":
            raise UserError("Several conversations cannot go to stdout; give a .zip or a folder.")
        if not dest.is_dir() and dest.suffix.lower() != ".zip":
            dest = dest.with_name(dest.name + ".zip")
        renderer = _pdf_renderer() if fmt == "pdf" else None
        export_many(ids, load, fmt, dest, renderer=renderer)
    print(shown(f"Exported {len(ids)} conversation{'s' if len(ids) != 1 else ''} to {dest}"))
    return 0


def _find(store: Store, ref: str) -> Conversation:
    conv = store.find_conversation(ref)
    if conv is None:
        raise UserError(
            f"No conversation {ref!r} (or the prefix matches several).",
            hint="`chatapp conversations` lists them with their ids.",
        )
    return conv


def _export_one(conv: Conversation, messages: list[Message], fmt: str, output: str | None) -> int:
    if output == "-":
        if fmt == "pdf":
            raise UserError("PDF cannot be written to stdout; give a file name with -o.")
        text = render(fmt, conv, messages)
        sys.stdout.write(shown_json(text) if fmt == "json" else shown(text))
        return 0
    dest = Path(output) if output else Path(safe_filename(conv.title, EXTENSIONS[fmt]))
    if dest.is_dir():
        dest = dest / safe_filename(conv.title, EXTENSIONS[fmt])
    if fmt == "pdf":
        atomic.write_bytes(dest, _pdf_via_child(conv, messages), mode=atomic.USER_FILE)
    else:
        atomic.write_text(dest, render(fmt, conv, messages), mode=atomic.USER_FILE)
    print(shown(f"Exported '{conv.title}' to {dest}"))
    return 0


def _default_zip_name() -> str:
    return time.strftime("chatapp-export-%Y%m%d-%H%M%S.zip")


def _pdf_renderer() -> Any:
    return lambda conv, messages: _pdf_via_child(conv, messages)


def _pdf_via_child(conv: Conversation, messages: Sequence[Message]) -> bytes:
    """Run chatapp.gui.pdf in a child process: Qt stays out of the CLI process."""
    with tempfile.TemporaryDirectory(prefix="chatapp-pdf-") as tmp:
        html_path, pdf_path = Path(tmp) / "in.html", Path(tmp) / "out.pdf"
        html_path.write_text(print_html(conv, messages), encoding="utf-8")
        env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        # the child must load this very chatapp, wherever the parent was started from
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        worker = ["--pdf-worker"] if getattr(sys, "frozen", False) else ["-m", "chatapp.gui.pdf"]
        cmd = [sys.executable, *worker, str(html_path), str(pdf_path)]
        proc = subprocess.run(
            [*cmd, "--title", conv.title], env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0 or not pdf_path.exists():
            log.error("PDF worker failed: %s", proc.stderr)
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"Could not make the PDF: {last}")
        return pdf_path.read_bytes()


def import_command(args: argparse.Namespace) -> int:
    with _open_store() as store:
        result = import_file(store, args.file, args.format)
    print(result.summary())
    return 0
