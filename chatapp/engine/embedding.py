"""Embeddings through llama-cpp-python: an EmbeddingEngine over Llama(embedding=True).

A GGUF made for embedding says how to pool its tokens (its pooling_type metadata); a
model that does not (a chat model used for embedding, as the tests do with SmolLM2) is
mean-pooled. Vectors come back L2-normalised as a float32 matrix. An EmbeddingEngine
runs one call at a time (its lock): the indexer has its own, the chat's questions another
(embedded on a short-lived thread while the keyword search runs).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from chatapp.core.catalog.gguf import check_model_file
from chatapp.core.errors import ModelLoadError
from chatapp.engine import llama_log
from chatapp.engine.hardware import physical_cores
from chatapp.engine.llama import _StderrToLog

log = logging.getLogger(__name__)

EMBED_CONTEXT = 512  # tokens per text; longer texts are truncated
# A question (this many characters or fewer in all) is embedded on one thread: a few dozen
# tokens gain little from more, and llama.cpp's threads wait for each other at every
# layer, so one of them preempted by other work stalls all (on this project's shared
# 2-core machine: about 0.3 s on one thread, 1 to 12 s on two)
SHORT_INPUT_CHARS = 512


class EmbeddingEngine:
    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = EMBED_CONTEXT,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
    ) -> None:
        info = check_model_file(path)
        self.path = str(Path(path).resolve())
        arch = info.architecture
        declared = info.get(f"{arch}.pooling_type")
        pooling = (
            llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
            if declared is not None
            else llama_cpp.LLAMA_POOLING_TYPE_MEAN
        )
        trained = info.context_length or n_ctx
        n_ctx = max(64, min(n_ctx, trained))
        threads = n_threads or physical_cores()
        llama_log.install()
        mark = llama_log.mark()
        try:
            with contextlib.redirect_stderr(_StderrToLog()):
                self._llm = llama_cpp.Llama(
                    model_path=self.path,
                    embedding=True,
                    pooling_type=pooling,
                    n_ctx=n_ctx,
                    n_batch=n_ctx,
                    n_ubatch=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_gpu_layers=n_gpu_layers,
                    verbose=True,  # the load log goes to our log (llama_log)
                )
        except (ValueError, RuntimeError, OSError) as e:
            why = "; ".join(llama_log.errors_since(mark)[-2:]) or str(e)
            raise ModelLoadError(f"Could not load the embedding model {path}: {why}") from e
        self._llm.verbose = False
        self.n_ctx = n_ctx
        self.threads = threads
        self.dim = int(self._llm.n_embd())
        self.pooling = "model's own" if declared is not None else "mean"
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return Path(self.path).name

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch: int = 16,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """One normalised vector per text (float32, shape (len(texts), dim))."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        short = self.threads > 1 and sum(len(t) for t in texts) <= SHORT_INPUT_CHARS
        with self._lock:
            if short:
                self._set_threads(1)
            try:
                for start in range(0, len(texts), batch):
                    if cancel is not None and cancel.is_set():
                        raise InterruptedError("cancelled")
                    part = [t if t.strip() else " " for t in texts[start : start + batch]]
                    vectors = self._llm.embed(part, normalize=True, truncate=True)
                    out[start : start + len(part)] = np.asarray(vectors, dtype=np.float32)
                    if progress is not None:
                        progress(start + len(part))
            finally:
                if short:
                    self._set_threads(self.threads)
        return out

    def _set_threads(self, n: int) -> None:
        llama_cpp.llama_set_n_threads(self._llm.ctx, n, n)

    def close(self) -> None:
        with self._lock:
            llm = getattr(self, "_llm", None)
            if llm is not None:
                llm.close()
                self._llm = None  # type: ignore[assignment]
