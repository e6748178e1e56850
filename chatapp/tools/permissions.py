"""Which tools a chat offers and which calls need the user's approval: plain data.

Stored in a conversation's meta under "tools":

    {"enabled": ["calculator", "current_time"],
     "permissions": {"python": "always", "web__fetch": "never"}}

"enabled" is the chat's tool list (none by default: a chat offers no tools until the
user switches some on). A permission is "always" (run without asking), "ask" (the user
approves each call) or "never" (not offered; the turn pipeline refuses a call anyway). A tool with
no stored permission has its default: the calculator and the clock "always", Python,
the file tools and every MCP tool "ask". Unknown or damaged values read as the defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from chatapp.tools.spec import PERMISSIONS, ToolSpec

META_KEY = "tools"


@dataclass(frozen=True)
class ChatTools:
    enabled: tuple[str, ...] = ()
    permissions: dict[str, str] = field(default_factory=dict, hash=False)

    def permission(self, spec: ToolSpec) -> str:
        p = self.permissions.get(spec.name)
        return p if p in PERMISSIONS else spec.default_permission

    def offered(self, specs: Iterable[ToolSpec]) -> list[ToolSpec]:
        """The specs this chat offers the model: enabled, and not "never"."""
        on = set(self.enabled)
        return [s for s in specs if s.name in on and self.permission(s) != "never"]

    def to_json(self) -> dict[str, Any]:
        return {"enabled": list(self.enabled), "permissions": dict(self.permissions)}


def read_chat_tools(meta: object) -> ChatTools:
    """The chat's tool settings from a Conversation.meta dict (defaults where absent)."""
    raw = meta.get(META_KEY) if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        return ChatTools()
    enabled = raw.get("enabled")
    names = tuple(
        dict.fromkeys(n for n in enabled if isinstance(n, str) and n)
        if isinstance(enabled, list)
        else ()
    )
    perms = raw.get("permissions")
    permissions = (
        {k: v for k, v in perms.items() if isinstance(k, str) and v in PERMISSIONS}
        if isinstance(perms, dict)
        else {}
    )
    return ChatTools(names, permissions)


def write_chat_tools(meta: MutableMapping[str, Any], tools: ChatTools) -> None:
    """Store `tools` in the meta dict (the caller saves the conversation)."""
    meta[META_KEY] = tools.to_json()


def set_enabled(meta: MutableMapping[str, Any], name: str, on: bool) -> ChatTools:
    """Switch one tool on or off for the chat; returns the new settings."""
    cur = read_chat_tools(meta)
    names = [n for n in cur.enabled if n != name]
    if on:
        names.append(name)
    new = ChatTools(tuple(names), cur.permissions)
    write_chat_tools(meta, new)
    return new


def set_permission(meta: MutableMapping[str, Any], name: str, permission: str | None) -> ChatTools:
    """Set one tool's permission for the chat (None: back to its default)."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"permission must be one of {', '.join(PERMISSIONS)}, not {permission!r}")
    cur = read_chat_tools(meta)
    perms = {k: v for k, v in cur.permissions.items() if k != name}
    if permission is not None:
        perms[name] = permission
    new = ChatTools(cur.enabled, perms)
    write_chat_tools(meta, new)
    return new
