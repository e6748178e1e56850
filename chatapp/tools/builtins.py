"""The built-in tools: their specs (what the model is offered) and how each one runs."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chatapp.tools import files
from chatapp.tools.calculator import MAX_BITS, CalcError, calculate
from chatapp.tools.python_tool import PythonLimits, describe_result, network_isolation, run_python
from chatapp.tools.spec import ToolResult, ToolSpec

CALCULATOR = "calculator"
PYTHON = "python"
READ_FILE = "read_file"
LIST_FILES = "list_files"
SEARCH_FILES = "search_files"
CURRENT_TIME = "current_time"


def _obj(properties: dict, required: list[str]) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def builtin_specs(folders: files.GrantedFolders, limits: PythonLimits) -> list[ToolSpec]:
    granted = folders.describe()
    net = (
        "no network (a separate network namespace)"
        if network_isolation() == "namespace"
        else "no sockets"
    )
    return [
        ToolSpec(
            CALCULATOR,
            "Evaluate an arithmetic expression exactly: integers of any size, fractions and "
            "decimals (0.1 + 0.2 is exactly 0.3; 1/3 stays a fraction). Operators + - * / // "
            f"% ** and parentheses; no functions or names. Results up to {MAX_BITS} bits.",
            _obj(
                {"expression": {"type": "string", "description": "e.g. (2**100 + 1) / 3"}},
                ["expression"],
            ),
            "builtin",
            "always",
        ),
        ToolSpec(
            PYTHON,
            "Run Python 3 code in a separate process and return what it prints (the value of "
            f"a last bare expression is printed too). Limits: {limits.cpu_seconds} s CPU, "
            f"{limits.memory_mb} MB memory, {limits.output_bytes // 1000} KB output; {net}; "
            "no subprocesses; files only in its own scratch folder (the working folder). "
            "Each call is a fresh interpreter: variables do not persist, files do.",
            _obj({"code": {"type": "string", "description": "Python source to run"}}, ["code"]),
            "builtin",
            "ask",
        ),
        ToolSpec(
            READ_FILE,
            f"Read a text file in the folders the user granted ({granted}). Returns up to "
            f"{files.READ_BYTES // 1000} KB from `offset` (bytes).",
            _obj(
                {
                    "path": {
                        "type": "string",
                        "description": "absolute, or relative to a granted folder",
                    },
                    "offset": {"type": "integer", "minimum": 0, "default": 0},
                },
                ["path"],
            ),
            "builtin",
            "ask",
        ),
        ToolSpec(
            LIST_FILES,
            f"List a folder inside the granted folders ({granted}): names, sizes, '/' after "
            "folders. An empty path lists the granted folder.",
            _obj(
                {
                    "path": {"type": "string", "default": ""},
                    "recursive": {"type": "boolean", "default": False},
                },
                [],
            ),
            "builtin",
            "ask",
        ),
        ToolSpec(
            SEARCH_FILES,
            f"Find lines containing a text (case-insensitive) in the granted folders ({granted}).",
            _obj(
                {
                    "query": {"type": "string"},
                    "path": {
                        "type": "string",
                        "description": "a folder or file to search in",
                        "default": "",
                    },
                    "glob": {
                        "type": "string",
                        "description": "file names to search, e.g. *.py",
                        "default": "*",
                    },
                },
                ["query"],
            ),
            "builtin",
            "ask",
        ),
        ToolSpec(
            CURRENT_TIME,
            "The current date and time: local, UTC, and optionally in an IANA time zone.",
            _obj({"timezone": {"type": "string", "description": "e.g. Europe/Paris"}}, []),
            "builtin",
            "always",
        ),
    ]


@dataclass
class BuiltinRunner:
    folders: files.GrantedFolders
    limits: PythonLimits
    scratch: Callable[[], Path]  # made when the Python tool first needs it
    closing: threading.Event | None = None  # set by ToolRegistry.close(): stop a running child

    def run(self, name: str, args: dict, *, cancel: threading.Event, timeout: float) -> ToolResult:
        try:
            if name == CALCULATOR:
                return ToolResult(calculate(_str(args, "expression")))
            if name == PYTHON:
                if not python_available():
                    return ToolResult("python: not available on this system", is_error=True)
                r = run_python(
                    _str(args, "code"),
                    self.scratch(),
                    self.limits,
                    timeout=timeout,
                    cancel=cancel,
                    closing=self.closing,
                )
                return ToolResult(describe_result(r), is_error=not r.ok, truncated=r.truncated)
            if name == READ_FILE:
                text, more = files.read_file(
                    self.folders, _str(args, "path"), int(args.get("offset") or 0)
                )
                return ToolResult(text, truncated=more)
            if name == LIST_FILES:
                text, more = files.list_files(
                    self.folders, str(args.get("path") or ""), bool(args.get("recursive"))
                )
                return ToolResult(text, truncated=more)
            if name == SEARCH_FILES:
                text, more = files.search_files(
                    self.folders,
                    _str(args, "query"),
                    str(args.get("path") or ""),
                    str(args.get("glob") or "*"),
                )
                return ToolResult(text, truncated=more)
            if name == CURRENT_TIME:
                return ToolResult(current_time(args.get("timezone")))
        except (CalcError, files.FileToolError) as e:
            return ToolResult(f"{name}: {e}", is_error=True)
        except (TypeError, ValueError) as e:
            return ToolResult(f"{name}: bad arguments: {e}", is_error=True)
        except OSError as e:
            return ToolResult(f"{name}: {e.strerror or e}", is_error=True)
        raise KeyError(name)


def python_available() -> bool:
    """The Python tool needs POSIX rlimits and process groups: not on Windows."""
    return sys.platform != "win32"


def current_time(zone: object = None) -> str:
    now = datetime.now(timezone.utc)
    local = now.astimezone()
    lines = [
        f"Local: {local.strftime('%A %Y-%m-%d %H:%M:%S')} ({local.tzname()}, UTC{local.strftime('%z')})",
        f"UTC: {now.strftime('%Y-%m-%d %H:%M:%S')}",
    ]
    if zone:
        try:
            there = now.astimezone(ZoneInfo(str(zone)))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {zone!r} (use an IANA name like Europe/Paris)"
            ) from None
        lines.append(
            f"{zone}: {there.strftime('%A %Y-%m-%d %H:%M:%S')} (UTC{there.strftime('%z')})"
        )
    return "\n".join(lines)


def _str(args: dict, key: str) -> str:
    v = args.get(key)
    if not isinstance(v, str):
        raise ValueError(f"'{key}' must be a string")
    return v
