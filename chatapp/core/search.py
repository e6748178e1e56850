"""Full-text search over every conversation: titles, answers and their reasoning.

The index is SQLite FTS5 (migration 004_search_index): two external-content tables,
`messages_fts` over messages(content, thinking) and `conversations_fts` over
conversations(title), kept in step with their tables by triggers. Whatever the user
types is searched as plain words: each word is quoted, so FTS syntax (`foo*`, `AND`,
`NEAR`, quotes, parentheses, `-`, `:`) is never interpreted and never raises. The last
word (of two characters or more) also matches as a prefix, so results appear while a
word is still being typed.

Pure Python over a sqlite3 connection: the window runs it on a worker thread with its
own read-only connection (`open_readonly`), the CLI on the Store's connection.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from chatapp.core.conversation import Message, thread

log = logging.getLogger(__name__)

# Markers around a hit inside SearchHit.snippet (control characters a chat never holds
# in practice; callers turn them into bold, ANSI or HTML with `snippet_parts`).
HIT_START = "\x02"
HIT_END = "\x03"
ELLIPSIS = "…"
SNIPPET_TOKENS = 16
MAX_QUERY_CHARS = 1000
MAX_TERMS = 32


@dataclass(frozen=True)
class SearchHit:
    conversation_id: str
    title: str
    message_id: str | None  # None: the hit is in the conversation's title
    role: str | None
    snippet: str  # the matching text, hits between HIT_START and HIT_END
    created_at: float


def _usable(term: str) -> bool:
    # the tokenizer (unicode61) keeps letters and digits; a term of only punctuation
    # ("-", "*", "(") would be an empty phrase, which matches nothing
    return any(ch.isalnum() for ch in term)


def fts_query(text: str, *, prefix_last: bool = True) -> str | None:
    """The FTS5 query for what the user typed: every word a quoted phrase (so nothing
    in it is FTS syntax), all of them required. None when nothing searchable is left."""
    words = text.replace("\x00", " ")[:MAX_QUERY_CHARS].split()
    terms = [w for w in words if _usable(w)][:MAX_TERMS]
    if not terms:
        return None
    quoted = ['"' + t.replace('"', '""') + '"' for t in terms]
    if prefix_last and sum(ch.isalnum() for ch in terms[-1]) >= 2:
        # (one letter as a prefix would merge a large part of the index: not worth it)
        quoted[-1] += "*"
    return " ".join(quoted)


def snippet_parts(snippet: str) -> list[tuple[str, bool]]:
    """Split a snippet into (text, is_hit) runs, in order."""
    parts: list[tuple[str, bool]] = []
    rest = snippet
    while rest:
        start = rest.find(HIT_START)
        if start < 0:
            parts.append((rest, False))
            break
        if start:
            parts.append((rest[:start], False))
        end = rest.find(HIT_END, start + 1)
        if end < 0:
            end = len(rest)
        if end > start + 1:
            parts.append((rest[start + 1 : end], True))
        rest = rest[end + 1 :]
    return [(t.replace(HIT_START, "").replace(HIT_END, ""), hit) for t, hit in parts]


def mark_hits(snippet: str, start: str, end: str) -> str:
    """The snippet with each hit wrapped in `start` / `end` (e.g. '**', or ANSI codes)."""
    return "".join(f"{start}{t}{end}" if hit else t for t, hit in snippet_parts(snippet))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def search(db: sqlite3.Connection, text: str, limit: int = 50) -> list[SearchHit]:
    """Title hits first (best first), then message hits, at most `limit` in all. Never
    raises on what the user typed.

    Message hits are ordered by relevance (bm25) when at most RANK_LIMIT messages match;
    a query matched by more (a common word) lists the newest matches first instead:
    ranking (and snippet()) cost time in proportion to the matches (over a second for
    "the" in 200,000 messages), while newest-first stops after `limit`."""
    query = fts_query(text)
    if query is None or limit <= 0:
        return []
    titles = db.execute(
        "SELECT c.id, c.title, h.snip, c.updated_at FROM ("
        "  SELECT rowid AS r, highlight(conversations_fts, 0, ?, ?) AS snip, rank AS score"
        "  FROM conversations_fts WHERE conversations_fts MATCH ? ORDER BY rank LIMIT ?"
        ") h JOIN conversations c ON c.rowid = h.r ORDER BY h.score",
        (HIT_START, HIT_END, query, limit),
    ).fetchall()
    hits = [SearchHit(r[0], r[1], None, None, _one_line(r[2]), r[3]) for r in titles]
    if len(hits) < limit:
        hits += _message_hits(db, query, limit - len(hits))
    return hits


RANK_LIMIT = 500


def _message_hits(db: sqlite3.Connection, query: str, limit: int) -> list[SearchHit]:
    newest = [
        r[0]
        for r in db.execute(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid DESC LIMIT ?",
            (query, RANK_LIMIT + 1),
        )
    ]
    snip = "snippet(messages_fts, -1, ?, ?, ?, ?)"
    marks = (HIT_START, HIT_END, ELLIPSIS, SNIPPET_TOKENS)
    if len(newest) <= RANK_LIMIT:
        # few matches: rank them all (snippet() runs for each match, so only for few)
        found = db.execute(
            f"SELECT rowid, {snip} FROM messages_fts WHERE messages_fts MATCH ?"
            " ORDER BY rank LIMIT ?",
            (*marks, query, limit),
        ).fetchall()
    else:
        # many: the newest `limit`, a rowid range FTS5 seeks to (rowid IN or = would
        # walk the whole match for each)
        top = newest[:limit]
        found = db.execute(
            f"SELECT rowid, {snip} FROM messages_fts WHERE messages_fts MATCH ?"
            " AND rowid BETWEEN ? AND ? ORDER BY rowid DESC",
            (*marks, query, top[-1], top[0]),
        ).fetchall()
    if not found:
        return []
    rowids = [r[0] for r in found]
    rows = {
        r[0]: r[1:]
        for r in db.execute(
            "SELECT m.rowid, m.conversation_id, c.title, m.id, m.role, m.created_at"
            " FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            f" WHERE m.rowid IN ({', '.join('?' * len(rowids))})",
            rowids,
        )
    }
    return [
        SearchHit(row[0], row[1], row[2], row[3], _one_line(text), row[4])
        for rid, text in found
        if (row := rows.get(rid)) is not None
    ]


def bare_query(
    db: sqlite3.Connection, query: str, limit: int = 50, order: str = "rank"
) -> list[tuple[int, str]]:
    """A plain FTS5 query, snippets included (the benchmark's baselines): ORDER BY rank,
    or ORDER BY rowid DESC with order="newest"."""
    order_by = "rowid DESC" if order == "newest" else "rank"
    return db.execute(
        "SELECT rowid, snippet(messages_fts, -1, ?, ?, ?, ?) FROM messages_fts"
        f" WHERE messages_fts MATCH ? ORDER BY {order_by} LIMIT ?",
        (HIT_START, HIT_END, ELLIPSIS, SNIPPET_TOKENS, query, limit),
    ).fetchall()


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """A read-only connection for a worker thread (WAL lets it read beside the writer)."""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    db.execute("PRAGMA busy_timeout=5000")
    return db


def leaf_through(
    messages: Iterable[Message], message_id: str, current_leaf_id: str | None
) -> str | None:
    """The leaf to make current so that `message_id` is on the shown branch: the current
    leaf if the message is already on it, else the newest leaf below the message."""
    msgs = list(messages)
    if message_id not in {m.id for m in msgs}:
        return current_leaf_id
    if any(m.id == message_id for m in thread(msgs, current_leaf_id)):
        return current_leaf_id
    children: dict[str, list[Message]] = defaultdict(list)
    for m in msgs:  # oldest first, as the store returns them
        if m.parent_id:
            children[m.parent_id].append(m)
    leaf = message_id
    seen = {leaf}
    while children.get(leaf):
        newest = max(reversed(children[leaf]), key=lambda m: m.created_at)  # ties: the later
        if newest.id in seen:
            break
        leaf = newest.id
        seen.add(leaf)
    return leaf
