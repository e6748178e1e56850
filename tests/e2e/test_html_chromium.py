"""The HTML export opened in a real browser (Debian's `chromium` package), offline.

Headless Chromium renders the page to a PNG and dumps the DOM after load: the messages
holding <script> and <img onerror> must show up as text, and nothing may have run.
"""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest

from chatapp.core import export
from tests.golden.sample import sample

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)"
)


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1400",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    conv, messages = sample()
    # a marker a script would put in the document if one ran: it must never appear
    attack = (
        "<script>document.title='PWNED'</script>"
        "<img src=x onerror=\"document.body.setAttribute('data-pwned','PWNED')\">"
        "<svg onload=\"document.title='PWNED'\"></svg>"
    )
    messages[0] = messages[0].with_(content=messages[0].content + "\n\n" + attack)
    path = tmp_path_factory.mktemp("html") / "conversation.html"
    path.write_text(export.to_html(conv, messages), encoding="utf-8")
    return path


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _distinct_rows(data: bytes) -> int:
    """How many different pixel rows the PNG holds: a blank page has one or two."""
    chunks, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    _, height = _png_size(data)
    stride = len(raw) // height
    return len({raw[i * stride + 1 : (i + 1) * stride] for i in range(height)})


def test_screenshot_shows_a_real_page(page, tmp_path):
    png = tmp_path / "page.png"
    proc = _chromium(tmp_path, f"--screenshot={png}", page.as_uri())
    assert png.exists(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert _png_size(data) == (1000, 1400)
    assert len(data) > 20_000 and _distinct_rows(data) > 100


def test_no_script_runs_and_the_markup_shows_as_text(page, tmp_path):
    proc = _chromium(tmp_path, "--dump-dom", page.as_uri())
    dom = proc.stdout
    assert "<main>" in dom, proc.stderr[-2000:]
    assert "PWNED" in dom  # the text is there...
    assert '<title>Sorting in Python: &lt;fast&gt; &amp; "stable"</title>' in dom  # ...not run
    assert "data-pwned" not in dom.replace("&#39;data-pwned&#39;", "").replace("'data-pwned'", "")
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom
    assert "<script" not in dom and "<img" not in dom and "<svg" not in dom
    assert '<details class="thinking">' in dom
    assert '<span class="k">def</span>' in dom  # highlighted code survived
