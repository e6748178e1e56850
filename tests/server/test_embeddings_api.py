"""/v1/embeddings with the official openai client against a real server on 127.0.0.1,
SmolLM2 (mean-pooled) as the embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatapp.server import ServerConfig, ServerThread, create_app
from chatapp.service import ChatService
from tests.server.conftest import client

pytestmark = pytest.mark.model


def test_embeddings_in_openai_shape(smol: ChatService, smollm2_path: Path) -> None:
    app = create_app(smol, ServerConfig(embedding_model=str(smollm2_path)))
    server = ServerThread(app).start()
    try:
        api = client(server.url + "/v1")
        texts = ["The cat sat on the mat.", "A feline rested on a rug.", "Revenue rose 5%."]
        # the client asks for base64 by default and decodes it
        result = api.embeddings.create(input=texts, model=smollm2_path.name)
        assert [d.index for d in result.data] == [0, 1, 2]
        v = np.array([d.embedding for d in result.data])
        assert v.shape == (3, 576)
        assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
        assert v[0] @ v[1] > v[0] @ v[2]
        assert result.usage.prompt_tokens > 10 and result.model == smollm2_path.name
        as_float = api.embeddings.create(
            input="The cat sat on the mat.", model=smollm2_path.name, encoding_format="float"
        )
        assert np.allclose(as_float.data[0].embedding, v[0], atol=1e-5)
        import openai

        with pytest.raises(openai.NotFoundError):
            api.embeddings.create(input="x", model="another-model")
        with pytest.raises(openai.BadRequestError):
            api.embeddings.create(input=[[1, 2, 3]], model=smollm2_path.name)
    finally:
        server.stop()
        app.state.embeddings.close()


def test_without_an_embedding_model_the_route_says_so(api: str) -> None:
    import openai

    with pytest.raises(openai.InternalServerError) as e:
        client(api).embeddings.create(input="x", model="m")
    assert e.value.status_code == 503 and "--embedding-model" in str(e.value)
