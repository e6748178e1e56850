"""Embedding models: how one is recognised from its GGUF metadata (so it is never offered
as a chat model), and the starter list the model manager offers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# architectures that only embed (encoders): no chat, no generation
EMBEDDING_ARCHITECTURES = frozenset(
    {"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "gemma-embedding",
     "t5encoder", "modern-bert", "neo-bert"}
)  # fmt: skip


def is_embedding_model(metadata: Mapping[str, Any]) -> bool:
    """True for a GGUF that embeds rather than chats: an encoder architecture, or a
    decoder converted for embedding (it declares a pooling type, e.g. Qwen3-Embedding)."""
    arch = str(metadata.get("general.architecture", ""))
    if arch in EMBEDDING_ARCHITECTURES:
        return True
    if f"{arch}.pooling_type" in metadata:
        return True
    name = str(metadata.get("general.name", "")).lower()
    return "embedding" in name and "tokenizer.chat_template" not in metadata


@dataclass(frozen=True)
class StarterEmbedding:
    name: str
    repo: str
    filename: str
    size_mb: int  # download size
    dim: int
    context: int
    note: str

    def fit_label(self, free_ram_mb: int) -> str:
        """Fits / tight / too large, for the model manager's column."""
        need = self.size_mb * 1.3 + 100
        if need <= free_ram_mb * 0.5:
            return "fits"
        return "tight" if need <= free_ram_mb else "too large"


STARTER_EMBEDDINGS: tuple[StarterEmbedding, ...] = (
    StarterEmbedding(
        "nomic-embed-text v1.5", "nomic-ai/nomic-embed-text-v1.5-GGUF",
        "nomic-embed-text-v1.5.Q8_0.gguf", 146, 768, 2048,
        "English; prefix 'search_query: ' / 'search_document: '",
    ),
    StarterEmbedding(
        "bge-small-en v1.5", "CompendiumLabs/bge-small-en-v1.5-gguf",
        "bge-small-en-v1.5-q8_0.gguf", 37, 384, 512, "English, small and fast",
    ),
    StarterEmbedding(
        "EmbeddingGemma 300M", "unsloth/embeddinggemma-300m-GGUF",
        "embeddinggemma-300M-Q8_0.gguf", 329, 768, 2048, "multilingual",
    ),
    StarterEmbedding(
        "Qwen3-Embedding 0.6B", "Qwen/Qwen3-Embedding-0.6B-GGUF",
        "Qwen3-Embedding-0.6B-Q8_0.gguf", 639, 1024, 32768, "multilingual, long inputs",
    ),
)  # fmt: skip
