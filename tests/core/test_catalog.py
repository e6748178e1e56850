"""The model library: names, split sets, fit estimates, scanning, import/remove, details."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from chatapp.core import catalog
from chatapp.core.catalog import FIT_NO, FIT_OK, FIT_TIGHT, RemoteFile, sysinfo
from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.errors import BadModelFile


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf", "Q5_K_M"),
        ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
        ("gemma-3-270m-it-BF16.gguf", "BF16"),
        ("Phi-3.5-mini-instruct-IQ4_XS.gguf", "IQ4_XS"),
        ("model-UD-Q4_K_XL.gguf", "Q4_K_XL"),
        ("Q8_0/model.gguf", ""),
        ("model.gguf", ""),
        ("model-fp16.gguf", "F16"),
    ],
)
def test_quant_of(name: str, quant: str) -> None:
    assert catalog.quant_of(name) == quant


def test_chat_model_files() -> None:
    assert catalog.is_chat_model_file("a/Model-Q4_K_M.gguf")
    for name in ("mmproj-model-f16.gguf", "model.imatrix.gguf", "README.md", "imatrix.dat"):
        assert not catalog.is_chat_model_file(name)


def test_group_files_makes_split_sets_one_entry_and_sorts_by_quant() -> None:
    files = [
        RemoteFile("m-Q8_0.gguf", 800),
        RemoteFile("Q6_K/m-Q6_K-00002-of-00002.gguf", 300),
        RemoteFile("Q6_K/m-Q6_K-00001-of-00002.gguf", 300),
        RemoteFile("m-Q2_K.gguf", 200),
        RemoteFile("m-F16-00001-of-00003.gguf", 500),  # shard 2 and 3 missing
        RemoteFile("mmproj-m-F16.gguf", 100),
        RemoteFile("config.json", 1),
    ]
    groups = catalog.group_files(files)
    assert [(g.name, g.quant, g.size, g.complete) for g in groups] == [
        ("m-Q2_K.gguf", "Q2_K", 200, True),
        ("Q6_K/m-Q6_K.gguf", "Q6_K", 600, True),
        ("m-Q8_0.gguf", "Q8_0", 800, True),
        ("m-F16.gguf", "F16", 500, False),
    ]
    assert [f.name for f in groups[1].files] == [
        "Q6_K/m-Q6_K-00001-of-00002.gguf",
        "Q6_K/m-Q6_K-00002-of-00002.gguf",
    ]


def test_fit_labels() -> None:
    gb = 1_000_000_000
    small = catalog.estimate_fit(1 * gb, 4096, 16 * gb)
    assert small.label == FIT_OK and small.need > 1 * gb
    assert catalog.estimate_fit(5 * gb, 4096, 6 * gb).label == FIT_TIGHT
    assert catalog.estimate_fit(8 * gb, 4096, 6 * gb).label == FIT_NO
    assert catalog.estimate_fit(8 * gb, 4096, 6 * gb, free_vram=8 * gb).label == FIT_OK
    # a long context costs memory: the same model stops fitting
    assert catalog.estimate_fit(4 * gb, 131072, 8 * gb).label == FIT_NO
    assert catalog.estimate_fit(4 * gb, 2048, 8 * gb).label == FIT_OK
    assert catalog.estimate_fit(gb, 4096, None).label == ""


@pytest.mark.model
def test_kv_cache_size_from_metadata(smollm2_path: Path, gemma_path: Path) -> None:
    # SmolLM2: 30 layers x 3 KV heads x (64 + 64) x 2 bytes
    assert catalog.kv_bytes_per_token(read_gguf(smollm2_path).metadata) == 30 * 3 * 128 * 2
    # Gemma 3 270M: 18 layers x 1 KV head x (256 + 256) x 2 bytes
    assert catalog.kv_bytes_per_token(read_gguf(gemma_path).metadata) == 18 * 1 * 512 * 2


def test_sysinfo_reports_memory() -> None:
    total, free = sysinfo.total_ram(), sysinfo.free_ram()
    assert total and free and 0 < free <= total


def _fake_gguf(path: Path, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + b"\0" * (size - 4))
    return path


def test_scan_library_hf_cache_and_lmstudio(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _fake_gguf(models / "org/repo/a-Q4_K_M.gguf")
    _fake_gguf(models / "org/repo/b-Q8_0-00001-of-00002.gguf")
    _fake_gguf(models / "org/repo/b-Q8_0-00002-of-00002.gguf")
    _fake_gguf(models / "org/repo/c-Q2_K-00001-of-00003.gguf")  # incomplete set
    _fake_gguf(models / "org/repo/mmproj-f16.gguf")
    (models / "org/repo/d.gguf.part").write_bytes(b"GGUF")
    _fake_gguf(models / catalog.QUARANTINE / "e.gguf")
    hf = tmp_path / "hf"
    _fake_gguf(hf / "models--bartowski--X-GGUF/snapshots/abc/X-Q5_K_M.gguf")
    lms = tmp_path / "lms"
    _fake_gguf(lms / "lmstudio-community/Y-GGUF/Y-Q4_0.gguf")
    lib = catalog.Library(
        models, tmp_path / "reg.json", hf_cache=hf, lmstudio=[lms, tmp_path / "none"]
    )
    found = {m.name: m for m in lib.models()}
    assert set(found) == {
        "org/repo/a-Q4_K_M.gguf",
        "org/repo/b-Q8_0-00001-of-00002.gguf",
        "org/repo/c-Q2_K-00001-of-00003.gguf",
        "bartowski/X-GGUF/X-Q5_K_M.gguf",
        "lmstudio-community/Y-GGUF/Y-Q4_0.gguf",
    }
    split = found["org/repo/b-Q8_0-00001-of-00002.gguf"]
    assert split.size == 200 and split.complete and split.quant == "Q8_0"
    assert not found["org/repo/c-Q2_K-00001-of-00003.gguf"].complete
    assert found["bartowski/X-GGUF/X-Q5_K_M.gguf"].source == catalog.SOURCE_HF_CACHE
    assert not found["lmstudio-community/Y-GGUF/Y-Q4_0.gguf"].owned
    # never deletes what another tool owns
    assert lib.remove(found["bartowski/X-GGUF/X-Q5_K_M.gguf"]) is False
    assert (hf / "models--bartowski--X-GGUF/snapshots/abc/X-Q5_K_M.gguf").exists()
    assert lib.remove(split) is True
    assert not (models / "org/repo/b-Q8_0-00002-of-00002.gguf").exists()
    assert lib.disk_use() == 100 + 100 + 100 + 4 + 100  # a, c, mmproj, the .part, quarantine


def test_hf_cache_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "h"))
    assert catalog.hf_cache_dir() == tmp_path / "h" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert catalog.hf_cache_dir() == tmp_path / "c"


@pytest.mark.model
def test_import_copy_and_in_place(smollm2_path: Path, tmp_path: Path) -> None:
    lib = catalog.Library(
        tmp_path / "models", tmp_path / "data/reg.json", hf_cache=tmp_path, lmstudio=[]
    )
    copied = lib.import_file(smollm2_path)
    assert copied.owned and copied.path.read_bytes()[:4] == b"GGUF"
    assert copied.size == smollm2_path.stat().st_size
    in_place = lib.import_file(smollm2_path, copy=False)
    assert in_place.source == catalog.SOURCE_REGISTERED and not in_place.owned
    assert json.loads((tmp_path / "data/reg.json").read_text())["models"] == [
        str(smollm2_path.resolve())
    ]
    assert {m.source for m in lib.models()} == {catalog.SOURCE_LIBRARY, catalog.SOURCE_REGISTERED}
    assert lib.remove(in_place) and smollm2_path.exists()
    assert lib.remove(copied) and not copied.path.exists()
    assert lib.models() == []


def test_import_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    lib = catalog.Library(tmp_path / "models", tmp_path / "reg.json")
    with pytest.raises(BadModelFile):
        lib.import_file(bad)
    assert not (tmp_path / "models").exists() or lib.models(external=False) == []


@pytest.mark.model
def test_details_cache(gemma_path: Path, smollm2_path: Path, tmp_path: Path) -> None:
    cache_file = tmp_path / "details.json"
    cache = catalog.DetailsCache(cache_file)
    t0 = time.perf_counter()
    d = cache.details(gemma_path)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = catalog.DetailsCache(cache_file).details(gemma_path)  # a new process: from the JSON
    second = time.perf_counter() - t0
    print(f"gemma details: first read {first * 1000:.1f} ms, cached {second * 1000:.2f} ms")
    assert d == again
    assert (d.architecture, d.quantization, d.context_length) == ("gemma3", "Q4_K_M", 32768)
    assert d.license == "gemma" and not d.has_chat_template
    assert catalog.human_params(d.parameter_count) == "268M"
    s = cache.details(smollm2_path)
    assert s.has_chat_template and s.license == "apache-2.0"
    # a changed file (new mtime) is read again, not served stale
    copy = tmp_path / "m.gguf"
    copy.write_bytes(smollm2_path.read_bytes()[:2_000_000])
    first_copy = cache.details(copy)
    copy.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 100)
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(BadModelFile):
        cache.details(copy)
    assert first_copy.architecture == "llama"


def test_the_curated_starter_list_is_valid() -> None:
    from chatapp.resources import resource_path

    starters = catalog.load_starters(resource_path("models.json"))
    assert len(starters) >= 5
    assert min(s.size_gb for s in starters) < 0.5  # a tiny model for a first try
    for s in starters:
        assert s.repo.count("/") == 1 and s.quant in catalog.QUANT_ORDER and s.title
    assert catalog.load_starters(Path("/nonexistent.json")) == []


def test_free_vram_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert sysinfo.free_vram() is None  # no nvidia-smi: no GPU figure
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\necho 1234\n")
    tool.chmod(0o755)
    assert sysinfo.free_vram() == 1234 * 1024 * 1024
