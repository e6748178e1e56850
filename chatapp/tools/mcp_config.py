"""mcp.json: the MCP servers the app may start, in the `mcpServers` format that
Claude Desktop, Cursor and LM Studio use.

    {"mcpServers": {
        "files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
        "web":   {"url": "http://127.0.0.1:8000/mcp", "headers": {"Authorization": "Bearer ..."}}
    }}

`command` (with `args`, `env`, `cwd`) starts a stdio server; `url` speaks streamable HTTP
(`"type": "sse"` for the older SSE transport). `"disabled": true` leaves a server out.
A bad entry is reported in one line and the others still load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_NAME = "mcp.json"
_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ServerConfig:
    name: str  # as used in tool names: letters, digits, '_' and '-'
    transport: str  # "stdio" | "http" | "sse"
    command: str = ""
    args: tuple[str, ...] = ()
    env: dict[str, str] | None = field(default=None, hash=False)
    cwd: str | None = None
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class McpConfig:
    servers: tuple[ServerConfig, ...]
    problems: tuple[str, ...]  # one line each, for the CLI and the log


def config_path(config_dir: Path) -> Path:
    return config_dir / CONFIG_NAME


def load_config(config_dir: Path) -> McpConfig:
    path = config_path(config_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return McpConfig((), ())
    except (OSError, UnicodeDecodeError) as e:
        return McpConfig((), (f"{path}: cannot be read: {e}",))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return McpConfig((), (f"{path}: not valid JSON (line {e.lineno}: {e.msg})",))
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict):
        return McpConfig((), (f'{path}: no "mcpServers" object',))
    out: list[ServerConfig] = []
    problems: list[str] = []
    seen: set[str] = set()
    for raw_name, entry in servers.items():
        # "__" separates the server from the tool in a tool's name: never inside a server's
        name = re.sub("_{2,}", "_", _BAD_NAME.sub("_", str(raw_name)))[:32] or "server"
        try:
            cfg = _server(name, entry)
        except ValueError as e:
            problems.append(f"{path}: server {raw_name!r}: {e}")
            continue
        if cfg is None:
            continue
        if name in seen:
            problems.append(f"{path}: server {raw_name!r}: another server has the name {name!r}")
            continue
        seen.add(name)
        out.append(cfg)
    return McpConfig(tuple(out), tuple(problems))


def _server(name: str, entry: object) -> ServerConfig | None:
    if not isinstance(entry, dict):
        raise ValueError("must be an object with a command or a url")
    if entry.get("disabled") is True:
        return None
    kind = str(entry.get("type") or entry.get("transport") or "").lower()
    url = entry.get("url") or entry.get("serverUrl")
    command = entry.get("command")
    if url and not command:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {url!r}")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object")
        transport = "sse" if kind == "sse" else "http"
        return ServerConfig(
            name, transport, url=url, headers={str(k): str(v) for k, v in headers.items()}
        )
    if not isinstance(command, str) or not command.strip():
        raise ValueError("needs a command (stdio) or a url (HTTP)")
    args = entry.get("args") or []
    if not isinstance(args, list):
        raise ValueError("args must be a list of strings")
    env = entry.get("env")
    if env is not None and not isinstance(env, dict):
        raise ValueError("env must be an object")
    cwd = entry.get("cwd")
    return ServerConfig(
        name,
        "stdio",
        command=command,
        args=tuple(str(a) for a in args),
        env={str(k): str(v) for k, v in env.items()} if env else None,
        cwd=str(cwd) if cwd else None,
    )
