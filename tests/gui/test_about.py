"""Help > About: the versions shown are the real ones, and Copy diagnostics puts a
complete bug-report text on the clipboard."""

from __future__ import annotations

import platform
from pathlib import Path

import llama_cpp
import pytest
from PySide6.QtCore import qVersion
from PySide6.QtWidgets import QApplication

from chatapp import __version__
from chatapp.engine.build_info import backend_label, llama_build_info, names_from_system_info
from chatapp.gui.about import AboutDialog
from chatapp.paths import app_paths


def test_versions_are_the_running_ones(qtbot) -> None:
    dialog = AboutDialog(app_paths().ensure())
    qtbot.addWidget(dialog)
    shown = {what: label.text() for what, label in dialog.version_labels.items()}
    assert shown["chatapp"].startswith(__version__)
    assert shown["llama-cpp-python"] == llama_cpp.__version__
    assert shown["Qt"] == qVersion()
    assert shown["Python"].startswith(platform.python_version())
    expected = "CPU" if not llama_cpp.llama_supports_gpu_offload() else shown["llama.cpp backend"]
    assert shown["llama.cpp backend"] == expected
    assert shown["llama.cpp backend"] != ""


def test_this_build_is_reported_as_what_its_libraries_hold() -> None:
    info = llama_build_info()
    lib = Path(llama_cpp.__file__).parent / "lib"
    has = {n: any(lib.glob(f"libggml-{n}.*")) for n in ("cuda", "metal", "vulkan")}
    assert ("CUDA" in info.backend) == has["cuda"]
    assert ("Vulkan" in info.backend) == has["vulkan"]
    assert ("Metal" in info.backend) == has["metal"]
    assert "CPU" in info.registered
    assert info.gpu_offload == bool(llama_cpp.llama_supports_gpu_offload())
    assert info.devices  # at least the CPU


@pytest.mark.parametrize(
    ("system_info", "label"),
    [
        ("CPU : SSE3 = 1 | AVX = 1 | OPENMP = 1 |", "CPU"),
        ("CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 |", "CUDA"),
        ("Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1 | ARM_FMA = 1 |", "Metal"),
        ("Vulkan : | CPU : SSE3 = 1 |", "Vulkan"),
        ("BLAS : | CPU : AVX = 1 |", "CPU"),
    ],
)
def test_backend_from_system_info(system_info: str, label: str) -> None:
    assert backend_label(names_from_system_info(system_info)) == label


@pytest.mark.model
def test_copy_diagnostics(qtbot, smollm2_path: Path) -> None:
    from chatapp.engine.llama import LlamaEngine

    engine = LlamaEngine(smollm2_path, context_limit=512)
    info = engine.info
    engine.close()
    paths = app_paths().ensure()
    dialog = AboutDialog(paths, model_info=info, models_dir="/srv/models")
    qtbot.addWidget(dialog)
    QApplication.clipboard().clear()
    dialog.copy_button.click()
    text = QApplication.clipboard().text()
    assert dialog.copy_button.text() == "Copied"
    for needle in (
        f"chatapp: {__version__}",
        f"llama-cpp-python: {llama_cpp.__version__}",
        "llama.cpp backend: ",
        f"Qt: {qVersion()}",
        "Python: ",
        f"OS: {platform.platform()}",
        "CPU cores: ",
        "RAM: ",
        f"database: {paths.database}",
        f"log file: {paths.log_file}",
        "models folder: /srv/models",
        f"model: {info.name} ({info.architecture})",
        f"model file: {info.path}",
        f"threads {info.n_threads}, CPU",  # where it runs (core.gpu_fit.Offload)
    ):
        assert needle in text, needle
    qtbot.waitUntil(lambda: dialog.copy_button.text() == "&Copy diagnostics", timeout=5000)


def test_help_menu_opens_the_dialog(make_window, qtbot) -> None:
    window = make_window(extensions=("chatapp.gui.about",))
    assert window.about_action in window.menus["help"].actions()
    window.about_action.trigger()
    dialog = window.findChild(AboutDialog)
    assert dialog is not None and dialog.isVisible()
    assert "model: none loaded" in dialog.diagnostics_text()
    dialog.close()
