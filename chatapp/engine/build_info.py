"""What llama.cpp was built with: llama-cpp-python's version and the compute backend
(CPU, CUDA, Metal, Vulkan...), for the About dialog, diagnostics and the self-test.

The backend comes from ggml's backend registry (the backends compiled into the shared
libraries llama_cpp loaded), read through ctypes; if that is unavailable, from the names
in llama_print_system_info ("CUDA : ARCHS = 890 | ... | CPU : SSE3 = 1 | ...").
The GUI calls this instead of importing llama_cpp itself.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Registry entries that are not an accelerator of their own.
_NOT_ACCELERATORS = {"CPU", "BLAS", "RPC"}
_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator"}


@dataclass(frozen=True)
class BuildInfo:
    version: str  # llama-cpp-python's
    backend: str  # "CPU", "CUDA", "Metal", "Vulkan", or e.g. "CUDA + Vulkan"
    gpu_offload: bool  # llama_supports_gpu_offload(): layers can go to a GPU
    registered: tuple[str, ...]  # ggml backend names ("CUDA", "CPU")
    devices: tuple[str, ...]  # "CUDA0: NVIDIA H100 80GB HBM3 (GPU, 79.1 GB free)"
    system_info: str  # llama_print_system_info()

    def lines(self) -> list[str]:
        out = [
            f"llama-cpp-python {self.version}",
            f"llama.cpp backend: {self.backend}"
            + (" (GPU offload supported)" if self.gpu_offload else ""),
        ]
        out += [f"device: {d}" for d in self.devices]
        if self.system_info:
            out.append(f"llama.cpp system info: {self.system_info}")
        return out


def backend_label(names: list[str] | tuple[str, ...]) -> str:
    """The accelerators among ggml backend names, or "CPU" when there is none."""
    accelerators = [n for n in names if n and n not in _NOT_ACCELERATORS]
    return " + ".join(dict.fromkeys(accelerators)) or "CPU"


def names_from_system_info(text: str) -> list[str]:
    """Backend names in llama_print_system_info's text: every "NAME : " that starts it
    or follows a "|"."""
    return re.findall(r"(?:^|\|)\s*([A-Za-z][\w-]*)\s+:", text)


def _libggml() -> ctypes.CDLL | None:
    import llama_cpp

    folder = Path(llama_cpp.__file__).resolve().parent / "lib"
    for name in ("libggml.so", "libggml.dylib", "ggml.dll"):
        if (folder / name).exists():
            try:
                return ctypes.CDLL(str(folder / name))
            except OSError as e:
                log.info("could not open %s: %s", folder / name, e)
    return None


def _registry() -> tuple[list[str], list[str]]:
    """(backend names, device descriptions) from ggml's registry; empty if unreadable."""
    lib = _libggml()
    if lib is None:
        return [], []
    try:
        lib.ggml_backend_reg_count.restype = ctypes.c_size_t
        lib.ggml_backend_reg_get.restype = ctypes.c_void_p
        lib.ggml_backend_reg_get.argtypes = [ctypes.c_size_t]
        lib.ggml_backend_reg_name.restype = ctypes.c_char_p
        lib.ggml_backend_reg_name.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_count.restype = ctypes.c_size_t
        lib.ggml_backend_dev_get.restype = ctypes.c_void_p
        lib.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
        for fn in ("ggml_backend_dev_name", "ggml_backend_dev_description"):
            getattr(lib, fn).restype = ctypes.c_char_p
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_type.restype = ctypes.c_int
        lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
        lib.ggml_backend_dev_memory.restype = None
        lib.ggml_backend_dev_memory.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.POINTER(ctypes.c_size_t),
        ]
    except AttributeError as e:  # an older ggml without the registry
        log.info("ggml backend registry not available: %s", e)
        return [], []
    names = []
    for i in range(lib.ggml_backend_reg_count()):
        raw = lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i))
        names.append(raw.decode("utf-8", "replace") if raw else "?")
    devices = []
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        name = (lib.ggml_backend_dev_name(dev) or b"?").decode("utf-8", "replace")
        desc = (lib.ggml_backend_dev_description(dev) or b"").decode("utf-8", "replace")
        kind = _DEVICE_TYPES.get(lib.ggml_backend_dev_type(dev), "device")
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        memory = (
            f", {free.value / 1e9:.1f} of {total.value / 1e9:.1f} GB free" if total.value else ""
        )
        devices.append(f"{name}: {desc} ({kind}{memory})")
    return names, devices


@functools.lru_cache(maxsize=1)
def llama_build_info() -> BuildInfo:
    import llama_cpp

    try:
        system_info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    except (OSError, AttributeError, ValueError) as e:  # an ABI mismatch: report, go on
        log.warning("llama_print_system_info failed: %s", e)
        system_info = ""
    try:
        names, devices = _registry()
    except (OSError, AttributeError, ValueError) as e:
        log.warning("reading ggml's backend registry failed: %s", e)
        names, devices = [], []
    if not names:
        names = names_from_system_info(system_info)
    try:
        offload = bool(llama_cpp.llama_supports_gpu_offload())
    except (OSError, AttributeError):
        offload = False
    return BuildInfo(
        version=str(getattr(llama_cpp, "__version__", "?")),
        backend=backend_label(names),
        gpu_offload=offload,
        registered=tuple(names),
        devices=tuple(devices),
        system_info=system_info.rstrip("| ").strip(),
    )
