"""MCP servers from mcp.json, through the official SDK: a real FastMCP server over stdio
and over streamable HTTP on 127.0.0.1 is listed and called; one that hangs, dies in the
middle of a call, speaks garbage or cannot start gives one clear error, never a hang."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatapp.tools.registry import ToolRegistry, ToolResult

SERVER = str(Path(__file__).with_name("mcp_server.py"))


def write_config(config_dir: Path, servers: dict[str, dict]) -> Path:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "mcp.json").write_text(json.dumps({"mcpServers": servers}))
    return config_dir


def stdio(*args: str) -> dict:
    return {"command": sys.executable, "args": [SERVER, *args]}


def call(reg: ToolRegistry, name: str, timeout: float = 30.0, **args: object) -> ToolResult:
    return reg.run(name, dict(args), cancel=threading.Event(), timeout=timeout)


@pytest.fixture
def stdio_registry(tmp_path: Path):
    with ToolRegistry(write_config(tmp_path / "config", {"test": stdio()})) as reg:
        yield reg


def test_a_stdio_server_is_listed_with_schemas_and_called(stdio_registry: ToolRegistry) -> None:
    specs = {s.name: s for s in stdio_registry.specs()}
    assert "calculator" in specs  # the built-ins come too
    add = specs["test__add"]
    assert add.source == "mcp:test" and add.default_permission == "ask"
    assert add.description == "Add two integers."
    assert add.parameters["type"] == "object"
    assert set(add.parameters["properties"]) == {"a", "b"}
    assert set(add.parameters["required"]) == {"a", "b"}
    assert add.openai()["function"]["name"] == "test__add"
    r = call(stdio_registry, "test__add", a=2, b=40)
    assert (r.content, r.is_error) == ("42", False)
    r = call(stdio_registry, "test__shout", text="quiet")
    assert r.content == "QUIET"


def test_a_tools_own_error_is_an_error_result(stdio_registry: ToolRegistry) -> None:
    r = call(stdio_registry, "test__fail")
    assert r.is_error and "this tool always fails" in r.content
    r = call(stdio_registry, "test__nosuchtool")
    assert r.is_error and "has no tool 'nosuchtool'" in r.content


def test_servers_start_only_when_needed_and_stop_on_close(tmp_path: Path) -> None:
    reg = ToolRegistry(write_config(tmp_path / "config", {"test": stdio()}))
    assert [s.name for s in reg.specs(["calculator"])] == ["calculator"]
    assert reg._mcp._loop is None  # no MCP tool asked for: nothing started
    pid = int(call(reg, "test__pid").content)
    os.kill(pid, 0)  # it runs
    reg.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_hanging_call_gives_an_error_and_the_server_is_started_again(
    stdio_registry: ToolRegistry,
) -> None:
    first = call(stdio_registry, "test__pid")
    r = call(stdio_registry, "test__hang", timeout=1)
    assert r.is_error
    assert r.content == "MCP server 'test' did not answer within 1 s"
    # the stuck server is replaced: the next call works
    assert call(stdio_registry, "test__add", a=1, b=1).content == "2"
    assert call(stdio_registry, "test__pid").content != first.content


def test_a_server_that_dies_mid_call(stdio_registry: ToolRegistry) -> None:
    r = call(stdio_registry, "test__die", timeout=60)
    assert r.is_error
    assert r.content == "MCP server 'test' stopped during the call: testserver: dying on purpose"
    assert call(stdio_registry, "test__add", a=3, b=4).content == "7"


def test_servers_that_cannot_start(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config",
        {"garbage": stdio("garbage"), "missing": {"command": str(tmp_path / "no-such-program")}},
    )
    with ToolRegistry(config, mcp_start_timeout=60) as reg:
        names = [s.name for s in reg.specs()]
        assert "calculator" in names
        assert not any(n.startswith(("garbage__", "missing__")) for n in names)
        problems = "\n".join(reg.problems)
        assert "MCP server 'garbage' could not start: it does not speak MCP" in problems
        assert "MCP server 'missing' could not start: cannot run" in problems
        assert len(reg.problems) == 2


def test_a_server_that_never_answers(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config", {"silent": stdio("silent")})
    with ToolRegistry(config, mcp_start_timeout=2) as reg:
        assert [s.source for s in reg.specs()] == ["builtin"] * 6
        assert reg.problems == ["MCP server 'silent' did not start within 2 s"]
        # a call to a server that failed gives its problem at once (no new start)
        r = call(reg, "silent__anything", timeout=5)
        assert r.is_error and r.content == "MCP server 'silent' did not start within 2 s"


def test_names_are_what_openai_style_function_names_allow(tmp_path: Path) -> None:
    from chatapp.tools.mcp_client import offered_name

    assert offered_name("srv", "files.read/all") == "srv__files_read_all"
    assert len(offered_name("s", "x" * 100)) == 64
    config = write_config(tmp_path / "config", {"my server__2": stdio()})
    with ToolRegistry(config) as reg:
        assert reg.mcp_config.servers[0].name == "my_server_2"  # "__" only separates
        assert call(reg, "my_server_2__add", a=1, b=1).content == "2"


def test_a_bad_mcp_json_is_one_line_and_the_builtins_still_work(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "mcp.json").write_text("{not json")
    with ToolRegistry(config) as reg:
        assert reg.problems == [
            f"{config / 'mcp.json'}: not valid JSON (line 1: Expecting property name enclosed in double quotes)"
        ]
        assert "calculator" in [s.name for s in reg.specs()]
    (config / "mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "a": {"args": ["x"]},
                    "b": {"url": "ftp://x"},
                    "c": {"command": "x", "disabled": True},
                }
            }
        )
    )
    with ToolRegistry(config) as reg:
        assert [p.split(": ", 1)[1] for p in reg.problems] == [
            "server 'a': needs a command (stdio) or a url (HTTP)",
            "server 'b': url must start with http:// or https://, not 'ftp://x'",
        ]
        assert reg.mcp_config.servers == ()


@pytest.fixture
def http_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "the test MCP server exited"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait(30)


def test_a_streamable_http_server_is_listed_and_called(tmp_path: Path, http_server: str) -> None:
    config = write_config(tmp_path / "config", {"web": {"url": http_server}})
    with ToolRegistry(config) as reg:
        specs = {s.name: s for s in reg.specs()}
        assert specs["web__add"].source == "mcp:web"
        assert set(specs["web__shout"].parameters["properties"]) == {"text"}
        assert call(reg, "web__add", a=20, b=22).content == "42"
        r = call(reg, "web__hang", timeout=1)
        assert r.is_error and r.content == "MCP server 'web' did not answer within 1 s"


def test_an_http_server_that_is_not_there(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path / "config", {"gone": {"url": f"http://127.0.0.1:{port}/mcp"}})
    with ToolRegistry(config, mcp_start_timeout=10) as reg:
        r = call(reg, "gone__add", a=1, b=2)
    assert r.is_error
    assert r.content.startswith("MCP server 'gone' could not start: ")
    assert "\n" not in r.content
