"""`chatapp conversations ID --set FIELD=VALUE / --unset FIELD`: a chat's own settings
(sampling fields, system_prompt, context_policy), checked against the same ranges as the
window's chat settings panel and saved through the chat service."""

from __future__ import annotations

from typing import Any

from chatapp.core.chat_settings import POLICIES, RANGES, STOP, BadValue, ChatSettings
from chatapp.core.conversation import Conversation
from chatapp.core.errors import UserError
from chatapp.service import ChatService

FIELDS = (*RANGES, "system_prompt", "context_policy")


def parse_value(name: str, text: str) -> Any:
    """The typed value of FIELD=TEXT, or a UserError that names the field and its range."""
    if name == "system_prompt":
        return text
    if name == "context_policy":
        policy = text.strip().replace("-", "_")
        if policy not in POLICIES:
            raise UserError(
                f"Bad value: context_policy must be one of {', '.join(POLICIES)}, not {text!r}."
            )
        return policy
    if name not in RANGES:
        raise UserError(f"Unknown setting {name!r}: choose from {', '.join(FIELDS)}.")
    kind = RANGES[name][2]
    try:
        number: Any = kind(text) if kind is int else float(text)
    except ValueError:
        raise UserError(f"Bad value: {name} must be a number, not {text!r}.") from None
    return number


def change_settings(
    service: ChatService, conv: Conversation, sets: list[str], unsets: list[str]
) -> tuple[ChatSettings, str]:
    """Apply --set and --unset to the conversation's own settings (through the service)."""
    chat = ChatSettings.from_meta(conv.meta)
    system: str | None = None
    try:
        for item in sets:
            name, eq, text = item.partition("=")
            name = name.strip()
            if not eq:
                raise UserError(f"--set takes FIELD=VALUE, not {item!r}.")
            value = parse_value(name, text)
            if name == "system_prompt":
                system = value
            elif name == "context_policy":
                chat = ChatSettings(chat.sampling, value)
            else:
                chat = chat.with_override(name, value)
        for name in unsets:
            name = name.strip()
            if name == "system_prompt":
                system = ""
            elif name == "context_policy":
                chat = ChatSettings(chat.sampling, STOP)
            elif name in RANGES:
                chat = chat.with_override(name, None)
            else:
                raise UserError(f"Unknown setting {name!r}: choose from {', '.join(FIELDS)}.")
    except BadValue as e:
        raise UserError(f"Bad value: {e}.") from e
    saved = service.set_chat_settings(conv.id, chat, system_prompt=system).result()
    return chat, saved.system_prompt


def describe(chat: ChatSettings, system_prompt: str) -> str:
    own = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chat.sampling)
    lines = [
        f"sampling: {own or 'none of its own (the model’s and the app’s defaults)'}",
        f"context_policy: {chat.context_policy}",
        f"system_prompt: {system_prompt!r}" if system_prompt else "system_prompt: none",
    ]
    return "\n".join(lines)
