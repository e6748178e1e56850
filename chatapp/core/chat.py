"""One chat turn's prompt: the exact text and tokens a local model receives.

The prompt is rendered by our own code (core.prompting) from the chosen chat template
and tokenized with special tokens parsed, so what the model sees is known exactly and
can be shown. The local backend's prepare() is the only caller: a send, "Show prompt",
the template editor and `chatapp prompt` all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol, cast

from chatapp.core.backend import PreparedPrompt
from chatapp.core.conversation import Message
from chatapp.core.engine import ModelInfo
from chatapp.core.prompting import build_prompt, conversation_messages, needs_bos
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.core.toolcalls import for_template, reads_tools, tools_system_text


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
    result = build_prompt(
        template,
        system_prompt,
        messages,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        add_generation_prompt=add_generation_prompt,
        **extra,
    )
    text = result.text
    tokens = engine.tokenize(text, special=True)
    if needs_bos(text, info.bos_token, info.add_bos):
        bos = engine.tokenize(info.bos_token, special=True) if info.bos_token else []
        if len(bos) == 1:
            tokens = bos + tokens
            text = info.bos_token + text
    return PreparedPrompt(text, tokens, template, messages, result.warning, result.merged_system)
