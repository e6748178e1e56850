"""Shared fixtures: an isolated CHATAPP_HOME for every test, and the real test models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "1")  # never the real hub

from tests import fetch_models


@pytest.fixture(autouse=True)
def chatapp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "chatapp-home"
    monkeypatch.setenv("CHATAPP_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return fetch_models.fetch()


@pytest.fixture(scope="session")
def smollm2_path(models_dir: Path) -> Path:
    return models_dir / fetch_models.SMOLLM2


@pytest.fixture(scope="session")
def vision_dir(models_dir: Path) -> Path:
    """SmolLM2 beside a tiny projector made for it (mmproj-*.gguf): a model that sees."""
    return fetch_models.vision(models_dir)


@pytest.fixture(scope="session")
def gemma_path(models_dir: Path) -> Path:
    return models_dir / fetch_models.GEMMA3
