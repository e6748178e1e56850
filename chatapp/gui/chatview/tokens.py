"""A message's body as tokens: the token view or the confidence heat map, in the bubble.

A row shows its text, or (Show as… in its menu, or View > Messages as…) one of:
  tokens      each token on its own background, specials marked, hover for id and bytes
  confidence  the heat map: each token coloured by its probability as sampled, legend above
  raw         the same under the model's raw distribution (before the sampler reshaped it)
The spans come from core.tokenview (the window's controller fills Row.spans: a stored
answer's trace, the live stream's chunks, or the loaded model's tokenization of a typed
message). The layout finds a token by its position in the document (tv.runs_html's
offsets), so the view can show its tooltip and open its candidates; "explain:NAME" links
open the app's plain-language explanation.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QCoreApplication

from chatapp.core import tokenview as tv
from chatapp.gui.chatview.contrast import RGB, contrast, luminance, mix, parse_hex, to_hex
from chatapp.gui.chatview.theme import Theme

TEXT, TOKENS, CONFIDENCE, RAW = "text", "tokens", "confidence", "raw"
DISPLAYS = (TEXT, TOKENS, CONFIDENCE, RAW)


def _t(text: str) -> str:
    return QCoreApplication.translate("MessageTokens", text)


def display_labels() -> dict[str, str]:
    return {
        TEXT: QCoreApplication.translate("MessageTokens", "Text"),
        TOKENS: QCoreApplication.translate("MessageTokens", "Tokens"),
        CONFIDENCE: QCoreApplication.translate("MessageTokens", "Confidence (as sampled)"),
        RAW: QCoreApplication.translate("MessageTokens", "Confidence (raw model)"),
    }


EXPLANATIONS = {
    "tokens": tv.EXPLAIN_TOKENS,
    "probabilities": tv.EXPLAIN_PROBABILITIES + "\n\n" + tv.EXPLAIN_SAMPLING,
}


def explanation(name: str) -> str:
    return _t(EXPLANATIONS.get(name, ""))


def token_colors(theme: Theme, role: str) -> tv.TokenColors:
    """The token views' colours for a bubble, from the palette: alternating tints of the
    highlight colour, and for the heat map the highlight itself, toned down until the
    text stays readable on it (contrast 4.5:1)."""
    bubble = theme.bubble(role)
    bg = parse_hex(bubble.name())
    hi = parse_hex(theme.focus.name())
    text = parse_hex(theme.text.name())
    t = 1.0
    while t > 0.2 and contrast(text, mix(bg, hi, t)) < 4.5:
        t -= 0.05
    return tv.TokenColors(
        text=theme.text.name(),
        base=bubble.name(),
        even=to_hex(mix(bg, hi, 0.22 * t)),
        odd=to_hex(mix(bg, hi, 0.5 * t)),
        special=theme.muted.name(),
        hot=to_hex(heat_hot(bg, hi, text)),
    )


HOTTEST = 0.85  # the least-sure band is this far from the background to `hot` (tv.band_color)
BAND_CONTRAST = 4.6  # the text on every band stays readable (WCAG AA, with a little room)


def heat_hot(base: RGB, hue: RGB, text: RGB) -> RGB:
    """The heat map's `hot` colour: the palette's highlight hue, as far from the
    background in lightness as the text allows on the least-sure band. The bands are
    steps from the background towards it, so they differ in lightness, not only in hue,
    and stay apart for colour-blind eyes and in a dark theme. If the highlight is
    itself too close to the background, the text colour's direction is used instead."""
    lo, hi = 0.0, 1.0
    target = hue
    if abs(luminance(hue) - luminance(base)) < 0.1:  # a highlight barely off the base
        target = mix(hue, text, 0.5)

    def ok(t: float) -> bool:
        return contrast(text, mix(base, mix(base, target, t), HOTTEST)) >= BAND_CONTRAST

    if ok(1.0):
        return target
    for _ in range(20):  # the largest t whose hottest band keeps the text readable
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return mix(base, target, lo)


def has_probabilities(spans: list[Any]) -> bool:
    return any(s.probability is not None or s.raw_probability is not None for s in spans)


def body_html(
    display: str, spans: list[Any] | None, note: str, sampling: dict[str, Any], colors: Any
) -> tuple[str, list[int]]:
    """The bubble's body in a token display, and where each token starts in the text of
    its last block (tv.runs_html: the view finds tokens by position, not by links)."""
    muted = colors.special
    if spans is None:
        text = note or QCoreApplication.translate("MessageTokens", "Reading the tokens…")
        return f'<i style="color:{muted};">{html.escape(text)}</i>', []
    n = len(spans)
    split = sum(1 for s in spans if s.note)
    count = (
        QCoreApplication.translate("MessageTokens", "{n} tokens").format(n=n)
        if n != 1
        else QCoreApplication.translate("MessageTokens", "1 token")
    )
    if split:
        count += QCoreApplication.translate(
            "MessageTokens", ", {k} holding part of a character"
        ).format(k=split)
    probabilities = display in (CONFIDENCE, RAW) and has_probabilities(spans)
    if probabilities:
        head = tv.legend_html(colors, sampling, raw=display == RAW)
        why = f'<a href="explain:probabilities">{html.escape(QCoreApplication.translate("MessageTokens", "What do the colours mean?"))}</a>'
        head += f'<div style="color:{muted};">{html.escape(count)} · {why}</div>'
        body, offsets = tv.runs_html(spans, colors, heat=True, raw=display == RAW)
    else:
        extra = ""
        if display in (CONFIDENCE, RAW):
            extra = " · " + html.escape(
                note
                or QCoreApplication.translate(
                    "MessageTokens",
                    "no probabilities recorded for this message: its tokens are shown",
                )
            )
        why = f'<a href="explain:tokens">{html.escape(QCoreApplication.translate("MessageTokens", "What are tokens?"))}</a>'
        head = f'<div style="color:{muted};">{html.escape(count)}{extra} · {why}</div>'
        body, offsets = tv.runs_html(spans, colors)
    return head + body, offsets
