"""A local load's GPU layers: the setting (core.gpu_fit: "auto", -1 or a count) turned into
the number llama.cpp is given, with this machine's two probes: whether this llama.cpp
build can offload at all, and the GPU's free memory (nvidia-smi, core.catalog.sysinfo).

"auto" on a build without GPU offload is 0 layers, so a CPU build runs as it always did.
On a GPU build it fits the layers to the free memory read just before loading (the
model host has closed the previous model by then); no figure (no nvidia-smi: another
vendor, or no driver) is 0 layers, said in the status line, rather than a guess that
could fail the load. Multi-GPU: nvidia-smi's first GPU only, so the fit is cautious.
"""

from __future__ import annotations

import logging

import llama_cpp

from chatapp.core.catalog import sysinfo
from chatapp.core.catalog.gguf import GGUFInfo
from chatapp.core.errors import BadModelFile
from chatapp.core.gpu_fit import AUTO, GIB, GpuLayers, Offload, decide, fit_layers, layout_of

log = logging.getLogger(__name__)


def gpu_offload_supported() -> bool:
    try:
        return bool(llama_cpp.llama_supports_gpu_offload())
    except Exception:  # a probe: any failure means no GPU  # noqa: BLE001
        return False


def free_vram() -> int | None:
    return sysinfo.free_vram()


def _total(gguf: GGUFInfo) -> int:
    """Layers as llama.cpp counts them (blocks + output); 0 if the header does not say."""
    blocks = gguf.int_value(f"{gguf.architecture}.block_count", minimum=1)
    return blocks + 1 if blocks else 0


def plan_offload(
    gguf: GGUFInfo,
    requested: GpuLayers,
    n_ctx: int,
    *,
    n_batch: int,
    flash_attn: bool,
    other_bytes: int = 0,
) -> Offload:
    """The layers to load `gguf` with at context n_ctx (the KV cache is f16, the whole
    context on every layer: the engine loads with swa_full). other_bytes: what else will
    go to the GPU after the model (a vision projector's weights), left free."""
    supported = gpu_offload_supported()
    total = _total(gguf)
    if not supported or requested != AUTO:
        plan = decide(requested, supported=supported, total=total)
    else:
        free = free_vram()
        if free is None:
            plan = decide(AUTO, supported=True, total=total)
        else:
            try:
                layout = layout_of(gguf)
            except BadModelFile as e:
                log.warning("GPU layers: %s", e)
                plan = decide(AUTO, supported=True, total=total, free=free, readable=False)
            else:
                room = max(0, free - other_bytes)
                fit = fit_layers(layout, n_ctx, room, n_batch=n_batch, flash_attn=flash_attn)
                log.info(
                    "GPU fit for %s: %d of %d layers, %.2f GiB of %.2f GiB free "
                    "(all would need %.2f GiB; %.2f GiB kept for the GPU context and "
                    "buffers, %.2f GiB for a projector)",
                    gguf.path.name,
                    fit.layers,
                    fit.total,
                    fit.need / GIB,
                    free / GIB,
                    fit.need_all / GIB,
                    fit.reserve / GIB,
                    other_bytes / GIB,
                )
                plan = decide(AUTO, supported=True, total=layout.total, free=free, fit=fit)
    log.info("GPU offload: %s (asked for %s)", plan.describe(), requested)
    return plan
