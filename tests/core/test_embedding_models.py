"""Embedding models are recognised from their GGUF metadata and never load as a chat
model; the starter list has fit labels."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from chatapp.core.catalog.embedding_models import STARTER_EMBEDDINGS, is_embedding_model
from chatapp.core.errors import BadModelFile


def test_recognised_from_metadata() -> None:
    assert is_embedding_model({"general.architecture": "nomic-bert"})
    assert is_embedding_model({"general.architecture": "bert"})
    assert is_embedding_model({"general.architecture": "gemma-embedding"})
    assert is_embedding_model({"general.architecture": "qwen3", "qwen3.pooling_type": 3})
    assert not is_embedding_model(
        {"general.architecture": "llama", "tokenizer.chat_template": "{{ x }}"}
    )


def test_starter_list_has_the_four_with_fit_labels() -> None:
    names = [m.name for m in STARTER_EMBEDDINGS]
    assert names == [
        "nomic-embed-text v1.5",
        "bge-small-en v1.5",
        "EmbeddingGemma 300M",
        "Qwen3-Embedding 0.6B",
    ]
    assert {m.fit_label(16000) for m in STARTER_EMBEDDINGS} == {"fits"}
    assert STARTER_EMBEDDINGS[3].fit_label(900) == "too large"


def _gguf(path: Path, meta: dict[str, str | int]) -> Path:
    """A GGUF header with string/uint32 metadata and no tensors."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(meta)))
    for k, v in meta.items():
        kb = k.encode()
        out += struct.pack("<Q", len(kb)) + kb
        if isinstance(v, int):
            out += struct.pack("<II", 4, v)
        else:
            vb = v.encode()
            out += struct.pack("<IQ", 8, len(vb)) + vb
    path.write_bytes(bytes(out))
    return path


def test_an_embedding_gguf_is_refused_as_a_chat_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatapp.core.catalog.gguf import read_gguf
    from chatapp.engine import llama

    f = _gguf(
        tmp_path / "bge.gguf",
        {"general.architecture": "bert", "general.name": "bge", "bert.context_length": 512},
    )
    # the header as read_gguf parses it (a tensor-less file fails the full check first)
    monkeypatch.setattr(llama, "check_model_file", read_gguf)
    with pytest.raises(BadModelFile) as e:
        llama.LlamaEngine(f)
    assert "bge.gguf is an embedding model" in str(e.value)
    assert "chatapp docs add" in str(e.value)
