"""An answer's citations: each [n] in its text resolved to the passage the prompt
numbered n (file, page or heading, chunk id, the passage's text and scores).

Pure data in, data out, no Qt: the window turns each Citation's span into a link and a
citation card, the CLI prints the sources cited, the JSON export lists them. The
passages are the answer's meta["documents"]["passages"] (service.documents writes them),
so an answer's citations can be resolved again at any time from what was saved.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# [1], [2, 3], [1][2], heron[1] and [1-3] (models write all of these); not inside code
_CITE = re.compile(r"\[(\d{1,3}(?:\s*[,;–-]\s*\d{1,3})*)\]")
_PART = re.compile(r"(\d{1,3})(?:\s*[–-]\s*(\d{1,3}))?")
_CODE = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`", re.DOTALL)


@dataclass(frozen=True)
class Citation:
    """One passage cited at one place in the answer."""

    n: int  # the passage's number in the prompt
    start: int  # the bracket's span in the answer text
    end: int
    passage: dict[str, Any]

    @property
    def file(self) -> str:
        return str(self.passage.get("file", ""))

    @property
    def where(self) -> str:
        return str(self.passage.get("where", ""))

    @property
    def page(self) -> int | None:
        page = self.passage.get("page")
        return page if isinstance(page, int) else None

    @property
    def heading(self) -> str:
        return str(self.passage.get("heading") or "")

    @property
    def chunk_id(self) -> int | str | None:
        cid = self.passage.get("chunk_id")
        return cid if isinstance(cid, int | str) else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "at": [self.start, self.end],
            "file": self.file,
            "where": self.where,
            "page": self.page,
            "heading": self.heading,
            "chunk_id": self.chunk_id,
        }


def cite_marks(answer: str) -> list[tuple[int, int, list[int]]]:
    """Every citation mark in the text: (start, end, the numbers it names)."""
    code = [(m.start(), m.end()) for m in _CODE.finditer(answer)]
    out: list[tuple[int, int, list[int]]] = []
    for m in _CITE.finditer(answer):
        if any(a <= m.start() < b for a, b in code):
            continue  # a[1] in code is an index, not a citation
        numbers: list[int] = []
        for part in _PART.finditer(m.group(1)):
            first = int(part.group(1))
            last = int(part.group(2)) if part.group(2) else first
            if last < first or last - first > 20:
                last = first
            numbers.extend(range(first, last + 1))
        out.append((m.start(), m.end(), numbers))
    return out


def resolve(answer: str, passages: Sequence[dict[str, Any]]) -> list[Citation]:
    """Each [n] of the answer that names a passage, in the order they appear; a number
    that names no passage is left out (a model may write [7] with five sources)."""
    by_number = {p.get("n"): p for p in passages}
    out: list[Citation] = []
    for start, end, numbers in cite_marks(answer):
        for n in numbers:
            if n in by_number:
                out.append(Citation(n, start, end, by_number[n]))
    return out


def cited_passages(answer: str, passages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passages the answer cites, each once, in order of first citation."""
    out: list[dict[str, Any]] = []
    seen: set[int] = set()
    for c in resolve(answer, passages):
        if c.n not in seen:
            seen.add(c.n)
            out.append(c.passage)
    return out


def message_citations(content: str, meta: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The citations of a saved answer (for exports), or None when it was given no
    passages."""
    docs = meta.get("documents")
    passages = docs.get("passages") if isinstance(docs, dict) else None
    if not isinstance(passages, list) or not passages:
        return None
    return [c.as_dict() for c in resolve(content, [p for p in passages if isinstance(p, dict)])]
