"""One chat's view of the app's tools: the same registry (MCP servers, the Python tool
and its scratch folder), with the file tools working in the folders this chat granted.

The window offers each turn a view of its chat (TurnOptions.tool_runner): the file
tools' descriptions name that chat's folders, and their paths are checked against
those folders only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatapp.tools import files
from chatapp.tools.builtins import LIST_FILES, READ_FILE, SEARCH_FILES, BuiltinRunner, builtin_specs
from chatapp.tools.spec import ToolResult, ToolSpec, capped

if TYPE_CHECKING:
    from chatapp.tools.registry import ToolRegistry

FILE_TOOLS = (READ_FILE, LIST_FILES, SEARCH_FILES)


class ChatToolView:
    """A ToolRunner over `registry` whose file tools see only `folders`. Closing it
    closes nothing: the registry's owner does that."""

    def __init__(
        self, registry: ToolRegistry, folders: Sequence[Path], closing: threading.Event
    ) -> None:
        self.registry = registry
        self.folders = files.GrantedFolders(folders)
        self._closing = closing
        self._files = {
            s.name: s
            for s in builtin_specs(self.folders, registry.python_limits)
            if s.name in FILE_TOOLS
        }

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        return [self._files.get(s.name, s) for s in self.registry.specs(names)]

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> ToolResult:
        spec = self._files.get(name)
        if spec is None:
            return self.registry.run(name, arguments, cancel=cancel, timeout=timeout)
        start = time.monotonic()
        result = self._run_file_tool(spec, arguments, cancel, timeout)
        return capped(result, self.registry.max_chars, time.monotonic() - start)

    def _run_file_tool(
        self, spec: ToolSpec, arguments: object, cancel: threading.Event, timeout: float
    ) -> ToolResult:
        name = spec.name
        if not isinstance(arguments, dict):
            return ToolResult(f"{name}: the arguments must be a JSON object", is_error=True)
        if cancel.is_set():
            return ToolResult(f"{name}: cancelled", is_error=True)
        missing = [k for k in spec.parameters.get("required", []) if k not in arguments]
        if missing:
            return ToolResult(f"{name}: missing argument {missing[0]!r}", is_error=True)
        runner = BuiltinRunner(
            self.folders,
            self.registry.python_limits,
            lambda: self.registry.scratch_dir,
            self._closing,
        )
        return runner.run(name, arguments, cancel=cancel, timeout=timeout)

    def close(self) -> None:
        pass
