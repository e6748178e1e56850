"""One chat turn's prompt: the exact text and tokens the model receives.

The prompt is rendered by our own code from the chosen chat template and tokenized with
special tokens parsed, so what the model sees is known exactly and can be shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from chatapp.core.conversation import Message, chat_messages
from chatapp.core.engine import Engine
from chatapp.core.templates import ChatTemplate, render, resolve_template


@dataclass(frozen=True)
class PreparedPrompt:
    text: str
    tokens: list[int]
    template: ChatTemplate
    messages: list[dict[str, Any]] = field(default_factory=list)
    notes: tuple[str, ...] = ()


def template_for(engine: Engine, user_templates: dict[str, str] | None = None) -> ChatTemplate:
    name = Path(engine.info.path).name
    user = (user_templates or {}).get(name)
    return resolve_template(engine.info.metadata, user_template=user)


def prepare_prompt(
    engine: Engine,
    template: ChatTemplate,
    system_prompt: str,
    branch: Iterable[Message] | list[dict[str, Any]],
) -> PreparedPrompt:
    items = list(branch)
    if items and isinstance(items[0], Message):
        messages = chat_messages(system_prompt, items)  # type: ignore[arg-type]
    else:
        messages = list(items)  # already role/content dicts
        if system_prompt.strip() and not (messages and messages[0].get("role") == "system"):
            messages.insert(0, {"role": "system", "content": system_prompt})
    info = engine.info
    text = render(
        template,
        messages,
        bos_token=info.bos_token,
        eos_token=info.eos_token,
        add_generation_prompt=True,
    )
    tokens = engine.tokenize(text, special=True)
    bos_ids = engine.tokenize(info.bos_token, special=True) if info.bos_token else []
    if info.add_bos and len(bos_ids) == 1 and (not tokens or tokens[0] != bos_ids[0]):
        tokens = bos_ids + tokens
        text = info.bos_token + text
    notes = (template.warning,) if template.warning else ()
    return PreparedPrompt(text, tokens, template, messages, notes)
