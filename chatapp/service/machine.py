"""What the window and the CLI may ask of the engines outside a turn: this machine's
cores, whether llama.cpp can offload to a GPU, the llama.cpp build, a remote server's
models, and a model's vocabulary read on its own (no weights) for token views of text
typed or stored while another model runs. Each imports llama.cpp only when called, so
the window starts without it. The GUI and the CLI reach the engines only through the
chat service and here (an import-linter contract)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def physical_cores() -> int:
    from chatapp.engine.hardware import physical_cores as cores

    return cores()


def gpu_offload_supported() -> bool:
    from chatapp.engine.gpu_offload import gpu_offload_supported as supported

    return supported()


def can_offload(n_gpu_layers: Any) -> bool:
    """Whether layers would go to a GPU with this GPU-layers setting on this build (a
    model's fit then counts free VRAM): the setting is not 0 and llama.cpp can offload."""
    from chatapp.core.gpu_fit import wants_gpu

    if not wants_gpu(n_gpu_layers):
        return False
    try:
        return gpu_offload_supported()
    except Exception:  # llama.cpp missing or broken: no GPU  # noqa: BLE001
        return False


def llama_build_info() -> Any:
    from chatapp.engine.build_info import llama_build_info as info

    return info()


def list_remote_models(base_url: str, api_key: str = "") -> list[str]:
    """The model ids an OpenAI-compatible server offers (a NetworkError says why not)."""
    from chatapp.engine.remote import list_models

    return list_models(base_url, api_key)


def vocab_tokenizer(path: str | Path) -> Any:
    """A model's tokenizer alone (llama.cpp's vocab_only load): close() it when done."""
    from chatapp.engine.vocab import VocabTokenizer

    return VocabTokenizer(path)


def tokenize_with(path: str | Path, text: str) -> tuple[str, list[tuple[int, bytes]], set[int]]:
    """Another model's tokens for `text` (the tokenizer playground's second model)."""
    from chatapp.engine.vocab import tokenize_with as tokenize

    return tokenize(path, text)


def embedding_model(path: str | Path) -> Any:
    """A GGUF embedding model loaded for embeddings alone (chatapp.engine.embedding):
    documents' indexing, their queries and /v1/embeddings. close() it when done."""
    from chatapp.engine.embedding import EmbeddingEngine

    return EmbeddingEngine(path)


def forget_saved_states(folder: str | Path, conversation_ids: list[str]) -> int:
    """Delete the KV states saved on disk for these chats, of every model (files)."""
    from chatapp.engine.state_disk import forget

    return forget(folder, conversation_ids)


def draft_refusal(model_path: str | Path, draft_path: str | Path) -> str:
    """Why `draft_path` cannot be `model_path`'s draft model (another vocabulary), in one
    line, or "" (speculative decoding; reads the two vocabularies only, no weights)."""
    from chatapp.engine.vocab import draft_refusal as refusal

    return refusal(model_path, draft_path)
