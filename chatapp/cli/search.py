"""`chatapp search QUERY`: full-text search over every conversation. No Qt.

The words are searched as plain text (FTS syntax in them means nothing); each hit prints
its conversation id, title, where it is, and the matching text with the hit marked
(bold on a terminal, **like this** otherwise).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from chatapp.cli.common import shown
from chatapp.cli.conversations import open_store
from chatapp.core.search import fts_query, snippet_parts


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search every conversation's title and messages",
        description="Find conversations by words in their titles, messages and reasoning. "
        "Every word must occur; the last may be the start of a word. Exit status 1 when "
        "nothing matches.",
    )
    p.add_argument("query", nargs="+", help="the words to find (searched as plain text)")
    p.add_argument("-n", "--limit", type=int, default=20, help="show at most N hits (default 20)")
    p.set_defaults(func=search)


def search(args: argparse.Namespace) -> int:
    text = " ".join(args.query)
    args.limit = max(args.limit, 1)
    if fts_query(text) is None:
        print(f"Nothing to search for in {text!r}: give some words.", file=sys.stderr)
        return 1
    store = open_store()
    try:
        hits = store.search(text, limit=args.limit)
    finally:
        store.close()
    if not hits:
        print(f"No conversation matches {text!r}.", file=sys.stderr)
        return 1
    start, end = ("\x1b[1;4m", "\x1b[0m") if sys.stdout.isatty() else ("**", "**")
    for h in hits:
        when = datetime.fromtimestamp(h.created_at).strftime("%Y-%m-%d %H:%M")
        if h.message_id is None:
            hit = _marked(h.snippet, start, end)
            print(f"{h.conversation_id[:12]}  {hit}  (title, {when})")
        else:
            print(
                f"{h.conversation_id[:12]}  {shown(h.title)}  ({h.role} {h.message_id[:8]}, {when})"
            )
            print(f"    {_marked(h.snippet, start, end)}")
    return 0


def _marked(snippet: str, start: str, end: str) -> str:
    """The snippet with its hits marked and its own control characters escaped."""
    return "".join(
        f"{start}{shown(t)}{end}" if hit else shown(t) for t, hit in snippet_parts(snippet)
    )
