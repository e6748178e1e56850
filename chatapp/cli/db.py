"""`chatapp db check` and `chatapp db recover`: look after the chat database (no Qt)."""

from __future__ import annotations

import argparse
from pathlib import Path

from chatapp.core.errors import StoreError
from chatapp.core.store.connection import connect, damaged
from chatapp.core.store.health import quick_check
from chatapp.core.store.recover import recover
from chatapp.paths import app_paths


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="check the chat database, or recover a damaged one")
    cmds = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    check = cmds.add_parser("check", help="read every page and say whether the file is sound")
    recover_p = cmds.add_parser(
        "recover",
        help="keep the damaged file as a copy and recover what can be read into a new one",
    )
    for q in (check, recover_p):
        q.add_argument("--database", metavar="PATH", help="another database file")
    check.set_defaults(func=check_db)
    recover_p.set_defaults(func=recover_db)


def _path(args: argparse.Namespace) -> Path:
    return Path(args.database).expanduser() if args.database else app_paths().ensure().database


def check_db(args: argparse.Namespace) -> int:
    path = _path(args)
    if not path.is_file():
        raise StoreError(f"There is no chat database at {path}.")
    db = connect(path, read_only=True)  # a check never writes, whatever it finds
    try:
        problem = quick_check(db, full=True)
    finally:
        db.close()
    if problem:
        raise damaged(path, problem)
    print(f"The chat database {path} is sound.")
    return 0


def recover_db(args: argparse.Namespace) -> int:
    result = recover(_path(args))
    print(result.summary())
    return 0
