"""Where a loaded model runs, in the user's language: "GPU 24/31 layers (auto, 7.9 GiB
free)", "CPU (this llama.cpp build has no GPU support)". For the status line and the model
picker; the facts come from the engine's Offload (core.gpu_fit)."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from chatapp.core import gpu_fit
from chatapp.core.gpu_fit import GIB, Offload


def offload_text(offload: Offload, *, long: bool = False) -> str:
    """One phrase; `long` also says why a model that could use the GPU runs on the CPU
    when the setting is 0 (the model picker has the room)."""
    free = f"{offload.free / GIB:.1f}" if offload.free is not None else "?"
    if offload.layers < 0:
        return QCoreApplication.translate("Offload", "GPU, all layers")
    if offload.layers > 0:
        if offload.auto and offload.free is not None:
            return QCoreApplication.translate(
                "Offload", "GPU {n}/{total} layers (auto, {free} GiB free)"
            ).format(n=offload.layers, total=offload.total, free=free)
        return QCoreApplication.translate("Offload", "GPU {n}/{total} layers").format(
            n=offload.layers, total=offload.total
        )
    if offload.reason == gpu_fit.NO_GPU_BUILD:
        return QCoreApplication.translate(
            "Offload", "CPU (this llama.cpp build has no GPU support)"
        )
    if offload.reason == gpu_fit.NO_FREE_FIGURE:
        return QCoreApplication.translate(
            "Offload", "CPU (auto: no free GPU memory figure from nvidia-smi)"
        )
    if offload.reason == gpu_fit.NOTHING_FITS:
        return QCoreApplication.translate(
            "Offload", "CPU (auto: no layer fits {free} GiB free)"
        ).format(free=free)
    if offload.reason == gpu_fit.UNREADABLE:
        return QCoreApplication.translate(
            "Offload", "CPU (auto: the model's layer sizes could not be read)"
        )
    if long:
        return QCoreApplication.translate("Offload", "CPU (GPU layers set to 0 in the settings)")
    return QCoreApplication.translate("Offload", "CPU")
