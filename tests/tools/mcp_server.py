"""A real MCP server for the tests, written with the official SDK (FastMCP).

python mcp_server.py stdio          # over stdin/stdout
python mcp_server.py http PORT      # streamable HTTP on 127.0.0.1:PORT/mcp
python mcp_server.py garbage        # prints nonsense instead of speaking MCP
python mcp_server.py silent         # never answers (a server that hangs at start)
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def build(port: int = 0) -> Any:
    import anyio
    from mcp.server.fastmcp import FastMCP  # not for the garbage and silent modes: quick

    server = FastMCP("testserver", host="127.0.0.1", port=port or 8000, log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> str:
        """Add two integers."""
        return str(a + b)

    @server.tool()
    def shout(text: str) -> str:
        """The text in capitals."""
        return text.upper()

    @server.tool()
    async def hang(seconds: float = 3600) -> str:
        """Sleeps (a tool that hangs)."""
        await anyio.sleep(seconds)
        return "woke up"

    @server.tool()
    def die() -> str:
        """The server process exits in the middle of the call."""
        sys.stderr.write("testserver: dying on purpose\n")
        sys.stderr.flush()
        os._exit(3)

    @server.tool()
    def pid() -> str:
        """The server's process id."""
        return str(os.getpid())

    @server.tool()
    def fail() -> str:
        """Raises an error the server reports."""
        raise ValueError("this tool always fails")

    return server


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "garbage":
        for _ in range(1000):
            print("this is not JSON-RPC", flush=True)
            time.sleep(0.05)
        return
    if mode == "silent":
        time.sleep(3600)
        return
    if mode == "http":
        build(int(sys.argv[2])).run(transport="streamable-http")
    else:
        build().run()


if __name__ == "__main__":
    main()
