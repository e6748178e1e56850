"""The local backend: a token-level Engine (llama.cpp, or a scripted fake in tests)
behind the Backend protocol.

It renders the prompt with our own template code, hands the engine token ids, and turns
the sampled tokens back into chunks (core.generation.ReplyStream). prepare() is the one
function that makes a prompt: a send, "Show prompt", the template editor's preview and
token count, and `chatapp prompt` all call it, so what they show is what is sent.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from chatapp.core.backend import Capabilities, ChatRequest, ModelRef, PreparedPrompt
from chatapp.core.chat import prepare_prompt, template_for_model, with_bos
from chatapp.core.errors import UserError
from chatapp.core.generation import ReplyStream
from chatapp.core.images import ImageFile, decode_for_model
from chatapp.core.templates import ChatTemplate
from chatapp.core.token_engine import Engine, ModelInfo, SamplingParams
from chatapp.core.toolcalls import kept_markers
from chatapp.core.vision_prompt import (
    ImageTokenizer,
    MissingImage,
    finish,
    has_images,
    with_markers,
)

log = logging.getLogger(__name__)

# completion mode (ChatRequest.raw_prompt): no chat format, nothing ends the text but the
# model's end-of-generation token or the token limit
COMPLETION = ChatTemplate("completion", "completion", "")

MAX_SEED = 2**31 - 1


def fresh_seed() -> int:
    return secrets.randbelow(MAX_SEED)


def _seeded(params: SamplingParams) -> SamplingParams:
    """The sampling with the seed it will really use (a fresh one when none was asked
    for), so a receipt can replay it."""
    return params if params.seed is not None else replace(params, seed=fresh_seed())


class LocalBackend:
    def __init__(self, engine: Engine, *, version: str = "") -> None:
        self.engine = engine
        self.info: ModelInfo = engine.info
        self.ref = ModelRef(name=engine.info.path)
        self.capabilities = Capabilities(
            tokens=True, logprobs=True, vision=bool(getattr(engine, "can_see", False))
        )
        self.version = version
        self._templates: dict[str | None, ChatTemplate] = {}

    def template(self, user_template: str | None = None) -> ChatTemplate:
        """Resolved once per distinct user template text (a saved edit is a new text,
        so it takes effect for the very next request)."""
        key = user_template or None
        tpl = self._templates.get(key)
        if tpl is None:
            tpl = template_for_model(self.info, key)
            if len(self._templates) > 8:
                self._templates.clear()
            self._templates[key] = tpl
        return tpl

    def prepare(self, request: ChatRequest) -> PreparedPrompt:
        if request.raw_prompt is not None:
            return self.prepare_text(request.raw_prompt)
        template = self.template(request.user_template)
        history: Any = request.history
        tokenizer: Any = self.engine
        order: list[ImageFile] = []
        nonce = ""
        if has_images(history):  # images become markers, then their ids (core.vision_prompt)
            try:
                history, order, nonce = with_markers(
                    history, dict(request.images), can_see=self.capabilities.vision
                )
            except MissingImage as e:
                raise UserError(
                    f"An image of this conversation (sha256 {e}) is not in the database."
                ) from None
            tokenizer = ImageTokenizer(self.engine, order, nonce, self._image_ids)
        prompt = prepare_prompt(
            tokenizer,
            template,
            request.system_prompt,
            history,
            tools=request.tools,
            add_generation_prompt=request.add_generation_prompt,
        )
        if order:
            prompt = finish(prompt, order, nonce)
        if request.prefill:  # Continue: the answer so far opens the model's turn, as text
            prompt = replace(
                prompt,
                text=prompt.text + request.prefill,
                tokens=prompt.tokens + self.engine.tokenize(request.prefill, special=False),
            )
        return prompt

    def _image_ids(self, image: ImageFile) -> list[int]:
        """An image's ids in the prompt (the engine keeps recent ones prepared)."""
        kept = self.engine.kept_image_tokens(image.sha256)  # type: ignore[attr-defined]
        if kept is not None:
            return list(kept)
        side = int(self.engine.image_max_side)  # type: ignore[attr-defined]
        return list(self.engine.image_tokens(decode_for_model(image, side)))  # type: ignore[attr-defined]

    def prepare_text(self, text: str) -> PreparedPrompt:
        """Completion mode: the text as written (special-token markers in it are plain
        text), with nothing added but the BOS token the vocabulary asks for."""
        tokens = self.engine.tokenize(text, special=False)
        shown, tokens, _ = with_bos(self.engine, text, tokens)
        return PreparedPrompt(shown, tokens, COMPLETION)

    def execute(
        self,
        request: ChatRequest,
        cancel: threading.Event,
        prompt: PreparedPrompt | None = None,
    ) -> ReplyStream:
        prompt = prompt or self.prepare(request)
        params = _seeded(request.sampling)
        return ReplyStream(
            self.engine,
            prompt,
            params,
            cancel,
            prompt.template.stop_markers,
            prompt.template.think_tags,
            start_inside_thinking=prompt.starts_inside_thinking,
            logprobs=request.logprobs,
            cache_key=request.cache_key,
            forced=request.forced,
            prefill=(request.prefill, request.prefill_thinking),
            verbatim=request.raw_prompt is not None,
            grammar=request.grammar,
            keep_special=kept_markers(request.tool_marker),
        )

    def execute_text(self, text: str, request: ChatRequest, cancel: threading.Event) -> ReplyStream:
        """A raw completion (the API's /v1/completions): `text` as-is, no chat template,
        special tokens parsed, plus the BOS the vocabulary asks for. It ends at an
        end-of-generation token or a limit; there are no template stop markers."""
        shown, tokens, _ = with_bos(self.engine, text, self.engine.tokenize(text, special=True))
        prompt = PreparedPrompt(shown, tokens, self.template(request.user_template))
        params = _seeded(request.sampling)
        return ReplyStream(
            self.engine,
            prompt,
            params,
            cancel,
            logprobs=request.logprobs,
            cache_key=request.cache_key,
            verbatim=True,
        )

    def settle(self, should_stop: Callable[[], bool]) -> int:
        """Between turns: let the engine re-evaluate what it generated one token at a
        time, so the next turn starts from the state a fresh process would compute
        (engine.llama.GRID). Tokens evaluated; 0 for an engine without the need."""
        settle = getattr(self.engine, "settle", None)
        return int(settle(should_stop)) if settle is not None else 0

    def prefill(
        self, tokens: list[int], cache_key: str | None, should_stop: Callable[[], bool]
    ) -> int:
        """Evaluate a prompt a turn will probably start with (service.prefill), until
        should_stop(); the tokens evaluated (0 for an engine without the need)."""
        prefill = getattr(self.engine, "prefill", None)
        return int(prefill(tokens, cache_key, should_stop)) if prefill is not None else 0

    def forget_states(self, cache_keys: list[str]) -> None:
        """Drop the KV states kept for these conversations (deleted chats)."""
        forget = getattr(self.engine, "forget_states", None)
        if forget is not None:
            forget(cache_keys)

    def saved_states(self) -> Any:
        """The loaded model's KV states on disk (engine.state_disk.StateDisk), or None."""
        saved = getattr(self.engine, "saved_states", None)
        return saved() if saved is not None else None

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self.engine.tokenize(text, special=special)

    def token_bytes(self, token_id: int) -> bytes:
        if token_id < 0:  # a position an image takes (core.vision_prompt)
            return b"<image>"
        return self.engine.token_bytes(token_id)

    @property
    def state_note(self) -> str:
        """Why this model's KV state is not kept between chats, or "" (the receipt says it)."""
        if getattr(self.engine, "sliding_window", 0) > 0:
            return (
                "sliding-window attention: its state is not kept between chats (a restore "
                "would not be exact), so a switch back evaluates the prompt again"
            )
        return ""

    def is_special(self, token_id: int) -> bool:
        return self.engine.is_special(token_id)

    def close(self) -> None:
        self.engine.close()
