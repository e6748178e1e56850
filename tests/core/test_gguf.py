"""The GGUF header reader on the real test models and on damaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatapp.core.catalog.gguf import check_model_file, read_gguf
from chatapp.core.errors import BadModelFile

pytestmark = pytest.mark.model


def test_smollm2_header(smollm2_path: Path) -> None:
    info = check_model_file(smollm2_path)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.vocab_size == 49152
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert 130e6 < info.parameter_count < 140e6
    assert info.expected_size == smollm2_path.stat().st_size
    assert info.split_count == 1


def test_gemma_header_skips_the_big_vocabulary(gemma_path: Path) -> None:
    info = read_gguf(gemma_path)
    assert info.architecture == "gemma3"
    assert info.quantization == "Q4_K_M"
    assert info.chat_template is None
    assert info.vocab_size == 262144
    assert info.metadata["tokenizer.ggml.tokens"] is None  # skipped, not decoded
    assert info.get("general.license") == "gemma"


def test_keep_arrays_decodes_the_vocabulary(smollm2_path: Path) -> None:
    info = read_gguf(smollm2_path, keep_arrays=True)
    tokens = info.metadata["tokenizer.ggml.tokens"]
    assert len(tokens) == 49152 and "<|im_start|>" in tokens


def test_truncated_file_is_refused(smollm2_path: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path, "rb") as f:
        cut.write_bytes(f.read(5_000_000))
    with pytest.raises(BadModelFile, match="truncated"):
        check_model_file(cut)
    header_only = tmp_path / "header.gguf"
    with open(smollm2_path, "rb") as f:
        header_only.write_bytes(f.read(1000))
    with pytest.raises(BadModelFile, match="truncated|damaged"):
        read_gguf(header_only)


def test_not_a_gguf(tmp_path: Path) -> None:
    p = tmp_path / "x.gguf"
    p.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(BadModelFile, match="not a GGUF"):
        read_gguf(p)
    with pytest.raises(BadModelFile, match="No such file"):
        read_gguf(tmp_path / "missing.gguf")
    with pytest.raises(BadModelFile, match="folder"):
        read_gguf(tmp_path)
