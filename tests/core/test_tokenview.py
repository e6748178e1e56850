"""Token view and heat map rendering (pure functions), on hand-made tokens."""

from __future__ import annotations

import math
import re

from chatapp.core import tokenview as tv
from chatapp.core.logprobs import TokenStep, TokenTrace

# "Hi 🦙\n" cut so the llama's 4 bytes straddle two tokens, plus a control token
LLAMA = "🦙".encode()
TOKENS = [
    (1, b"Hi"),
    (2, b" " + LLAMA[:2]),
    (3, LLAMA[2:] + b"\n"),
    (4, b"\\x41"),
    (9, b"<|im_end|>"),
]


def test_labels_escape_split_characters_and_round_trip() -> None:
    spans = tv.spans_from_tokens(TOKENS, special={9})
    labels = [s.label for s in spans]
    assert labels[1] == " \\xf0\\x9f" and labels[2] == "\\xa6\\x99\\n"
    assert labels[3] == "\\\\x41"  # a literal backslash is escaped, not mistaken for a byte
    assert b"".join(tv.label_bytes(x) for x in labels) == b"".join(d for _, d in TOKENS)
    assert tv.spans_text(spans) == "Hi 🦙\n\\x41<|im_end|>"
    assert "byte 1–2 of 4 of '🦙'" in spans[1].note and "byte 3–4 of 4" in spans[2].note
    assert spans[4].special and not spans[0].special and spans[0].note == ""


def test_token_view_html_alternates_colours_and_marks_specials() -> None:
    colors = tv.TokenColors(even="#111111", odd="#222222", special="#333333")
    out = tv.token_view_html(tv.spans_from_tokens(TOKENS, special={9}), colors, marked={1})
    spans = re.findall(r'<a name="tok(\d+)" title="([^"]*)" style="([^"]*)"', out)
    assert [int(i) for i, _, _ in spans] == [0, 1, 2, 3, 4]
    assert "#111111" in spans[0][2] and "#222222" in spans[1][2] and "#111111" in spans[2][2]
    assert "overline" in spans[4][2] and "font-weight:bold" in spans[4][2]
    assert "underline" in spans[1][2] and "underline" not in spans[0][2]
    assert "id 2 · bytes 20 f0 9f" in spans[1][1]
    assert "&lt;|im_end|&gt;" in out  # escaped, never live HTML


def _trace() -> TokenTrace:
    steps = (
        TokenStep(
            1,
            math.log(0.5),
            math.log(0.95),
            ((1, math.log(0.5)), (5, math.log(0.3))),
            ((1, math.log(0.95)), (5, math.log(0.05))),
        ),
        TokenStep(
            2,
            math.log(0.02),
            math.log(0.04),
            ((6, math.log(0.9)), (2, math.log(0.02))),
            ((6, math.log(0.96)), (2, math.log(0.04))),
        ),
        TokenStep(3, None, None),
    )
    pieces = {1: b"Hi", 2: b" " + LLAMA[:2], 3: LLAMA[2:], 5: b"Hey", 6: b" there"}
    return TokenTrace(steps, pieces, 2, {"temperature": 0.7, "top_k": 40, "top_p": 0.95}, forced=1)


def test_heatmap_colours_by_sampled_probability_with_a_legend() -> None:
    spans = tv.spans_from_trace(_trace())
    assert tv.spans_text(spans) == "Hi 🦙"
    assert spans[0].forced and not spans[1].forced
    colors = tv.TokenColors(base="#ffffff", hot="#ff0000")
    out = tv.heatmap_html(spans, colors)
    bgs = re.findall(r"background-color:(#[0-9a-f]{6})", out)
    assert bgs[0] == tv.band_color(0, colors)  # 95% sampled: the surest band
    assert bgs[1] == tv.band_color(4, colors)  # 4%: the least sure band, reddest
    assert bgs[2] == "#ffffff"  # unknown probability: no colour
    assert bgs[0] != bgs[1]
    raw = re.findall(r"background-color:(#[0-9a-f]{6})", tv.heatmap_html(spans, colors, raw=True))
    assert raw[0] == tv.band_color(1, colors)  # 50% raw
    assert "' there' 96.0%" in tv.tooltip(spans[1]) and "raw top: ' there' 90.0%" in tv.tooltip(
        spans[1]
    )
    legend = tv.legend_html(colors, _trace().sampling)
    assert all(name in legend.replace("&lt;", "<").replace("&gt;", ">") for _, name in tv.BANDS)
    assert "temperature 0.7, top-k 40, top-p 0.95" in legend
    assert "raw probability" in tv.legend_html(colors, raw=True)
    assert tv.heatmap_text(spans).startswith("Hi[0] \\xf0\\x9f[4]")


def test_compare_tokenizations_finds_where_cuts_differ() -> None:
    a = [(1, b"The"), (2, b" cat"), (3, b"s"), (4, b" sat")]
    b = [(7, b"The"), (8, b" cats"), (9, b" sat")]
    assert tv.compare_tokenizations(a, b) == [(1, 3, 1, 2)]
    assert tv.differing_indices(a, b) == ({1, 2}, {1})
    assert tv.compare_tokenizations(a, a) == []


def test_explanations_are_there() -> None:
    for text in (
        tv.EXPLAIN_TOKENS,
        tv.EXPLAIN_PROBABILITIES,
        tv.EXPLAIN_SAMPLING,
        tv.EXPLAIN_BASE_VS_ASSISTANT,
    ):
        assert len(text.split()) > 30
    assert "top-p" in tv.EXPLAIN_SAMPLING and "base model" in tv.EXPLAIN_BASE_VS_ASSISTANT
