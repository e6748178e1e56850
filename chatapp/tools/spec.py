"""The data a tool is offered as (ToolSpec) and what running it gives (ToolResult).

Both are re-exported by chatapp.tools.registry, the module callers import them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PERMISSIONS = ("always", "ask", "never")


@dataclass(frozen=True)
class ToolSpec:
    """What the model is offered (the OpenAI function shape)."""

    name: str  # unique; MCP tools are "<server>__<tool>"
    description: str
    parameters: dict[str, Any] = field(hash=False)  # JSON schema of the arguments (type: object)
    source: str  # "builtin" or "mcp:<server>"
    default_permission: str  # "always" | "ask" | "never"

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave: the text the model is told, capped, and how it went."""

    content: str
    is_error: bool = False
    truncated: bool = False
    seconds: float = 0.0


def capped(result: ToolResult, max_chars: int, seconds: float) -> ToolResult:
    """`result` cut to `max_chars`, the cut said in the text itself."""
    text = result.content
    truncated = result.truncated
    if len(text) > max_chars:
        more = len(text) - max_chars
        text = f"{text[:max_chars]}\n[cut: {more} more characters not shown]"
        truncated = True
    return ToolResult(text, is_error=result.is_error, truncated=truncated, seconds=seconds)
