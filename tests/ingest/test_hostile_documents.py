"""Documents made to hurt the indexer: a DOCX zip bomb that lies about its size in its
headers (the size check on the zip directory passes it), measured in a child process so
that its peak memory is its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.ingest.extract import ExtractError, extract
from tests.ingest.hostile_docx import lying_docx

# The child's own peak: VmHWM of its memory map (ru_maxrss would carry over the peak of
# the process it was forked from, a big test run, across exec).
CHILD = """
import json, sys
from pathlib import Path
from chatapp.ingest.extract import ExtractError, extract
try:
    extract(Path(sys.argv[1]))
    said = "read"
except ExtractError as e:
    said = str(e)
hwm = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"said": said, "peak_mb": int(hwm.split()[1]) / 1024}))
"""


@pytest.mark.parametrize("crc_of", ["all", "declared"])
def test_a_docx_that_lies_about_its_size_is_refused_without_unpacking_it(
    tmp_path: Path, crc_of: str
) -> None:
    bomb = lying_docx(tmp_path / "liar.docx", 300, crc_of=crc_of)
    assert bomb.stat().st_size < 1024 * 1024  # 300 MB in under a megabyte
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(bomb)], capture_output=True, text=True, timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert "refused as a zip bomb" in result["said"] and "\n" not in result["said"]
    assert "word/document.xml" in result["said"]
    # the 300 MB were never held: the child's peak is its interpreter and libraries
    assert result["peak_mb"] < 150, result


def test_an_honest_docx_still_reads(tmp_path: Path) -> None:
    # the same writer without the bomb: what the check refuses is the lie, not the file
    docx = lying_docx(tmp_path / "fine.docx", 0)
    assert extract(docx).text == "The decoy paragraph."


def test_a_damaged_deflate_stream_is_a_damaged_docx(tmp_path: Path) -> None:
    good = lying_docx(tmp_path / "fine.docx", 0).read_bytes()
    at = good.index(b"word/document.xml") + len(b"word/document.xml")
    broken = good[:at] + b"\xff" * 16 + good[at + 16 :]
    (tmp_path / "broken.docx").write_bytes(broken)
    with pytest.raises(ExtractError, match="damaged"):
        extract(tmp_path / "broken.docx")
