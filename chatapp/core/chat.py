"""One chat turn's prompt: the exact text and tokens the model receives.

The prompt is rendered by our own code (core.prompting) from the chosen chat template
and tokenized with special tokens parsed, so what the model sees is known exactly and
can be shown. Used by the window's worker, the CLI and "Show prompt".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.engine import Engine, ModelInfo, SamplingParams
from chatapp.core.prompting import build_prompt, conversation_messages, needs_bos
from chatapp.core.store import Store
from chatapp.core.templates import ChatTemplate, resolve_template
from chatapp.core.thinking import starts_inside_thinking


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    tokens: list[int]
    template: ChatTemplate
    messages: list[dict[str, Any]] = field(default_factory=list)
    warning: str = ""
    merged_system: bool = False

    @property
    def starts_inside_thinking(self) -> bool:
        return starts_inside_thinking(self.text, self.template.think_tags)


def begin_reply(
    store: Store,
    conversation_id: str,
    parent_id: str,
    model_path: str,
    template: ChatTemplate,
    params: SamplingParams,
) -> Message:
    """The answer's row, written before the first token so a crash keeps what streamed.
    It records how it was made: model, template and sampling."""
    return store.add_message(
        conversation_id,
        Role.ASSISTANT,
        "",
        parent_id=parent_id,
        model=Path(model_path).name,
        finish_reason=FinishReason.STREAMING,
        meta={
            "template": template.name,
            "template_source": template.source,
            "sampling": params.as_dict(),
            "model_path": model_path,
        },
    )


def template_for(engine: Engine, user_templates: dict[str, str] | None = None) -> ChatTemplate:
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
    engine: Engine,
    template: ChatTemplate,
    system_prompt: str,
    history: Iterable[Message] | list[dict[str, Any]],
) -> PreparedPrompt:
    """history: a stored thread (Messages) or role/content dicts; a system message among
    the dicts is used when system_prompt is empty."""
    items = list(history)
    if items and isinstance(items[0], Message):
        messages = conversation_messages(items, template)  # type: ignore[arg-type]
    else:
        messages = [dict(m) for m in items]  # type: ignore[arg-type]
        systems = [m for m in messages if m.get("role") == "system"]
        if systems and not system_prompt.strip():
            system_prompt = str(systems[0].get("content", ""))
        messages = [m for m in messages if m.get("role") != "system"]
    info = engine.info
    result = build_prompt(
        template, system_prompt, messages, bos_token=info.bos_token, eos_token=info.eos_token
    )
    text = result.text
    tokens = engine.tokenize(text, special=True)
    if needs_bos(text, info.bos_token, info.add_bos):
        bos = engine.tokenize(info.bos_token, special=True) if info.bos_token else []
        if len(bos) == 1:
            tokens = bos + tokens
            text = info.bos_token + text
    return PreparedPrompt(text, tokens, template, messages, result.warning, result.merged_system)
