"""Chunks that follow a document's structure: never across a page or a heading, built
from whole paragraphs and code blocks where they fit, with some overlap between
neighbours so a fact cut at a boundary is still whole in one of them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from chatapp.ingest.extract import Section

CHUNK_CHARS = 1200  # about 300 tokens
OVERLAP_CHARS = 200


@dataclass(frozen=True)
class Chunk:
    ordinal: int  # position in the document
    text: str
    page: int | None = None
    heading: str = ""


def chunk_sections(
    sections: Iterable[Section], size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS
) -> list[Chunk]:
    out: list[Chunk] = []
    for section in sections:
        if _only_heading(section):
            continue  # its title is in the heading of the sections under it
        for text in _pack(_blocks(section, size), size, overlap, section.code):
            out.append(Chunk(len(out), text, section.page, section.heading))
    return out


def _only_heading(section: Section) -> bool:
    title = section.heading.rpartition(" > ")[2].strip()
    return bool(title) and section.text.strip().lstrip("#").strip() == title


def _blocks(section: Section, size: int) -> list[str]:
    """Paragraphs (blank-line separated); a code section splits between lines only."""
    if section.code:
        return _split_lines(section.text, size)
    return [b.strip() for b in re.split(r"\n\s*\n", section.text) if b.strip()]


def _split_lines(text: str, size: int) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    n = 0
    for line in text.splitlines():
        if cur and n + len(line) + 1 > size:
            out.append("\n".join(cur))
            cur, n = [], 0
        cur.append(line)
        n += len(line) + 1
    if cur and "\n".join(cur).strip():
        out.append("\n".join(cur))
    return out


def _pieces(block: str, size: int, overlap: int) -> list[str]:
    """A block longer than a chunk, cut at sentence or word ends, overlapping."""
    out: list[str] = []
    start = 0
    while start < len(block):
        end = min(len(block), start + size)
        if end < len(block):
            cut = max(
                block.rfind(". ", start + size // 2, end), block.rfind("\n", start + size // 2, end)
            )
            if cut <= start:
                cut = block.rfind(" ", start + size // 2, end)
            if cut > start:
                end = cut + 1
        out.append(block[start:end].strip())
        if end >= len(block):
            break
        back = block.rfind(" ", max(start + 1, end - overlap), end)
        start = back + 1 if back > start else end
    return [p for p in out if p]


def _tail(text: str, overlap: int, code: bool = False) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return ""
    cut = text.find("\n" if code else " ", len(text) - overlap)
    return text[cut + 1 :] if cut >= 0 else ""


def _pack(blocks: list[str], size: int, overlap: int, code: bool = False) -> list[str]:
    out: list[str] = []
    cur = ""
    sep = "\n" if code else "\n\n"  # code keeps its lines; prose its paragraphs
    for block in blocks:
        parts = [block] if len(block) <= size or code else _pieces(block, size, overlap)
        for part in parts:
            if not cur:
                cur = part
            elif len(cur) + 2 + len(part) <= size:
                cur = f"{cur}{sep}{part}"
            else:
                out.append(cur)
                tail = _tail(cur, overlap, code) if len(part) <= size - overlap else ""
                cur = f"{tail}{sep}{part}" if tail else part
    if cur:
        out.append(cur)
    return out
