"""One chat turn's prompt: the exact text and tokens a local model receives.

The prompt is rendered by our own code (core.prompting) from the chosen chat template;
the template's markup is tokenized with special tokens parsed and the messages' text as
text (core.prompt_pieces), so what the model sees is known exactly and can be shown, and
no message can forge a turn. The local backend's prepare() is the only caller: a send, "Show prompt",
the template editor and `chatapp prompt` all go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, cast

from chatapp.core.backend import PreparedPrompt
from chatapp.core.conversation import Message
from chatapp.core.errors import TemplateError
from chatapp.core.prompt_pieces import (
    PromptPiece,
    has_special,
    split_prompt,
    tokenize_pieces,
    with_placeholders,
)
from chatapp.core.prompting import build_prompt, conversation_messages
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.core.token_engine import ModelInfo
from chatapp.core.toolcalls import for_template, reads_tools, tools_system_text

log = logging.getLogger(__name__)


class Tokenizer(Protocol):
    info: ModelInfo

    def tokenize(self, text: str, *, special: bool = True) -> list[int]: ...


def template_for(engine: Tokenizer, user_templates: dict[str, str] | None = None) -> ChatTemplate:
    info = engine.info
    return template_for_model(info, (user_templates or {}).get(Path(info.path).name))


def template_for_model(info: ModelInfo, user_template: str | None = None) -> ChatTemplate:
    """The template a loaded model chats with: the same answer for the chat, the CLI and
    "Show prompt" (its vocabulary's special tokens help pick a preset)."""
    return resolve_template(
        info.metadata,
        user_template=user_template,
        special_tokens=set(info.special_tokens) or None,
        eos_token=info.eos_token,
    )


def prepare_prompt(
    engine: Tokenizer,
    template: ChatTemplate,
    system_prompt: str,
    history: Iterable[Message] | Iterable[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = True,
) -> PreparedPrompt:
    """history: a stored thread (Messages) or role/content dicts; a system message among
    the dicts is used when system_prompt is empty."""
    items = list(history)
    if items and isinstance(items[0], Message):
        messages = conversation_messages(items, template)  # type: ignore[arg-type]
    else:
        messages = [dict(cast(dict[str, Any], m)) for m in items]
        systems = [m for m in messages if m.get("role") == "system"]
        if systems and not system_prompt.strip():
            system_prompt = str(systems[0].get("content", ""))
        messages = [m for m in messages if m.get("role") != "system"]
    info = engine.info
    messages = for_template(messages, template.text)
    extra: dict[str, Any] = {}
    if tools and reads_tools(template.text):
        extra["tools"] = tools
    elif tools:  # a template with no place for tools: the Hermes section in the system prompt
        system_prompt = "\n\n".join(
            p for p in (system_prompt.strip(), tools_system_text(tools)) if p
        )
    kwargs: dict[str, Any] = dict(
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        add_generation_prompt=add_generation_prompt,
        **extra,
    )
    result = build_prompt(template, system_prompt, messages, **kwargs)
    pieces = _pieces(result.text, template, system_prompt, messages, kwargs, info)
    text, tokens, text_spans = tokenize_pieces(pieces, engine.tokenize)
    text, tokens, shift = with_bos(engine, text, tokens)
    return PreparedPrompt(
        text,
        tokens,
        template,
        messages,
        result.warning,
        result.merged_system,
        text_spans=tuple((a + shift, b + shift) for a, b in text_spans),
    )


def _pieces(
    rendered: str,
    template: ChatTemplate,
    system_prompt: str,
    messages: list[dict[str, Any]],
    kwargs: dict[str, Any],
    info: ModelInfo,
) -> list[PromptPiece]:
    """The rendered prompt cut into markup and message text (core.prompt_pieces)."""
    specials = info.control_tokens
    nonce, system, marked, contents = with_placeholders(system_prompt, messages)
    try:
        placeholder_render = build_prompt(template, system, marked, **kwargs).text
    except TemplateError as e:
        if any(has_special(c, specials) for c in contents):
            log.warning("template %s: cannot mark message text (%s)", template.name, e)
        return [PromptPiece(rendered, True)]
    return split_prompt(rendered, placeholder_render, nonce, contents, specials)


def with_bos(engine: Tokenizer, text: str, tokens: list[int]) -> tuple[str, list[int], int]:
    """The BOS token in front where the vocabulary wants one and the tokens do not
    already start with it (a template that writes {{ bos_token }} has it as markup).
    The one place a BOS is added: chat prompts, completion text and raw completions.
    Returns (text, tokens, characters added in front of the text)."""
    info = engine.info
    if not (info.add_bos and info.bos_token):
        return text, tokens, 0
    bos = engine.tokenize(info.bos_token, special=True)
    if len(bos) != 1 or tokens[:1] == bos:
        return text, tokens, 0
    return info.bos_token + text, bos + tokens, len(info.bos_token)
