"""WCAG contrast arithmetic on RGB triples (no Qt: the Markdown renderer uses it too)."""

from __future__ import annotations

RGB = tuple[int, int, int]

MIN_CONTRAST = 4.5  # WCAG AA for normal text
BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)


def parse_hex(text: str) -> RGB:
    h = text.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def to_hex(c: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*c)


def _channel(c: float) -> float:
    c /= 255.0
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(c: RGB) -> float:
    return 0.2126 * _channel(c[0]) + 0.7152 * _channel(c[1]) + 0.0722 * _channel(c[2])


def contrast(a: RGB, b: RGB) -> float:
    la, lb = luminance(a), luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """a blended towards b by t (0: a, 1: b)."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def readable(fg: RGB, bg: RGB, towards: RGB, ratio: float = MIN_CONTRAST) -> RGB:
    """fg, moved towards `towards` (the palette's text colour) just far enough to reach
    `ratio` against bg; if even `towards` does not, black or white, whichever reads."""
    if contrast(fg, bg) >= ratio:
        return fg
    for i in range(1, 11):
        c = mix(fg, towards, i / 10)
        if contrast(c, bg) >= ratio:
            return c
    return BLACK if contrast(BLACK, bg) >= contrast(WHITE, bg) else WHITE
