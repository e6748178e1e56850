"""GPU layers in the window: Auto in the settings dialog (the default), "auto" for one
model in the chat settings panel, and where the real SmolLM2 runs said in the status line
and the model picker (on this machine's CPU build: the CPU, and why)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QDialogButtonBox

from chatapp.core.settings import Settings
from chatapp.paths import app_paths
from chatapp.service import default_backend_factory

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")
EXT = ("chatapp.gui.settings_dialog", "chatapp.gui.model_picker", "chatapp.gui.chat_settings_panel")
CPU_BUILD = "CPU (this llama.cpp build has no GPU support)"


def _type(qtbot: Any, spin: Any, text: str) -> None:
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, text)
    spin.interpretText()


def test_auto_is_the_default_and_the_spin_takes_words_and_numbers(
    qtbot: Any, make_window: Any
) -> None:
    w = make_window(extensions=EXT)
    assert w.settings.n_gpu_layers == "auto"
    d = w.settings_actions.show_dialog()
    spin = d.gpu_layers
    assert spin.text() == "Auto" and spin.layers() == "auto"
    _type(qtbot, spin, "all")
    assert (spin.text(), spin.layers()) == ("All", -1)
    _type(qtbot, spin, "12")
    assert (spin.text(), spin.layers()) == ("12", 12)
    _type(qtbot, spin, "0")
    assert (spin.text(), spin.layers()) == ("0", 0)
    _type(qtbot, spin, "lots")  # refused as typed: the last good value stays
    assert spin.layers() == 0
    _type(qtbot, spin, "Auto")
    assert spin.layers() == "auto"
    spin.setValue(spin.minimum())
    spin.stepBy(1)  # one step up from Auto is All, then 0
    assert spin.text() == "All"
    spin.stepBy(-1)
    d.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    saved = json.loads(app_paths().settings.read_text())
    assert saved["hardware"]["n_gpu_layers"] == "auto"


@pytest.mark.parametrize(("stored", "shown"), [(0, "0"), (-1, "All"), (20, "20"), ("auto", "Auto")])
def test_older_and_hand_written_settings_files_load(
    qtbot: Any, make_window: Any, stored: Any, shown: str
) -> None:
    path = app_paths().ensure().settings
    path.write_text(json.dumps({"schema_version": 3, "hardware": {"n_gpu_layers": stored}}))
    assert Settings.load(path).n_gpu_layers == stored
    w = make_window(extensions=EXT)
    d = w.settings_actions.show_dialog()
    assert d.gpu_layers.text() == shown
    d.buttons.button(QDialogButtonBox.StandardButton.Cancel).click()


@pytest.mark.model
def test_auto_loads_smollm2_on_this_cpu_build_and_says_so(
    qtbot: Any, make_window: Any, smollm2_path: Path
) -> None:
    w = make_window(engine_factory=default_backend_factory, extensions=EXT)
    with qtbot.waitSignal(w.session.model_loaded, timeout=60000):
        w.open_model(str(smollm2_path))
    info = w.session.model.info
    assert info.offload is not None and (info.offload.layers, info.offload.total) == (0, 31)
    assert info.n_gpu_layers == 0
    assert w.status_model.text().endswith(" · " + CPU_BUILD)
    assert w.model_picker.hardware.text() == CPU_BUILD

    # "auto" for this model alone in the chat settings panel: saved as the word, reloaded
    panel = w.chat_settings_panel
    panel.hardware["n_gpu_layers"].setText("lots")
    panel.hardware_button.click()
    assert "n_gpu_layers must be auto or a whole number" in panel.hardware_error.text()
    panel.hardware["n_gpu_layers"].setText("Auto")
    with qtbot.waitSignal(w.session.model_loaded, timeout=60000):
        panel.hardware_button.click()
    assert w.settings.extra["model_hardware"][smollm2_path.name] == {"n_gpu_layers": "auto"}
    assert w.session.model.info.offload.requested == "auto"
    assert w.status_model.text().endswith(" · " + CPU_BUILD)
    # back to the app's setting: the field emptied
    with qtbot.waitSignal(w.session.model_loaded, timeout=60000):
        panel.hardware["n_gpu_layers"].setText("")
        panel.hardware_button.click()
    assert smollm2_path.name not in w.settings.extra.get("model_hardware", {})
    assert panel.hardware["n_gpu_layers"].placeholderText() == "app: auto"
