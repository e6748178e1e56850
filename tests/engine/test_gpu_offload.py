"""GPU layers at load time (engine.gpu_offload) with the real SmolLM2.

On this machine's CPU build "auto" loads with 0 layers and says why. With the two probes
(does the build offload, how much GPU memory is free) replaced, the fitted count is what
llama.cpp's Llama() is given, and what the KV state key records. No GPU run is faked: the
loads with layers asked for run on the CPU build, which keeps every layer in RAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import llama_cpp
import pytest

from chatapp.core import gpu_fit
from chatapp.core.gpu_fit import AUTO, GIB, MIB
from chatapp.engine import gpu_offload
from chatapp.engine.llama import LlamaEngine

pytestmark = pytest.mark.model


@pytest.fixture
def llama_args(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every llama_cpp.Llama() made (the real one still loads)."""
    made: list[dict[str, Any]] = []
    real = llama_cpp.Llama

    def spy(*args: Any, **kwargs: Any) -> Any:
        made.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", spy)
    return made


def _gpu(monkeypatch: pytest.MonkeyPatch, free: int | None) -> None:
    monkeypatch.setattr(gpu_offload, "gpu_offload_supported", lambda: True)
    monkeypatch.setattr(gpu_offload, "free_vram", lambda: free)


def _load(path: Path, layers: gpu_fit.GpuLayers, **kw: Any) -> LlamaEngine:
    return LlamaEngine(path, context_limit=1024, n_threads=2, n_gpu_layers=layers, **kw)


def test_auto_on_this_cpu_build_loads_on_the_cpu(
    smollm2_path: Path, llama_args: list[dict[str, Any]], tmp_path: Path
) -> None:
    assert not llama_cpp.llama_supports_gpu_offload()  # this machine's build
    e = _load(smollm2_path, AUTO, state_dir=tmp_path, state_disk_bytes=1 << 30)
    try:
        assert llama_args[-1]["n_gpu_layers"] == 0
        off = e.info.offload
        assert off is not None and (off.requested, off.layers, off.total) == (AUTO, 0, 31)
        assert off.reason == gpu_fit.NO_GPU_BUILD and e.info.n_gpu_layers == 0
        assert off.describe() == "CPU (this llama.cpp build has no GPU support)"
        assert e._disk is not None and e._disk.key["n_gpu_layers"] == 0
    finally:
        e.close()


def test_auto_with_a_gpu_gives_llama_the_fitted_count(
    smollm2_path: Path, llama_args: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = gpu_fit.read_layout(smollm2_path)
    sizes = gpu_fit.layer_bytes(layout, 1024)
    reserve = gpu_fit.compute_reserve(layout, 1024, flash_attn=False)
    free = reserve + sum(sizes[:20]) + 1000  # 20 layers and a little: not 21
    _gpu(monkeypatch, free)
    e = _load(smollm2_path, AUTO)
    try:
        assert llama_args[-1]["n_gpu_layers"] == 20
        off = e.info.offload
        assert off is not None and (off.layers, off.total, off.free) == (20, 31, free)
        assert off.need == sum(sizes[:20]) and e.info.n_gpu_layers == 20
        assert off.describe() == f"GPU 20/31 layers (auto, {free / GIB:.1f} GiB free)"
    finally:
        e.close()


@pytest.mark.parametrize(
    ("free", "layers", "reason"),
    [(None, 0, gpu_fit.NO_FREE_FIGURE), (100 * MIB, 0, gpu_fit.NOTHING_FITS), (80 * GIB, 31, "")],
)
def test_auto_with_little_much_or_unknown_free_memory(
    smollm2_path: Path,
    llama_args: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    free: int | None,
    layers: int,
    reason: str,
) -> None:
    _gpu(monkeypatch, free)
    e = _load(smollm2_path, AUTO)
    try:
        assert llama_args[-1]["n_gpu_layers"] == layers
        assert e.info.offload is not None
        assert (e.info.offload.layers, e.info.offload.reason) == (layers, reason)
    finally:
        e.close()


def test_numbers_are_kept_and_the_state_key_has_the_effective_count(
    smollm2_path: Path,
    llama_args: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # a CPU build: a number asked for is 0 layers, so a state saved so fits a CPU load
    e = _load(smollm2_path, 12, state_dir=tmp_path, state_disk_bytes=1 << 30)
    try:
        assert llama_args[-1]["n_gpu_layers"] == 0 and e._disk is not None
        assert e._disk.key["n_gpu_layers"] == 0
    finally:
        e.close()
    _gpu(monkeypatch, None)  # numbers never ask for the free memory
    for asked, given in ((12, 12), (-1, 31), (500, 31), (0, 0)):
        e = _load(smollm2_path, asked, state_dir=tmp_path, state_disk_bytes=1 << 30)
        try:
            assert llama_args[-1]["n_gpu_layers"] == given, asked
            assert e._disk is not None and e._disk.key["n_gpu_layers"] == given
            assert e.info.offload is not None and e.info.offload.requested == asked
        finally:
            e.close()


def test_a_projector_is_left_room_on_the_gpu(
    vision_dir: Path, llama_args: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = vision_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    projector = vision_dir / "mmproj-tiny-smollm2-f32.gguf"
    layout = gpu_fit.read_layout(model)
    sizes = gpu_fit.layer_bytes(layout, 1024)
    reserve = gpu_fit.compute_reserve(layout, 1024, flash_attn=False)
    assert 0 < projector.stat().st_size < sizes[19]
    _gpu(monkeypatch, reserve + sum(sizes[:20]) + 1000)
    e = _load(model, AUTO, mmproj=projector)
    try:
        assert e.can_see and llama_args[0]["n_gpu_layers"] == 19  # 20 without the projector
        assert e.info.offload is not None and e.info.offload.layers == 19
    finally:
        e.close()
