"""Vision models in the Models dialog, against the fake hub: the projector in a
repository is paired with the model (shown, counted in size and fit, downloaded into the
same folder) and the library says the model can see."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatapp.core.catalog import FileGroup, RemoteFile, group_files, projector_beside
from chatapp.hub.queue import DONE
from tests.gui.test_model_manager import Harness, harness  # noqa: F401  (fixture)
from tests.hub.conftest import hub, online, small_blob  # noqa: F401  (fixtures)
from tests.hub.fake_hf import Blob, FakeHub
from tests.tiny_mmproj import FILE_NAME


def test_projectors_pair_with_their_models() -> None:
    files = [
        RemoteFile("model-Q4_K_M.gguf", 100),
        RemoteFile("model-Q8_0.gguf", 200),
        RemoteFile("mmproj-model-f32.gguf", 40),
        RemoteFile("mmproj-model-f16.gguf", 20),
        RemoteFile("big/other-Q4_K_M.gguf", 300),
        RemoteFile("big/mmproj-other-bf16.gguf", 30),
        RemoteFile("imatrix.gguf", 5),
    ]
    groups = {g.name: g for g in group_files(files)}
    assert set(groups) == {"model-Q4_K_M.gguf", "model-Q8_0.gguf", "big/other-Q4_K_M.gguf"}
    assert groups["model-Q4_K_M.gguf"].projector.name == "mmproj-model-f16.gguf"  # F16 first
    assert groups["model-Q4_K_M.gguf"].total_size == 120
    assert groups["big/other-Q4_K_M.gguf"].projector.name == "big/mmproj-other-bf16.gguf"
    assert group_files([RemoteFile("text-Q4_0.gguf", 9)])[0].projector is None
    assert FileGroup("x.gguf", [RemoteFile("x.gguf", None)], "").total_size is None


def test_projector_beside_a_model_file(tmp_path: Path) -> None:
    (tmp_path / "gemma-3-4b-it-Q4_K_M.gguf").write_bytes(b"GGUF")
    assert projector_beside(tmp_path / "gemma-3-4b-it-Q4_K_M.gguf") is None
    (tmp_path / "mmproj-qwen-f16.gguf").write_bytes(b"GGUF")
    (tmp_path / "mmproj-gemma-3-4b-f16.gguf").write_bytes(b"GGUF")
    found = projector_beside(tmp_path / "gemma-3-4b-it-Q4_K_M.gguf")
    assert found is not None and found.name == "mmproj-gemma-3-4b-f16.gguf"


@pytest.mark.model
def test_download_a_vision_model_with_its_projector(
    qtbot: Any,
    harness: Harness,
    hub: FakeHub,
    smollm2_path: Path,
    vision_dir: Path,
) -> None:
    proj = vision_dir / FILE_NAME
    hub.add(
        "org/smol-GGUF",
        {smollm2_path.name: Blob(path=smollm2_path), FILE_NAME: Blob(path=proj)},
    )
    d = harness.dialog
    d.results.selectRow(0)
    qtbot.waitUntil(lambda: d.files_model.rowCount() == 1, timeout=10_000)
    assert "+ projector" in d.files_model.data(d.files_model.index(0, 0))
    total = smollm2_path.stat().st_size + proj.stat().st_size
    group = d.files_model.items[0]
    assert group.total_size == total
    job = d.download_selected()
    assert job is not None
    qtbot.waitUntil(
        lambda: len(harness.queue.jobs) == 2 and all(j.state == DONE for j in harness.queue.jobs),
        timeout=60_000,
    )
    assert (job.path.parent / FILE_NAME).exists()  # beside the model, where loading looks
    qtbot.waitUntil(lambda: d.library_model.rowCount() == 1, timeout=5_000)  # not a model
    d.refresh_library()
    qtbot.waitUntil(
        lambda: d.library_model.data(d.library_model.index(0, 3)) == "images", timeout=5_000
    )
