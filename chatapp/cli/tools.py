"""`chatapp tools`: every tool a chat can offer the model (built-in and MCP), with its
argument schema and default permission. No Qt.

MCP servers from mcp.json in the config folder are started to list their tools and
stopped again; one that cannot start is named on stderr and the rest are still listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chatapp.paths import app_paths
from chatapp.tools.mcp_config import config_path
from chatapp.tools.registry import ToolRegistry, ToolSpec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tools",
        help="list the tools a model may call (built-in and MCP servers)",
        description="List every tool a chat can offer the model: the built-ins and the tools "
        f"of the MCP servers in {config_path(app_paths().config)}, each with its arguments "
        "and default permission (always, ask or never).",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list (schemas in full)")
    p.add_argument(
        "--no-mcp", action="store_true", help="list only the built-ins: start no MCP server"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=20.0,
        metavar="S",
        help="how long an MCP server may take to start (default 20 s)",
    )
    p.add_argument(
        "--run",
        metavar="NAME",
        help="call one tool instead of listing (arguments from --args); exit 1 if it fails",
    )
    p.add_argument("--args", default="{}", metavar="JSON", help="the tool's arguments for --run")
    p.add_argument(
        "--folder",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="grant the file tools this folder (for --run; may be repeated)",
    )
    p.set_defaults(func=tools)


def tools(args: argparse.Namespace) -> int:
    registry = ToolRegistry(
        app_paths().config, granted_folders=args.folder, mcp_start_timeout=args.timeout
    )
    try:
        if args.run:
            return _run(registry, args.run, args.args)
        specs = registry.builtins() if args.no_mcp else registry.specs()
        for problem in registry.problems:
            print(f"chatapp: warning: {problem}", file=sys.stderr)
        if args.json:
            print(json.dumps([_as_json(s) for s in specs], indent=2, ensure_ascii=False))
        else:
            for i, s in enumerate(specs):
                if i:
                    print()
                print(_as_text(s))
        return 0
    finally:
        registry.close()


def _run(registry: ToolRegistry, name: str, raw: str) -> int:
    import threading

    try:
        arguments = json.loads(raw)
    except json.JSONDecodeError as e:
        print(f"chatapp: error: --args is not JSON: {e.msg}", file=sys.stderr)
        return 2
    result = registry.run(name, arguments, cancel=threading.Event())
    print(result.content)
    return 1 if result.is_error else 0


def _as_json(s: ToolSpec) -> dict[str, Any]:
    return {
        "name": s.name,
        "source": s.source,
        "default_permission": s.default_permission,
        "description": s.description,
        "parameters": s.parameters,
    }


def _as_text(s: ToolSpec) -> str:
    source = "built-in" if s.source == "builtin" else s.source.replace("mcp:", "MCP server ")
    lines = [f"{s.name}  ({source}; default permission: {s.default_permission})"]
    if s.description:
        lines.append(f"    {s.description}")
    props = s.parameters.get("properties") or {}
    required = set(s.parameters.get("required") or [])
    if not props:
        lines.append("    no arguments")
    for key, schema in props.items():
        schema = schema if isinstance(schema, dict) else {}
        kind = schema.get("type", "any")
        kind = "|".join(kind) if isinstance(kind, list) else str(kind)
        flag = "required" if key in required else "optional"
        desc = schema.get("description") or schema.get("title") or ""
        default = f", default {json.dumps(schema['default'])}" if "default" in schema else ""
        lines.append(f"    {key}: {kind} ({flag}{default})" + (f"  {desc}" if desc else ""))
    return "\n".join(lines)
