"""Run Python code in a child process under hard resource limits, with this worktree's
chatapp: the hostile-input tests assert memory and time bounds this way (a process that
needs more than its limit fails), never with timed assertions."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GiB = 1024**3

PREAMBLE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
"""


def run_limited(
    code: str, *, memory: int, cpu_s: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `code` with RLIMIT_AS=memory and RLIMIT_CPU=cpu_s (its children inherit them).
    The wall-clock timeout is only a bound for a broken build, far above the CPU limit."""

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH")) if p
    )
    return subprocess.run(
        [sys.executable, "-c", PREAMBLE + code],
        capture_output=True,
        text=True,
        env=full_env,
        preexec_fn=limits,  # resource limits must be set in the child itself
        timeout=max(600, 10 * cpu_s),
        check=False,
    )


def json_lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, f"runner failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
