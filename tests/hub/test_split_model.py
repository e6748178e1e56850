"""A real split model (made like llama.cpp's gguf-split) downloads as a set and loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatapp.core import catalog
from chatapp.core.catalog.gguf import check_model_file, read_gguf
from chatapp.hub import api
from chatapp.hub.download import Downloader
from tests.hub.fake_hf import Blob, FakeHub
from tests.hub.gguf_split import split_gguf

pytestmark = pytest.mark.model

# llama.cpp is loaded in a child process: a crash there must not take the test run with it.
LOAD = """
import json, sys, llama_cpp
m = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, verbose=False)
print(json.dumps({"n_vocab": m.n_vocab(), "tokens": m.tokenize(b"Hello world"),
                  "split": m.metadata.get("split.count")}))
"""


def _load(path: Path) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_split_model_downloads_as_a_set_and_loads(
    hub: FakeHub, smollm2_path: Path, tmp_path: Path
) -> None:
    shards = split_gguf(smollm2_path, tmp_path, "SmolLM2-135M-Instruct-Q4_1", 3)
    assert [read_gguf(s).split_count for s in shards] == [3, 3, 3]
    hub.add(
        "org/smol-split-GGUF",
        {
            **{f"Q4_1/{s.name}": Blob(path=s) for s in shards},
            "mmproj-SmolLM2-f16.gguf": Blob(data=b"GGUF"),
        },
    )
    files = api.repo_files("org/smol-split-GGUF")
    (group,) = files.groups
    assert group.name == "Q4_1/SmolLM2-135M-Instruct-Q4_1.gguf" and group.quant == "Q4_1"
    first = Downloader(tmp_path / "models", endpoint=hub.url).download_group(
        files.repo_id, files.revision, group
    )
    assert first.name == shards[0].name
    for s in shards:
        assert (first.parent / s.name).read_bytes() == s.read_bytes()
    check_model_file(first)
    (model,) = catalog.Library(tmp_path / "models", tmp_path / "r.json").models(external=False)
    assert model.path == first and model.complete and len(model.shards) == 3

    loaded, original = _load(first), _load(smollm2_path)
    assert loaded["split"] == "3"
    assert loaded["n_vocab"] == original["n_vocab"] == 49152
    assert loaded["tokens"] == original["tokens"]
