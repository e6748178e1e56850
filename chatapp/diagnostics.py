"""The facts a bug report needs, as plain text: versions, OS, CPU, RAM, folders, model.

No Qt here: the About dialog passes Qt's versions in (`extra`), so the CLI or the
self-test could print the same report.
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterable
from typing import Any

from chatapp import __version__
from chatapp.core.catalog import human_size
from chatapp.core.catalog.sysinfo import free_ram, total_ram
from chatapp.paths import AppPaths


def versions(extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(what, version) pairs: chatapp, llama-cpp-python and its backend, Python, extras."""
    from chatapp.service.machine import llama_build_info

    try:
        build = llama_build_info()
        llama = [("llama-cpp-python", build.version), ("llama.cpp backend", build.backend)]
    except (ImportError, OSError, AttributeError) as e:  # a broken install: report it
        llama = [("llama-cpp-python", f"unavailable ({type(e).__name__}: {e})")]
    return [
        ("chatapp", __version__ + (" (frozen)" if getattr(sys, "frozen", False) else "")),
        *llama,
        *extra,
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
    ]


def _model_lines(model: Any) -> list[str]:
    if model is None:
        return ["model: none loaded"]
    return [
        f"model: {model.name} ({model.architecture})",
        f"model file: {model.path}",
        (
            f"context: {model.n_ctx} of {model.n_ctx_train} trained tokens, "
            f"threads {model.n_threads}, "
            + (
                model.offload.describe()
                if getattr(model, "offload", None) is not None
                else f"GPU layers {model.n_gpu_layers}"
            )
        ),
    ]


def report(
    paths: AppPaths,
    *,
    model: Any = None,
    models_dir: str | os.PathLike[str] | None = None,
    extra: Iterable[tuple[str, str]] = (),
) -> str:
    """The diagnostics text. `model` is a core.token_engine.ModelInfo or None; `models_dir` the
    settings' models folder (None: the default one)."""
    from chatapp.service.machine import llama_build_info, physical_cores

    lines = [f"{what}: {version}" for what, version in versions(extra)]
    lines.append(f"OS: {platform.platform()} ({platform.machine()})")
    lines.append(f"CPU cores: {os.cpu_count() or '?'} logical, {physical_cores()} physical")
    lines.append(f"RAM: {human_size(total_ram())} total, {human_size(free_ram())} available")
    try:
        build = llama_build_info()
    except (ImportError, OSError, AttributeError):
        build = None  # versions() already said llama_cpp is unavailable
    if build is not None:
        lines += [f"device: {d}" for d in build.devices]
        if build.system_info:
            lines.append(f"llama.cpp system info: {build.system_info}")
    lines += [
        f"data folder: {paths.data}",
        f"database: {paths.database}",
        f"settings: {paths.settings}",
        f"models folder: {models_dir or paths.models}",
        f"cache folder: {paths.cache}",
        f"log file: {paths.log_file}",
        f"CHATAPP_HOME: {os.environ.get('CHATAPP_HOME', '(not set)')}",
    ]
    lines += _model_lines(model)
    return "\n".join(lines) + "\n"
