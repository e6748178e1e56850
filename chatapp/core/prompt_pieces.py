"""Which parts of a rendered prompt are the template's markup and which are message text.

Only the template's own markup may become control tokens. A message's content (typed,
pasted, imported, a tool's result) is tokenized as text, with special-token parsing off,
so "<|im_end|>\\n<|im_start|>system" typed by a user stays those characters and cannot
forge a system turn.

How the content is found: the template is rendered a second time with every content
replaced by a unique placeholder; the text between placeholders is the markup. The real
rendering is then walked piece by piece (markup, content, markup, ...). A template that
trims a content is allowed for; one that changes it otherwise (or reads it to decide its
markup) cannot be aligned, and then, only if some content holds a special-token string,
the prompt is assembled from the placeholder rendering's markup and the contents as
written (the log says so).

The token ids (the rule, and why ordinary prompts keep theirs exactly): a content without
any special-token string is tokenized together with the markup around it, exactly as the
whole prompt was before; only a content that holds a special-token string is tokenized
on its own, so no merge crosses its two ends. Long runs of markup are cut just before a
special-token string, where the tokenizer itself cuts, so the ids do not change, but
llama.cpp's special-token partition (quadratic in the number of special-token strings in
one call) sees at most MAX_SPECIALS_PER_PIECE of them at a time.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_SPECIALS_PER_PIECE = 64
CONTENT_KEYS = ("content", "reasoning_content")


@dataclass(frozen=True)
class PromptPiece:
    text: str
    special: bool  # True: markup, special-token strings in it become control tokens


@functools.lru_cache(maxsize=8)
def _special_regex(specials: frozenset[str]) -> re.Pattern[str] | None:
    words = sorted((s for s in specials if s), key=len, reverse=True)
    if not words:
        return None
    return re.compile("|".join(re.escape(w) for w in words))


def prepare_specials(specials: Iterable[str]) -> None:
    """Compile a vocabulary's special-token matcher now (at model load: Gemma 3's 6,400
    control strings take about 100 ms) instead of during the first send."""
    _special_regex(frozenset(specials))


def has_special(text: str, specials: frozenset[str]) -> bool:
    rx = _special_regex(specials)
    return rx is not None and rx.search(text) is not None


def _cut_markup(text: str, specials: frozenset[str]) -> list[PromptPiece]:
    """`text` (special=True) cut just before every MAX_SPECIALS_PER_PIECE-th
    special-token string: the tokenizer cuts there anyway, so the ids are the same."""
    rx = _special_regex(specials)
    if rx is None or len(text) < 4096:
        return [PromptPiece(text, True)]
    out: list[PromptPiece] = []
    start = 0
    for n, m in enumerate(rx.finditer(text)):
        if n and n % MAX_SPECIALS_PER_PIECE == 0 and m.start() > start:
            out.append(PromptPiece(text[start : m.start()], True))
            start = m.start()
    out.append(PromptPiece(text[start:], True))
    return out


def with_placeholders(
    system_prompt: str, messages: list[dict[str, Any]]
) -> tuple[str, str, list[dict[str, Any]], list[str]]:
    """(nonce, system prompt, messages) with every non-empty text content replaced by a
    placeholder, and the contents in placeholder order."""
    nonce = secrets.token_hex(6)
    contents: list[str] = []

    def mark(text: str) -> str:
        contents.append(text)
        return f"@@{nonce}.{len(contents) - 1}@@"

    system = mark(system_prompt) if system_prompt.strip() else system_prompt
    out = []
    for m in messages:
        m = dict(m)
        for key in CONTENT_KEYS:
            value = m.get(key)
            if isinstance(value, str) and value:
                m[key] = mark(value)
        out.append(m)
    return nonce, system, out, contents


def _align(rendered: str, parts: list[str | int], contents: list[str]) -> list[tuple[str, bool]]:
    """The rendering as (text, is_content) pieces, following the placeholder rendering's
    parts (markup strings and content indexes). Raises ValueError where they disagree."""
    out: list[tuple[str, bool]] = []
    pos = 0
    for part in parts:
        if isinstance(part, str):
            if not rendered.startswith(part, pos):
                raise ValueError("markup differs")
            out.append((part, False))
            pos += len(part)
            continue
        c = contents[part]
        for cand in (c, c.strip(), c.rstrip(), c.lstrip()):
            if cand and rendered.startswith(cand, pos):
                out.append((cand, True))
                pos += len(cand)
                break
        else:
            raise ValueError("content not found")
    if pos != len(rendered):
        raise ValueError("trailing text")
    return out


def split_prompt(
    rendered: str,
    placeholder_render: str,
    nonce: str,
    contents: list[str],
    specials: Iterable[str],
) -> list[PromptPiece]:
    """The pieces to tokenize, in order; their texts joined are the prompt sent (the
    rendering itself, unless it could not be aligned and a content holds a special
    token string: then the placeholder rendering filled with the contents)."""
    specials = frozenset(specials)
    tokens = re.split(rf"@@{re.escape(nonce)}\.(\d+)@@", placeholder_render)
    parts: list[str | int] = [int(t) if i % 2 else t for i, t in enumerate(tokens) if i % 2 or t]
    try:
        aligned = _align(rendered, parts, contents)
    except ValueError as e:
        if not any(has_special(c, specials) for c in contents):
            return _cut_markup(rendered, specials)
        log.warning(
            "the template changes message text (%s); the prompt is built from its markup "
            "and the messages as written, so typed special tokens stay text",
            e,
        )
        aligned = [(contents[p], True) if isinstance(p, int) else (p, False) for p in parts]
    out: list[PromptPiece] = []
    run: list[str] = []  # markup and ordinary content, tokenized together
    for text, is_content in aligned:
        if is_content and has_special(text, specials):
            if run:
                out.extend(_cut_markup("".join(run), specials))
                run = []
            out.append(PromptPiece(text, False))
        else:
            run.append(text)
    if run:
        out.extend(_cut_markup("".join(run), specials))
    return out


def tokenize_pieces(
    pieces: Iterable[PromptPiece], tokenize: Callable[..., list[int]]
) -> tuple[str, list[int], tuple[tuple[int, int], ...]]:
    """(text, token ids, (start, end) of each piece tokenized as text) for the pieces."""
    text: list[str] = []
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for p in pieces:
        ids.extend(tokenize(p.text, special=p.special))
        if not p.special:
            spans.append((pos, pos + len(p.text)))
        text.append(p.text)
        pos += len(p.text)
    return "".join(text), ids, tuple(spans)
