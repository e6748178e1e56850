"""Token view and confidence heat map as pure functions: tokens (+ probabilities) in,
text or HTML out, no Qt. The message view, the input box and the tokenizer playground
render with these; the GUI passes its palette's colours.

Honest about bytes: a token is shown as the UTF-8 text it stands for; bytes that are
not whole characters by themselves (a multi-byte character split across tokens) are
shown as \\xNN escapes, and the hover text names the character they are part of. A label
is reversible: `label_bytes(token_label(b)) == b`, so the view loses nothing.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from chatapp.core.logprobs import TokenStep, TokenTrace, sampling_summary

# The app's own words, shown beside each view.
EXPLAIN_TOKENS = (
    "A model does not read letters or words: it reads tokens, pieces of text from a fixed "
    "vocabulary learned from lots of text (byte-pair encoding). Common words are one token, "
    "rare words several; a space usually belongs to the word after it. Each coloured block "
    "is one token; hover for its number in the vocabulary and its bytes. Special tokens "
    "(bold, lined above) are markers such as the start of a turn, never typed text. A character such "
    "as an emoji can be split over two tokens: its pieces show as \\x.. bytes."
)
EXPLAIN_PROBABILITIES = (
    "At every step the model gives each token in its vocabulary a probability of coming "
    "next, and one is drawn. The colours show how sure it was of the token it chose: a run "
    "of unlikely tokens is where the model was guessing, so check those parts. Hover a "
    "token for the candidates it was chosen from."
)
EXPLAIN_SAMPLING = (
    "The raw probabilities are the model's own. Before drawing, the sampler reshapes them: "
    "the repeat penalty lowers tokens used recently; top-k keeps only the k most likely; "
    "top-p keeps the most likely tokens until their probabilities add up to p; min-p drops "
    "tokens far less likely than the best one; the temperature then sharpens (below 1) or "
    "flattens (above 1) what is left. Temperature 0 always takes the most likely token. "
    "The sampled probabilities are what the token was really drawn from."
)
EXPLAIN_BASE_VS_ASSISTANT = (
    "A base model has only learned to continue text: give it the start of a document and it "
    "writes on. An assistant (instruct) model was trained further on conversations written "
    "in a turn format with special tokens, so it answers questions. Completion mode sends "
    "your text as written, with no turn format, which suits base models."
)

# confidence bands of the heat map: (lowest probability, label), most sure first
BANDS: tuple[tuple[float, str], ...] = (
    (0.9, "≥ 90%"),
    (0.5, "50–90%"),
    (0.2, "20–50%"),
    (0.05, "5–20%"),
    (0.0, "< 5%"),
)


@dataclass(frozen=True)
class TokenSpan:
    """One token as a view shows it. probability: under the distribution the sampler drew
    from (None: not known, e.g. a typed message); alternatives: (token bytes, probability)
    best first, sampled and raw."""

    index: int
    token_id: int
    data: bytes
    special: bool = False
    probability: float | None = None
    raw_probability: float | None = None
    alternatives: tuple[tuple[bytes, float], ...] = ()
    raw_alternatives: tuple[tuple[bytes, float], ...] = ()
    note: str = ""  # e.g. "bytes 1–2 of 4 of '🦙'"
    forced: bool = False

    @property
    def label(self) -> str:
        return token_label(self.data)


@dataclass(frozen=True)
class TokenColors:
    """Colours from the GUI's palette (hex strings); the defaults suit a light theme."""

    text: str = "#000000"
    base: str = "#ffffff"
    even: str = "#dfe8f7"
    odd: str = "#f7e6d5"
    special: str = "#7a7a7a"
    hot: str = "#d9534f"  # the heat map's least-sure colour
    extra: dict[str, str] = field(default_factory=dict)


# -- labels ---------------------------------------------------------------------------

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def token_label(data: bytes) -> str:
    """Whole UTF-8 characters as text, other bytes as \\xNN; backslash, newline, tab and
    carriage return escaped so every label is one line and reversible."""
    out: list[str] = []
    i = 0
    while i < len(data):
        n = _char_len(data[i])
        chunk = data[i : i + n]
        try:
            ch = chunk.decode("utf-8") if n and len(chunk) == n else None
        except UnicodeDecodeError:
            ch = None
        if ch is None:
            out.append(f"\\x{data[i]:02x}")
            i += 1
            continue
        out.append(_ESCAPES.get(ch, ch))
        i += n
    return "".join(out)


def label_bytes(label: str) -> bytes:
    """The inverse of token_label."""
    out = bytearray()
    i = 0
    back = {"\\": b"\\", "n": b"\n", "t": b"\t", "r": b"\r"}
    while i < len(label):
        c = label[i]
        if c == "\\" and i + 1 < len(label):
            nxt = label[i + 1]
            if nxt == "x":
                out.append(int(label[i + 2 : i + 4], 16))
                i += 4
                continue
            if nxt in back:
                out += back[nxt]
                i += 2
                continue
        out += c.encode("utf-8")
        i += 1
    return bytes(out)


def _char_len(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0  # a continuation byte or invalid lead: not a character start


def starts_character(data: bytes) -> bool:
    """Whether a token's bytes begin a character (not in the middle of one)."""
    return not data or _char_len(data[0]) != 0


def split_characters(datas: Sequence[bytes]) -> list[str]:
    """For each token, a note on the characters it holds only part of."""
    notes: list[list[str]] = [[] for _ in datas]
    owner: list[int] = []
    for i, d in enumerate(datas):
        owner.extend([i] * len(d))
    whole = b"".join(datas)
    pos = 0
    while pos < len(whole):
        n = _char_len(whole[pos])
        chunk = whole[pos : pos + n] if n > 1 else b""
        try:
            ch = chunk.decode("utf-8") if len(chunk) == n and n > 1 else ""
        except UnicodeDecodeError:
            ch = ""
        if ch and owner[pos] != owner[pos + n - 1]:
            for t in sorted(set(owner[pos : pos + n])):
                mine = [k - pos + 1 for k in range(pos, pos + n) if owner[k] == t]
                which = f"{mine[0]}" if len(mine) == 1 else f"{mine[0]}–{mine[-1]}"
                notes[t].append(f"byte {which} of {n} of {ch!r} (U+{ord(ch):04X})")
        pos += max(n, 1) if ch else 1
    return ["; ".join(x) for x in notes]


# -- spans ------------------------------------------------------------------------------


def spans_from_tokens(
    tokens: Sequence[tuple[int, bytes]],
    special: Container[int] | Callable[[int], bool] = (),
) -> list[TokenSpan]:
    """Tokens of a text (the input box, a typed message, the playground)."""
    is_special = special if callable(special) else (lambda t: t in special)
    notes = split_characters([d for _, d in tokens])
    return [
        TokenSpan(i, t, d, bool(is_special(t)), note=notes[i]) for i, (t, d) in enumerate(tokens)
    ]


def is_special_token(info: Any, token_id: int, data: bytes) -> bool:
    """Whether a token of the model `info` (a core.token_engine.ModelInfo, or None) is a marker:
    an end-of-generation token or one of its control/user-defined token texts."""
    if info is None:
        return False
    return token_id in info.eog_token_ids or data.decode("utf-8", "replace") in (
        info.special_tokens
    )


def span_from_step(
    index: int,
    step: TokenStep,
    data_of: Callable[[int], bytes],
    special: bool = False,
    note: str = "",
    forced: bool = False,
) -> TokenSpan:
    """A generated token as a view shows it; data_of gives any token id's bytes."""

    def alts(pairs: Sequence[tuple[int, float]]) -> tuple[tuple[bytes, float], ...]:
        return tuple((data_of(t), math.exp(lp)) for t, lp in pairs if math.isfinite(lp))

    return TokenSpan(
        index,
        step.token_id,
        data_of(step.token_id),
        special,
        step.probability,
        step.raw_probability,
        alts(step.sampled_top),
        alts(step.top),
        note,
        forced=forced,
    )


def spans_from_trace(
    trace: TokenTrace, special: Container[int] | Callable[[int], bool] = ()
) -> list[TokenSpan]:
    """A generated answer's tokens with their probabilities and alternatives."""
    is_special = special if callable(special) else (lambda t: t in special)
    notes = split_characters([trace.data(s.token_id) for s in trace.steps])
    return [
        span_from_step(
            i, s, trace.data, bool(is_special(s.token_id)), notes[i], forced=i < trace.forced
        )
        for i, s in enumerate(trace.steps)
    ]


def spans_text(spans: Sequence[TokenSpan]) -> str:
    """The text the spans stand for (characters split across tokens joined again)."""
    return b"".join(s.data for s in spans).decode("utf-8", "replace")


def labels_text(spans: Sequence[TokenSpan], sep: str = "|") -> str:
    """A plain-text token view for the terminal: labels between separators."""
    return sep + sep.join(s.label.replace(sep, f"\\x{ord(sep):02x}") for s in spans) + sep


# -- HTML -------------------------------------------------------------------------------


def _mix(a: str, b: str, t: float) -> str:
    """a blended toward b by t (0..1), as #rrggbb."""
    pa = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    pb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(pa, pb))


def band(probability: float) -> int:
    for i, (low, _) in enumerate(BANDS):
        if probability >= low:
            return i
    return len(BANDS) - 1


def band_color(i: int, colors: TokenColors) -> str:
    return _mix(colors.base, colors.hot, i / (len(BANDS) - 1) * 0.85)


def _pct(p: float) -> str:
    return f"{100 * p:.1f}%" if p >= 0.001 else f"{100 * p:.2g}%"


def tooltip(span: TokenSpan) -> str:
    lines = [f"token {span.index + 1} · id {span.token_id} · bytes {span.data.hex(' ') or '—'}"]
    if span.special:
        lines.append("special token (a marker, not text)")
    if span.note:
        lines.append("part of a character: " + span.note)
    if span.probability is not None:
        lines.append(f"probability {_pct(span.probability)} as sampled")
    if span.raw_probability is not None:
        lines.append(f"raw probability {_pct(span.raw_probability)}")
    if span.forced:
        lines.append("kept from the answer this branch came from")
    if span.alternatives:
        lines.append(
            "sampled from: "
            + ", ".join(f"{token_label(d)!r} {_pct(p)}" for d, p in span.alternatives)
        )
    if span.raw_alternatives:
        lines.append(
            "raw top: "
            + ", ".join(f"{token_label(d)!r} {_pct(p)}" for d, p in span.raw_alternatives)
        )
    return "\n".join(lines)


def _span_html(
    span: TokenSpan,
    bg: str,
    colors: TokenColors,
    marked: bool = False,
    link: bool = False,
) -> str:
    # Qt's rich text has no inline borders: specials are bold, grey and overlined,
    # tokens cut differently from another model are underlined
    style = f"background-color:{bg}; color:{colors.text};"
    deco = []
    if span.special:
        style += f" color:{colors.special}; font-weight:bold;"
        deco.append("overline")
    if marked:
        deco.append("underline")
    style += f" text-decoration:{' '.join(deco) or 'none'};"
    label = html.escape(span.label) or "&nbsp;"
    brk = "<br>" if span.data.endswith(b"\n") else ""  # the label shows \n; the line breaks too
    # a link "tok:INDEX" lets a view pick the token on click
    anchor = f'href="tok:{span.index}"' if link else f'name="tok{span.index}"'
    tip = html.escape(tooltip(span))
    return f'<a {anchor} title="{tip}" style="{style}">{label}</a>{brk}'


def token_view_html(
    spans: Sequence[TokenSpan],
    colors: TokenColors | None = None,
    marked: Container[int] = (),
    *,
    links: bool = False,
) -> str:
    """Tokens on alternating backgrounds; specials marked; hover for id and bytes.
    marked: token indices to underline (where another tokenizer cuts differently).
    links: tokens are links "tok:INDEX" (a view that picks a token on click)."""
    c = colors or TokenColors()
    body = "".join(
        _span_html(s, c.even if s.index % 2 == 0 else c.odd, c, s.index in marked, links)
        for s in spans
    )
    return f'<div style="white-space:pre-wrap; font-family:monospace;">{body}</div>'


def heatmap_html(
    spans: Sequence[TokenSpan],
    colors: TokenColors | None = None,
    *,
    raw: bool = False,
    links: bool = False,
) -> str:
    """The text coloured by how sure the model was of each token (sampled probability,
    or raw with raw=True); tokens with no probability keep the base colour."""
    c = colors or TokenColors()
    parts = []
    for s in spans:
        p = s.raw_probability if raw else s.probability
        bg = c.base if p is None else band_color(band(p), c)
        parts.append(_span_html(s, bg, c, link=links))
    return f'<div style="white-space:pre-wrap;">{"".join(parts)}</div>'


def _utf16_len(text: str) -> int:
    """Characters as a QTextDocument counts them (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def runs_html(
    spans: Sequence[TokenSpan],
    colors: TokenColors | None = None,
    *,
    heat: bool = False,
    raw: bool = False,
) -> tuple[str, list[int]]:
    """A light token view (heat=False) or heat map for a view that paints the document
    and finds tokens by position: neighbours that look the same share one <span>, no
    links, no titles. Returns the HTML and where each token starts in the document's text
    (offsets from the first token; one more entry: where the last one ends)."""
    c = colors or TokenColors()
    parts: list[str] = []
    offsets: list[int] = []
    pos = 0
    style: str | None = None
    run: list[str] = []
    for s in spans:
        if heat:
            p = s.raw_probability if raw else s.probability
            bg = c.base if p is None else band_color(band(p), c)
        else:
            bg = c.even if s.index % 2 == 0 else c.odd
        st = f"background-color:{bg};"
        if s.special:
            st += f" color:{c.special}; font-weight:bold; text-decoration:overline;"
        if st != style:
            if run:
                parts.append(f'<span style="{style}">{"".join(run)}</span>')
            style, run = st, []
        label = s.label or "\u00a0"
        brk = s.data.endswith(b"\n")
        offsets.append(pos)
        pos += _utf16_len(label) + (1 if brk else 0)
        run.append(html.escape(label) + ("<br>" if brk else ""))
    if run:
        parts.append(f'<span style="{style}">{"".join(run)}</span>')
    offsets.append(pos)
    font = "" if heat else " font-family:monospace;"
    return (
        f'<div style="white-space:pre-wrap; color:{c.text};{font}">{"".join(parts)}</div>',
        offsets,
    )


def legend_html(
    colors: TokenColors | None = None, sampling: dict | None = None, *, raw: bool = False
) -> str:
    c = colors or TokenColors()
    cells = "".join(
        f'<td style="background-color:{band_color(i, c)}; color:{c.text}; padding:2px 6px;">'
        f"{html.escape(name)}</td>"
        for i, (_, name) in enumerate(BANDS)
    )
    which = "raw probability (the model's own)" if raw else "probability as sampled"
    shaped = (
        "" if raw or not sampling else f" · shaped by {html.escape(sampling_summary(sampling))}"
    )
    return (
        f'<table cellspacing="0"><tr><td style="padding-right:6px;">{which}{shaped}:</td>'
        f"{cells}</tr></table>"
    )


def heatmap_text(spans: Sequence[TokenSpan]) -> str:
    """The terminal's heat map: each token followed by its band's digit (0: most sure)."""
    return "".join(
        f"{s.label}[{band(s.probability)}]" if s.probability is not None else s.label for s in spans
    )


def compare_tokenizations(
    a: Sequence[tuple[int, bytes]], b: Sequence[tuple[int, bytes]]
) -> list[tuple[int, int, int, int]]:
    """Where two tokenizations of the same text cut differently: runs (a_start, a_end,
    b_start, b_end) of token indices between shared cut points (byte offsets)."""

    def cuts(toks: Sequence[tuple[int, bytes]]) -> list[int]:
        out, pos = [0], 0
        for _, d in toks:
            pos += len(d)
            out.append(pos)
        return out

    ca, cb = cuts(a), cuts(b)
    shared = sorted(set(ca) & set(cb))
    runs = []
    for lo, hi in pairwise(shared):
        ia, ja = ca.index(lo), ca.index(hi)
        ib, jb = cb.index(lo), cb.index(hi)
        if (ja - ia, jb - ib) != (1, 1):
            runs.append((ia, ja, ib, jb))
    return runs


def differing_indices(
    a: Sequence[tuple[int, bytes]], b: Sequence[tuple[int, bytes]]
) -> tuple[set[int], set[int]]:
    """Token indices of a and of b inside runs where the two cut the text differently."""
    ia: set[int] = set()
    ib: set[int] = set()
    for a0, a1, b0, b1 in compare_tokenizations(a, b):
        ia.update(range(a0, a1))
        ib.update(range(b0, b1))
    return ia, ib
