"""One registry of every tool a chat may offer: the built-ins and the MCP servers' tools.

The chat service builds one per app (or per chat, with that chat's granted folders and
scratch folder), offers `specs()` to the model and calls `run()` for each tool call it
approved. `run()` never raises for a tool's failure: the model is told, in one line.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from chatapp.tools import files
from chatapp.tools.builtins import PYTHON, BuiltinRunner, builtin_specs, python_available
from chatapp.tools.chat_view import ChatToolView
from chatapp.tools.mcp_client import SEPARATOR, McpHub
from chatapp.tools.mcp_config import McpConfig, load_config
from chatapp.tools.python_tool import PythonLimits
from chatapp.tools.spec import ToolResult, ToolSpec, capped

__all__ = ["PythonLimits", "ToolRegistry", "ToolResult", "ToolSpec"]

log = logging.getLogger(__name__)


class ToolRegistry:
    def __init__(
        self,
        config_dir: Path,
        *,
        granted_folders: Sequence[Path] = (),
        scratch_dir: Path | None = None,
        max_chars: int = 8000,
        python_limits: PythonLimits | None = None,
        mcp_start_timeout: float = 20.0,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.max_chars = max_chars
        self.folders = files.GrantedFolders(granted_folders)
        self.python_limits = python_limits or PythonLimits()
        self._own_scratch = scratch_dir is None
        self._scratch = Path(scratch_dir) if scratch_dir is not None else None
        self.mcp_config: McpConfig = load_config(self.config_dir)
        for problem in self.mcp_config.problems:
            log.warning("%s", problem)
        self._mcp = McpHub(self.mcp_config.servers, start_timeout=mcp_start_timeout)
        self._builtins = {
            s.name: s
            for s in builtin_specs(self.folders, self.python_limits)
            if s.name != PYTHON or python_available()
        }
        self._mcp_specs: dict[str, ToolSpec] | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()

    @property
    def scratch_dir(self) -> Path:
        """The Python tool's folder: the one given, or a temporary one removed by close()."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="chatapp-python-"))
        return self._scratch

    @property
    def problems(self) -> list[str]:
        """Why a configured MCP server or mcp.json entry is not available, one line each."""
        return [*self.mcp_config.problems, *self._mcp.problems.values()]

    def builtins(self) -> list[ToolSpec]:
        """The built-in tools only (no MCP server is started)."""
        return list(self._builtins.values())

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """The built-ins and the MCP servers' tools (`names`: only these, in this order).
        MCP servers are started here when first needed: only if an MCP tool is asked for."""
        wanted = None if names is None else list(names)
        need_mcp = wanted is None or any(SEPARATOR in n for n in wanted)
        every = dict(self._builtins)
        if need_mcp:
            every.update(self._mcp_tools())
        if wanted is None:
            return list(every.values())
        return [every[n] for n in wanted if n in every]

    def _mcp_tools(self) -> dict[str, ToolSpec]:
        with self._lock:
            if self._mcp_specs is None:
                self._mcp_specs = {s.name: s for s in self._mcp.specs()}
            return self._mcp_specs

    def with_folders(self, folders: Sequence[Path]) -> ChatToolView:
        """This registry as one chat sees it: its file tools in `folders` only."""
        return ChatToolView(self, folders, self._closing)

    def refresh_mcp(self) -> None:
        """List the MCP servers' tools again on the next specs() (a failed server is
        tried again then; a running one keeps running)."""
        with self._lock:
            self._mcp_specs = None
            self._mcp.problems.clear()

    def run(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        cancel: threading.Event,
        timeout: float = 30.0,
    ) -> ToolResult:
        """Run one tool call; a failure is an is_error result with one clear line."""
        start = time.monotonic()
        result = self._run(name, arguments, cancel, timeout)
        return capped(result, self.max_chars, time.monotonic() - start)

    def _run(
        self, name: str, arguments: object, cancel: threading.Event, timeout: float
    ) -> ToolResult:
        if not isinstance(arguments, dict):
            return ToolResult(f"{name}: the arguments must be a JSON object", is_error=True)
        if cancel.is_set():
            return ToolResult(f"{name}: cancelled", is_error=True)
        spec = self._builtins.get(name)
        if spec is not None:
            missing = [k for k in spec.parameters.get("required", []) if k not in arguments]
            if missing:
                return ToolResult(f"{name}: missing argument {missing[0]!r}", is_error=True)
            runner = BuiltinRunner(
                self.folders, self.python_limits, lambda: self.scratch_dir, self._closing
            )
            try:
                return runner.run(name, arguments, cancel=cancel, timeout=timeout)
            except Exception as e:  # a bug in a built-in: logged, and the model told
                log.exception("built-in tool %s failed", name)
                return ToolResult(f"{name}: internal error: {type(e).__name__}", is_error=True)
        if SEPARATOR in name and name.partition(SEPARATOR)[0] in self._mcp.configs:
            try:
                return self._mcp.call(name, arguments, cancel=cancel, timeout=timeout)
            except Exception as e:  # a bug here or in the SDK: logged, and the model told
                log.exception("MCP tool %s failed", name)
                return ToolResult(f"{name}: internal error: {type(e).__name__}", is_error=True)
        return ToolResult(f"no tool named {name!r}", is_error=True)

    def close(self) -> None:
        """Stop the MCP servers and any running Python child; remove a scratch folder the
        registry made itself."""
        self._closing.set()
        self._mcp.close()
        if self._own_scratch and self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self) -> ToolRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
