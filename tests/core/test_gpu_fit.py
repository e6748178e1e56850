"""GPU offload fit (core.gpu_fit) on the real test models' GGUF headers: layer sizes,
KV cache, and how many layers fit several amounts of free GPU memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatapp.core import gpu_fit as g
from chatapp.core.catalog.gguf import read_gguf
from chatapp.core.errors import BadModelFile

N_CTX = 4096


@pytest.fixture(scope="module")
def smol(smollm2_path: Path) -> g.Layout:
    return g.read_layout(smollm2_path)


@pytest.fixture(scope="module")
def gemma(gemma_path: Path) -> g.Layout:
    return g.read_layout(gemma_path)


def test_smollm2_layers_add_up_to_its_tensors(smol: g.Layout, smollm2_path: Path) -> None:
    info = read_gguf(smollm2_path)
    tensors = {t.name: t.n_bytes or 0 for t in info.tensors}
    assert (smol.n_layer, smol.total, smol.n_head, smol.n_vocab) == (30, 31, 9, 49152)
    # every block's weights, and the output layer: output_norm plus a copy of the tied
    # embedding (SmolLM2 has no output.weight); token_embd itself stays in RAM
    assert sum(smol.block_bytes) == sum(v for k, v in tensors.items() if k.startswith("blk."))
    assert "output.weight" not in tensors
    assert smol.output_bytes == tensors["output_norm.weight"] + tensors["token_embd.weight"]
    assert smol.block_bytes[0] == sum(v for k, v in tensors.items() if k.startswith("blk.0."))
    # 3 KV heads x (64 + 64) values per cell, on every layer
    assert set(smol.kv_per_token) == {3 * (64 + 64)} and not any(smol.swa)


def test_kv_cache_per_layer_follows_the_context_and_type(smol: g.Layout) -> None:
    sizes = g.layer_bytes(smol, N_CTX)
    assert len(sizes) == 31 and sizes[-1] == smol.output_bytes
    kv = N_CTX * 384 * 2  # f16: 3 MiB per layer at 4096 tokens
    assert sizes[0] == smol.block_bytes[29] + kv
    assert sum(sizes) - sum(smol.block_bytes) - smol.output_bytes == 30 * kv  # 90 MiB
    q8 = g.layer_bytes(smol, N_CTX, kv_type_bytes=34 / 32)
    assert q8[0] == smol.block_bytes[29] + int(N_CTX * 384 * 34 / 32)
    assert g.layer_bytes(smol, 1024)[0] < sizes[0]


def test_gemma_sliding_window_layers(gemma: g.Layout, gemma_path: Path) -> None:
    assert (gemma.n_layer, gemma.total, gemma.n_swa) == (18, 19, 512)
    # five sliding layers, then one global, as llama.cpp lays out Gemma 3
    assert gemma.swa[:6] == (True,) * 5 + (False,) and gemma.swa.count(False) == 3
    assert set(gemma.kv_per_token) == {1 * (256 + 256)}
    full = g.layer_bytes(gemma, N_CTX)  # the engine keeps the whole cache (swa_full)
    window = g.layer_bytes(gemma, N_CTX, swa_full=False)
    kv_full, kv_window = N_CTX * 512 * 2, 1024 * 512 * 2  # window 512 + batch 512 cells
    last = gemma.block_bytes[17]  # layer 17 is global: the whole context either way
    assert full[0] == window[0] == last + kv_full
    assert full[1] == gemma.block_bytes[16] + kv_full
    assert window[1] == gemma.block_bytes[16] + kv_window
    # the tied 262k-token embedding makes the output layer the biggest by far
    assert gemma.output_bytes > sum(gemma.block_bytes)


@pytest.mark.parametrize("model", ["smol", "gemma"])
def test_how_many_layers_fit(model: str, request: pytest.FixtureRequest) -> None:
    layout: g.Layout = request.getfixturevalue(model)
    sizes = g.layer_bytes(layout, N_CTX)
    reserve = g.compute_reserve(layout, N_CTX, flash_attn=False)
    assert reserve >= g.RESERVE_FIXED

    everything = g.fit_layers(layout, N_CTX, reserve + sum(sizes))
    assert (everything.layers, everything.total) == (layout.total, layout.total)
    assert everything.need == everything.need_all == sum(sizes)
    plenty = g.fit_layers(layout, N_CTX, 80 * g.GIB)
    assert plenty.layers == layout.total

    for free in (0, g.RESERVE_FIXED, reserve, reserve + sizes[0] - 1):
        nothing = g.fit_layers(layout, N_CTX, free)
        assert (nothing.layers, nothing.need) == (0, 0), free

    # a part: exactly k layers' bytes over the reserve, and one byte short of k + 1
    for k in (1, 5, layout.n_layer):
        part = g.fit_layers(layout, N_CTX, reserve + sum(sizes[: k + 1]) - 1)
        assert part.layers == k and part.need == sum(sizes[:k]), k
        assert g.fit_layers(layout, N_CTX, reserve + sum(sizes[:k])).layers == k
    # the output layer goes last: every block fits but not the output layer
    blocks_only = g.fit_layers(layout, N_CTX, reserve + sum(sizes) - 1)
    assert blocks_only.layers == layout.n_layer


def test_flash_attention_and_a_shorter_context_need_less(smol: g.Layout) -> None:
    free = 760 * g.MIB
    plain = g.fit_layers(smol, N_CTX, free)
    flash = g.fit_layers(smol, N_CTX, free, flash_attn=True)
    assert 0 < plain.layers < flash.layers
    assert g.fit_layers(smol, 1024, free).layers >= plain.layers


def _write(path: Path, *, block_count: int | None, blocks: int, arch: str = "llama") -> Path:
    import gguf

    w = gguf.GGUFWriter(str(path), arch)
    if block_count is not None:
        w.add_uint32(f"{arch}.block_count", block_count)
    w.add_uint32(f"{arch}.embedding_length", 8)
    w.add_uint32(f"{arch}.attention.head_count", 2)
    w.add_tensor("token_embd.weight", np.zeros((16, 8), dtype=np.float32))
    for i in range(blocks):
        w.add_tensor(f"blk.{i}.attn_q.weight", np.zeros((8, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_tiny_written_model_fits_by_its_tensors(tmp_path: Path) -> None:
    layout = g.read_layout(_write(tmp_path / "tiny.gguf", block_count=2, blocks=2))
    assert layout.block_bytes == (256, 256) and layout.output_bytes == 16 * 8 * 4
    assert layout.kv_per_token == (2 * (4 + 4),) * 2  # key length = 8 / 2 heads


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _write(p, block_count=None, blocks=1), "no 'llama.block_count'"),
        (lambda p: _write(p, block_count=3, blocks=2), "layer 2 holds no weights"),
        (lambda p: _write(p, block_count=1, blocks=2), "past the 1 layers"),
        (lambda p: p.write_bytes(b"not a model at all"), "not a GGUF model file"),
        (lambda p: p.write_bytes(b"GGUF\x03\x00\x00\x00\x05"), "truncated"),
    ],
)
def test_a_malformed_file_is_a_clear_error(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.gguf"
    make(path)
    with pytest.raises(BadModelFile, match=message):
        g.read_layout(path)
    # and an automatic load of it runs on the CPU, saying why
    off = g.decide(g.AUTO, supported=True, total=0, free=8 * g.GIB, readable=False)
    assert (off.layers, off.reason) == (0, g.UNREADABLE)
    assert off.describe() == "CPU (auto: the model's layer sizes could not be read)"


def test_decide(smol: g.Layout) -> None:
    fit = g.fit_layers(smol, N_CTX, 800 * g.MIB)
    assert 0 < fit.layers < smol.total
    # a CPU build: nothing offloaded, whatever was asked
    for asked in (g.AUTO, -1, 12):
        cpu = g.decide(asked, supported=False, total=31, free=8 * g.GIB, fit=fit)
        assert (cpu.layers, cpu.reason) == (0, g.NO_GPU_BUILD)
        assert cpu.describe() == "CPU (this llama.cpp build has no GPU support)"
    assert g.decide(0, supported=False, total=31).describe() == "CPU"
    assert g.decide(0, supported=True, total=31).reason == g.OFF
    # numbers as given, capped at the model's layers
    assert g.decide(-1, supported=True, total=31).layers == 31
    assert g.decide(12, supported=True, total=31).describe() == "GPU 12/31 layers"
    assert g.decide(500, supported=True, total=31).layers == 31
    # auto: the fit, or the CPU when the free memory is unknown or too small
    auto = g.decide(g.AUTO, supported=True, total=31, free=800 * g.MIB, fit=fit)
    assert (auto.layers, auto.need, auto.free) == (fit.layers, fit.need, 800 * g.MIB)
    assert auto.describe() == f"GPU {fit.layers}/31 layers (auto, 0.8 GiB free)"
    unknown = g.decide(g.AUTO, supported=True, total=31, free=None)
    assert (unknown.layers, unknown.reason) == (0, g.NO_FREE_FIGURE)
    assert unknown.describe() == "CPU (auto: no free GPU memory figure)"
    small = g.fit_layers(smol, N_CTX, 100 * g.MIB)
    none = g.decide(g.AUTO, supported=True, total=31, free=100 * g.MIB, fit=small)
    assert none.describe() == "CPU (auto: no layer fits 0.1 GiB free)"


@pytest.mark.parametrize(
    ("given", "value"),
    [("auto", "auto"), (" Auto ", "auto"), ("all", -1), ("-1", -1), ("0", 0), ("24", 24), (7, 7)],
)
def test_parse_gpu_layers(given: object, value: object) -> None:
    assert g.parse_gpu_layers(given) == value


@pytest.mark.parametrize("given", ["lots", "-2", -5, True, 2.5, None])
def test_parse_gpu_layers_refuses(given: object) -> None:
    with pytest.raises(ValueError, match="GPU layers must be"):
        g.parse_gpu_layers(given)
