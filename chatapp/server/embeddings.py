"""POST /v1/embeddings in OpenAI's shape, when the server has an embedding model
(`chatapp serve --embedding-model PATH`). The model runs on a thread of its own, so
embeddings never wait behind a chat answer on the inference thread (nor the reverse).
encoding_format "float" or "base64" (little-endian float32, what OpenAI's client asks for).
"""

from __future__ import annotations

import asyncio
import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse

from chatapp.core.errors import UserError
from chatapp.server.errors import ApiError, bad_request, unknown_model
from chatapp.server.requests import read_json

MAX_INPUTS = 2048


class Embeddings:
    def __init__(self, model_path: str, max_body_bytes: int) -> None:
        self.path = model_path
        self.name = Path(model_path).name if model_path else ""
        self.max_body_bytes = max_body_bytes
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="embeddings")
        self._model: Any = None
        self._lock = threading.Lock()

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        if self._model is None:
            from chatapp.service.machine import embedding_model

            self._model = embedding_model(self.path)
        tokens = sum(self._model.count_tokens(t) for t in texts)
        return self._model.embed(texts), tokens

    async def create(self, request: Request) -> JSONResponse:
        if not self.path:
            raise ApiError(
                503,
                "No embedding model is configured: start the server with "
                "--embedding-model PATH to a GGUF embedding model.",
                "server_error",
                code="model_not_loaded",
            )
        data = await read_json(request, self.max_body_bytes)
        model = data.get("model")
        if model not in (None, "", self.name, Path(self.name).stem):
            raise unknown_model(str(model))
        given = data.get("input")
        texts = [given] if isinstance(given, str) else given
        if not isinstance(texts, list) or not texts:
            raise bad_request("'input' must be a string or a non-empty array of strings.", "input")
        if not all(isinstance(t, str) for t in texts):
            raise bad_request("'input' takes text here, not token ids.", "input")
        if len(texts) > MAX_INPUTS:
            raise bad_request(f"At most {MAX_INPUTS} inputs per request.", "input")
        fmt = data.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise bad_request("'encoding_format' is 'float' or 'base64'.", "encoding_format")
        if data.get("dimensions") is not None:
            raise bad_request("This model's dimensions are fixed.", "dimensions")
        try:
            vectors, tokens = await asyncio.wrap_future(self._pool.submit(self._embed, texts))
        except UserError as e:
            raise ApiError(503, str(e), "server_error", code="model_not_loaded") from e
        items = []
        for i, v in enumerate(vectors):
            vec: Any = (
                base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                if fmt == "base64"
                else [float(x) for x in v]
            )
            items.append({"object": "embedding", "index": i, "embedding": vec})
        return JSONResponse(
            {
                "object": "list",
                "data": items,
                "model": self.name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def close(self) -> None:
        def free() -> None:
            if self._model is not None:
                self._model.close()
                self._model = None

        self._pool.submit(free).result()
        self._pool.shutdown()
