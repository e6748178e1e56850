"""What the machine offers the engine: physical cores (llama.cpp is fastest with one
thread per physical core; hyper-threads only add contention)."""

from __future__ import annotations

import os
import platform
import subprocess


def physical_cores() -> int:
    logical = os.cpu_count() or 1
    try:
        if platform.system() == "Linux":
            return _linux_physical_cores() or logical
        if platform.system() == "Darwin":
            out = subprocess.run(
                ["sysctl", "-n", "hw.perflevel0.physicalcpu"], capture_output=True, text=True
            )
            if out.returncode != 0 or not out.stdout.strip():
                out = subprocess.run(
                    ["sysctl", "-n", "hw.physicalcpu"], capture_output=True, text=True
                )
            return int(out.stdout.strip()) if out.stdout.strip() else logical
    except (OSError, ValueError):
        pass
    return max(1, logical // 2) if logical >= 4 else logical


def _linux_physical_cores() -> int:
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:
        allowed = os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    phys = core = None
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not line.strip():
                if phys is not None and core is not None:
                    cores.add((phys, core))
                phys = core = None
    if phys is not None and core is not None:
        cores.add((phys, core))
    n = len(cores) or allowed
    return max(1, min(n, allowed))
