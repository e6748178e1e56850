"""Build the exact prompt a model receives for a conversation.

The one place that turns (system prompt, message history, template) into text, so the
window, the "Show prompt" dialog and `chatapp prompt` all send and show the same thing.
Switching models mid-conversation needs nothing special: the whole history is rendered
again in the new model's format every time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chatapp.core.conversation import FinishReason, Message, Role
from chatapp.core.errors import TemplateError
from chatapp.core.templates import TIME_LIMIT_S, ChatTemplate, TemplateRefused, render
from chatapp.core.thinking import history_message

log = logging.getLogger(__name__)

MERGED_SYSTEM_NOTE = (
    "This model's template does not accept a system prompt, so it was put at the start "
    "of the first user message."
)


_INTERRUPTED = frozenset(
    {FinishReason.ERROR, FinishReason.CANCELLED, FinishReason.STREAMING, FinishReason.LENGTH}
)


@dataclass(frozen=True)
class PromptResult:
    text: str
    warning: str = ""  # for the user: a merged system prompt, plain completion, ...
    merged_system: bool = False


def _merge_system(system_prompt: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [dict(m) for m in messages if m.get("role") != Role.SYSTEM.value]
    for m in out:
        if m.get("role") == Role.USER.value:
            m["content"] = f"{system_prompt}\n\n{m.get('content', '')}"
            return out
    return [{"role": Role.USER.value, "content": system_prompt}, *out]


def build_prompt(
    template: ChatTemplate,
    system_prompt: str,
    messages: list[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    time_limit: float = TIME_LIMIT_S,
    **extra: Any,
) -> PromptResult:
    """Render the prompt for `messages` (role/content dicts, no system message: that is
    `system_prompt`). If the template refuses a system role, the system prompt is merged
    into the first user turn and the result says so; any other failure is a TemplateError
    carrying the template's own message. The messages passed in are never changed."""
    system = system_prompt.strip()
    history = [m for m in messages if m.get("role") != Role.SYSTEM.value]
    full = ([{"role": Role.SYSTEM.value, "content": system_prompt}] if system else []) + history
    warnings = [template.warning] if template.warning else []
    kwargs = dict(
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
        time_limit=time_limit,
        **extra,
    )
    try:
        text = render(template, full, **kwargs)
        return PromptResult(text, " ".join(warnings))
    except TemplateError as first:
        # Only the template's own refusal is worth working around; a broken or runaway
        # template stays an error.
        if not system or not isinstance(first, TemplateRefused):
            raise
        # If the merged form fails too, its error is the one that still stands.
        text = render(template, _merge_system(system_prompt, history), **kwargs)
        log.info(
            "template %s refused the system role; merged it into the first turn", template.name
        )
        return PromptResult(text, " ".join([MERGED_SYSTEM_NOTE, *warnings]), merged_system=True)


def conversation_messages(
    branch: Iterable[Message], template: ChatTemplate | None = None
) -> list[dict[str, Any]]:
    """Role/content dicts for a stored thread (no system message), with past thinking
    passed back only where the template reads it. An answer that was interrupted before
    any text (failed, stopped, or its process died) is no turn: an empty assistant turn
    in the prompt teaches the model to answer with nothing."""
    out: list[dict[str, Any]] = []
    for m in branch:
        if m.role is Role.SYSTEM:
            continue
        if m.role is Role.ASSISTANT:
            if m.finish_reason in _INTERRUPTED and not m.content.strip():
                continue
            msg = history_message(m.content, m.thinking, template)
            calls = m.meta.get("tool_calls")
            if calls:
                msg["tool_calls"] = [_openai_call(c) for c in calls]
            out.append(msg)
        elif m.role is Role.TOOL:
            out.append(
                {
                    "role": "tool",
                    "content": m.content,
                    "tool_call_id": m.meta.get("tool_call_id", ""),
                    "name": m.meta.get("name", ""),
                }
            )
        else:
            out.append({"role": m.role.value, "content": m.content})
    return out


def _openai_call(call: dict[str, Any]) -> dict[str, Any]:
    """A stored call as chat templates read it (arguments as an object, as
    transformers passes them)."""
    return {
        "id": call.get("id", ""),
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or {}},
    }


def prompt_for_thread(
    template: ChatTemplate,
    system_prompt: str,
    branch: Iterable[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
    **extra: Any,
) -> PromptResult:
    """The prompt for the next answer in a stored conversation thread."""
    return build_prompt(
        template,
        system_prompt,
        conversation_messages(branch, template),
        bos_token=bos_token,
        eos_token=eos_token,
        **extra,
    )
