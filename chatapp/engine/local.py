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
from dataclasses import replace

from chatapp.core.backend import Capabilities, ChatRequest, ModelRef, PreparedPrompt
from chatapp.core.chat import prepare_prompt, template_for_model
from chatapp.core.engine import Engine, ModelInfo
from chatapp.core.generation import ReplyStream
from chatapp.core.prompting import needs_bos
from chatapp.core.templates import ChatTemplate

log = logging.getLogger(__name__)

# completion mode (ChatRequest.raw_prompt): no chat format, nothing ends the text but the
# model's end-of-generation token or the token limit
COMPLETION = ChatTemplate("completion", "completion", "")

MAX_SEED = 2**31 - 1


def fresh_seed() -> int:
    return secrets.randbelow(MAX_SEED)


class LocalBackend:
    def __init__(self, engine: Engine, *, version: str = "") -> None:
        self.engine = engine
        self.info: ModelInfo = engine.info
        self.ref = ModelRef(name=engine.info.path)
        self.capabilities = Capabilities(tokens=True, logprobs=True)
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
        prompt = prepare_prompt(
            self.engine,
            template,
            request.system_prompt,
            request.history,
            tools=request.tools,
            add_generation_prompt=request.add_generation_prompt,
        )
        if request.prefill:  # Continue: the answer so far opens the model's turn, as text
            prompt = replace(
                prompt,
                text=prompt.text + request.prefill,
                tokens=prompt.tokens + self.engine.tokenize(request.prefill, special=False),
            )
        return prompt

    def prepare_text(self, text: str) -> PreparedPrompt:
        """Completion mode: the text as written (special-token markers in it are plain
        text), with nothing added but the BOS token the vocabulary asks for."""
        info = self.info
        tokens = self.engine.tokenize(text, special=False)
        shown = text
        if info.add_bos and info.bos_token:
            bos = self.engine.tokenize(info.bos_token, special=True)
            if len(bos) == 1:
                tokens = bos + tokens
                shown = info.bos_token + text
        return PreparedPrompt(shown, tokens, COMPLETION)

    def execute(self, request: ChatRequest, cancel: threading.Event) -> ReplyStream:
        prompt = self.prepare(request)
        params = request.sampling
        if params.seed is None:  # record the seed actually used, so a receipt can replay it
            params = replace(params, seed=fresh_seed())
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
        )

    def execute_text(self, text: str, request: ChatRequest, cancel: threading.Event) -> ReplyStream:
        """A raw completion (the API's /v1/completions): `text` as-is, no chat template,
        special tokens parsed, plus the BOS the vocabulary asks for. It ends at an
        end-of-generation token or a limit; there are no template stop markers."""
        info = self.info
        tokens = self.engine.tokenize(text, special=True)
        if needs_bos(text, info.bos_token, info.add_bos):
            bos = self.engine.tokenize(info.bos_token, special=True) if info.bos_token else []
            if len(bos) == 1:
                tokens, text = bos + tokens, info.bos_token + text
        prompt = PreparedPrompt(text, tokens, self.template(request.user_template))
        params = request.sampling
        if params.seed is None:
            params = replace(params, seed=fresh_seed())
        return ReplyStream(
            self.engine,
            prompt,
            params,
            cancel,
            logprobs=request.logprobs,
            cache_key=request.cache_key,
        )

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        return self.engine.tokenize(text, special=special)

    def token_bytes(self, token_id: int) -> bytes:
        return self.engine.token_bytes(token_id)

    def is_special(self, token_id: int) -> bool:
        return self.engine.is_special(token_id)

    def close(self) -> None:
        self.engine.close()
