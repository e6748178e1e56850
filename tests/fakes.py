"""A scripted engine for fast GUI and core tests. It follows the Engine protocol; it
never stands in for the real model where real behaviour matters (tests/engine, tests/e2e)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator

from chatapp.core.token_engine import Cancelled, ModelInfo, PromptEval, Sampled, SamplingParams

EOS = 0


class ScriptedEngine:
    """Tokens are bytes: token id = byte value + 1; id 0 ends the turn.
    `reply` is what every generate() yields, one byte-token at a time."""

    def __init__(
        self,
        path: str = "/models/fake.gguf",
        reply: str = "Hello from the fake model.",
        delay: float = 0.0,
        metadata: dict | None = None,
        n_ctx: int = 4096,
    ) -> None:
        self.reply = reply
        self.delay = delay
        self.closed = False
        self.prompts: list[list[int]] = []
        self.last_prompt = PromptEval()
        self.cache_keys: list[str | None] = []
        self.info = ModelInfo(
            path=path,
            name="Fake model",
            architecture="fake",
            n_ctx=n_ctx,
            n_ctx_train=n_ctx,
            n_vocab=257,
            bos_token="",
            eos_token="",
            eog_token_ids=frozenset({EOS}),
            add_bos=False,
            metadata=metadata
            if metadata is not None
            else {
                "general.architecture": "fake",
                "tokenizer.chat_template": "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}"
                "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
            },
        )

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return [b + 1 for b in text.encode("utf-8")]

    def token_bytes(self, token_id: int) -> bytes:
        return b"" if token_id == EOS else bytes([token_id - 1])

    def is_special(self, token_id: int) -> bool:
        return token_id == EOS

    def generate(
        self,
        prompt: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        *,
        logprobs: int = 0,
        cache_key: str | None = None,
    ) -> Iterator[Sampled]:
        assert not self.closed, "used after close()"
        self.prompts.append(list(prompt))
        self.cache_keys.append(cache_key)
        self.last_prompt = PromptEval(0, len(prompt))
        for n, b in enumerate(self.reply.encode("utf-8"), start=1):
            if cancel.is_set():
                raise Cancelled()
            if self.delay:
                time.sleep(self.delay)
            # a made-up but consistent distribution: the chosen byte at 0.5, the next
            # byte values after it at halving probabilities
            top = tuple((b + 1 + i, math.log(0.5 ** (i + 1))) for i in range(logprobs))
            yield Sampled(b + 1, math.log(0.5), top) if logprobs else Sampled(b + 1)
            if params.max_tokens is not None and n >= params.max_tokens:
                return

    def close(self) -> None:
        self.closed = True
