"""Chat templates: turning a conversation into the exact text the model receives.

Templates are Jinja, rendered in an immutable sandbox with the same conventions as
Hugging Face transformers' apply_chat_template (trim_blocks, lstrip_blocks,
raise_exception, tojson, strftime_now, bos_token, eos_token, add_generation_prompt).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from chatapp.core.errors import TemplateError


@dataclass(frozen=True)
class ChatTemplate:
    name: str
    source: str  # "user", "gguf", "preset" or "completion"
    text: str
    stop_markers: tuple[str, ...] = ()
    warning: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class _TemplateRaised(Exception):
    pass


def _raise_exception(message: str) -> None:
    raise _TemplateRaised(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **kw: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, **kw)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


_ENV = _environment()

GEMMA_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set first_user_prefix = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{{ (first_user_prefix if loop.first else '') + message['content'] | trim }}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

COMPLETION_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['content'] }}"
    "{% if not loop.last %}\n\n{% endif %}{% endfor %}"
)

# End-of-turn text markers by the special tokens a template uses.
_KNOWN_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>")


def render(
    template: ChatTemplate | str,
    messages: list[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    tools: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> str:
    text = template.text if isinstance(template, ChatTemplate) else template
    try:
        compiled = _ENV.from_string(text)
        return compiled.render(
            messages=messages,
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            tools=tools,
            **extra,
        )
    except _TemplateRaised as e:
        raise TemplateError(f"The chat template refused this conversation: {e}") from e
    except JinjaTemplateError as e:
        line = getattr(e, "lineno", None)
        where = f" (line {line})" if line else ""
        raise TemplateError(f"The chat template is broken{where}: {e}") from e


def stop_markers_for(text: str, eos_token: str = "") -> tuple[str, ...]:
    found = [m for m in _KNOWN_MARKERS if m in text]
    if eos_token and eos_token not in found:
        found.append(eos_token)
    return tuple(found)


def resolve_template(metadata: dict[str, Any], *, user_template: str | None = None) -> ChatTemplate:
    """Pick the template for a model: the user's, the GGUF's, a preset, else plain completion."""
    eos = ""
    if user_template:
        return ChatTemplate("custom", "user", user_template, stop_markers_for(user_template, eos))
    gguf = metadata.get("tokenizer.chat_template")
    if gguf:
        return ChatTemplate("gguf", "gguf", str(gguf), stop_markers_for(str(gguf), eos))
    arch = str(metadata.get("general.architecture", ""))
    if arch.startswith("gemma"):
        return ChatTemplate("gemma", "preset", GEMMA_TEMPLATE, ("<end_of_turn>",))
    return ChatTemplate(
        "completion",
        "completion",
        COMPLETION_TEMPLATE,
        (),
        warning="This model has no chat template and none of the presets fits: "
        "it continues the text as written (plain completion).",
    )
