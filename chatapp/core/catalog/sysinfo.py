"""Facts about this machine that decide which model fits: free and total RAM.

Pure Python (/proc/meminfo on Linux, os.sysconf elsewhere): no psutil dependency.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts and parts[0].isdigit():
                    out[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    except OSError:
        pass
    return out


def _sysconf(name: str) -> int | None:
    try:
        value = os.sysconf(name)
        page = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
    return value * page if value > 0 and page > 0 else None


def total_ram() -> int | None:
    """Bytes of physical memory, or None if this platform does not say."""
    info = _meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    return _sysconf("SC_PHYS_PAGES")


def free_ram() -> int | None:
    """Bytes a new process can use without swapping (MemAvailable), or None if unknown."""
    info = _meminfo()
    if "MemAvailable" in info:
        return info["MemAvailable"]
    if "MemFree" in info:
        return info["MemFree"] + info.get("Cached", 0)
    return _sysconf("SC_AVPHYS_PAGES")


def free_vram() -> int | None:
    """Free memory of the first NVIDIA GPU in bytes (nvidia-smi), or None without one.

    Only meaningful for a GPU build of llama.cpp with layers offloaded (n_gpu_layers != 0);
    callers decide that. Other vendors: None (the fit estimate then counts RAM only).
    """
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=3,
            check=True,
        ).stdout
        return int(out.split()[0]) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        log.info("no VRAM figure from nvidia-smi: %s", e)
        return None
