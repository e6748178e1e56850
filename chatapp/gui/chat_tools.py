"""A chat's tool settings as the window keeps them, and the turn options they give.

Plain data in Conversation.meta, beside the tool list and permissions that
chatapp.tools.permissions keeps under "tools":

    "tool_options": {"choice": "auto", "max_steps": 5, "folders": ["/home/me/notes"],
                     "output": null | true | {JSON schema}}

choice: auto, none, required or a tool's name; max_steps: calls answered per turn (None:
the app's Settings.tool_max_steps); folders: granted to the file tools in this chat;
output: structured output (true: any JSON object; a schema: that schema). Damaged
values read as the defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chatapp.tools.permissions import read_chat_tools

OPTIONS_KEY = "tool_options"
CHOICES = ("auto", "none", "required")
MAX_STEPS = 50
SEPARATOR = "__"  # an MCP tool's name: "<server>__<tool>"


@dataclass(frozen=True)
class ToolOptions:
    choice: str = "auto"
    max_steps: int | None = None
    folders: tuple[str, ...] = ()
    output: Any = None  # None: free text; True: any JSON object; a dict: a JSON schema

    @classmethod
    def from_meta(cls, meta: object) -> ToolOptions:
        raw = meta.get(OPTIONS_KEY) if isinstance(meta, Mapping) else None
        if not isinstance(raw, Mapping):
            return cls()
        choice = raw.get("choice")
        steps = raw.get("max_steps")
        folders = raw.get("folders")
        output = raw.get("output")
        return cls(
            choice if isinstance(choice, str) and choice else "auto",
            steps
            if isinstance(steps, int) and not isinstance(steps, bool) and 0 <= steps <= MAX_STEPS
            else None,
            tuple(f for f in folders if isinstance(f, str) and f)
            if isinstance(folders, list)
            else (),
            output if output is True or isinstance(output, dict) else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "choice": self.choice,
            "max_steps": self.max_steps,
            "folders": list(self.folders),
            "output": self.output,
        }

    def with_(self, **changes: Any) -> ToolOptions:
        return replace(self, **changes)


def turn_fields(
    meta: object,
    runner: Any,
    approve: Callable[[Any], bool] | None,
    known: Collection[str],
) -> dict[str, Any]:
    """The TurnOptions fields of the next turn in a chat with `meta`: its enabled tools
    (those the app knows: built-ins in `known`, every MCP tool as named; "never" is not
    offered), its choice, permissions, steps, folders, and structured output."""
    chat = read_chat_tools(meta)
    opts = ToolOptions.from_meta(meta)
    out: dict[str, Any] = {}
    names = tuple(
        n
        for n in chat.enabled
        if (n in known or SEPARATOR in n) and chat.permissions.get(n) != "never"
    )
    if names and runner is not None:
        choice = opts.choice
        if choice not in CHOICES and choice not in names:
            choice = "auto"  # the named tool was switched off
        out.update(
            tools=names,
            tool_choice=choice,
            tool_permissions=dict(chat.permissions),
            tool_max_steps=opts.max_steps,
            tool_runner=runner.with_folders([Path(f) for f in opts.folders])
            if hasattr(runner, "with_folders")
            else runner,
            approve=approve,
        )
    if opts.output is not None:
        out["json_schema"] = opts.output
    return out
