"""What a model may call: a registry of tools with JSON schemas.

The built-ins (calculator, sandboxed Python, granted folders, clock) and the tools of
MCP servers configured in mcp.json, all behind one synchronous `ToolRegistry`. No Qt,
no llama.cpp: the chat service's turn pipeline offers `specs()` to the model and calls
`run()` for each tool call it approves (docs/tools.md).
"""

from chatapp.tools.registry import ToolRegistry, ToolResult, ToolSpec

__all__ = ["ToolRegistry", "ToolResult", "ToolSpec"]
