"""`chatapp tools` lists the built-ins and the tools of an MCP server configured in
mcp.json under CHATAPP_HOME's config folder, as text and as JSON; --run calls one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chatapp.paths import app_paths

RUN_CLI = Path(__file__).parents[1] / "hub" / "run_cli.py"
SERVER = str(Path(__file__).with_name("mcp_server.py"))


def chatapp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RUN_CLI), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def configure(servers: dict) -> None:
    config = app_paths().ensure().config
    (config / "mcp.json").write_text(json.dumps({"mcpServers": servers}))


def test_lists_builtins_and_an_mcp_server_as_json() -> None:
    configure(
        {
            "test": {"command": sys.executable, "args": [SERVER]},
            "broken": {"command": "/no/such/program"},
        }
    )
    r = chatapp("tools", "--json")
    assert r.returncode == 0, r.stderr
    tools = {t["name"]: t for t in json.loads(r.stdout)}
    assert tools["calculator"]["source"] == "builtin"
    assert tools["calculator"]["default_permission"] == "always"
    assert tools["python"]["default_permission"] == "ask"
    assert tools["test__add"] == {
        "name": "test__add",
        "source": "mcp:test",
        "default_permission": "ask",
        "description": "Add two integers.",
        "parameters": tools["test__add"]["parameters"],
    }
    assert set(tools["test__add"]["parameters"]["properties"]) == {"a", "b"}
    assert not any(n.startswith("broken__") for n in tools)
    assert "chatapp: warning: MCP server 'broken' could not start: cannot run" in r.stderr


def test_text_listing_and_a_call() -> None:
    configure({"test": {"command": sys.executable, "args": [SERVER]}})
    r = chatapp("tools")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "calculator  (built-in; default permission: always)" in out
    assert "    expression: string (required)" in out
    assert "test__shout  (MCP server test; default permission: ask)" in out
    assert "    text: string (required)" in out
    assert "current_time  (built-in; default permission: always)" in out
    r = chatapp("tools", "--no-mcp")
    assert "test__shout" not in r.stdout and "calculator" in r.stdout
    r = chatapp("tools", "--run", "test__add", "--args", '{"a": 1, "b": 2}')
    assert (r.returncode, r.stdout) == (0, "3\n")
    r = chatapp("tools", "--run", "calculator", "--args", '{"expression": "1/0"}')
    assert (r.returncode, r.stdout) == (1, "calculator: division by zero\n")
