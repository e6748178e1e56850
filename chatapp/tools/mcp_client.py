"""MCP servers through the official SDK, behind a synchronous face.

The SDK is async: one asyncio loop runs on a dedicated thread, and callers submit
coroutines to it (asyncio.run_coroutine_threadsafe) and wait with a deadline, so a
server that hangs, dies or answers garbage gives one clear error, never a hang. Each
server has an owner task that enters the transport and the session and stays in them
until close(): anyio's cancel scopes must be left by the task that entered them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import IO, Any, TypeVar

from chatapp.tools.mcp_config import ServerConfig
from chatapp.tools.spec import ToolResult, ToolSpec

log = logging.getLogger(__name__)

T = TypeVar("T")
SEPARATOR = "__"
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def offered_name(server: str, tool: str) -> str:
    """The name the model sees: `<server>__<tool>`, in the characters and the 64-character
    length that OpenAI-style function names allow (MCP tool names may have '.' or '/')."""
    return f"{server}{SEPARATOR}{_BAD_CHARS.sub('_', tool)}"[:64]


class McpError(Exception):
    """One line for the model and the user: which server, what went wrong."""


class _Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.session: Any = None
        self.tools: list[Any] = []
        self.stop: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None
        self.errlog: IO[bytes] | None = None
        self.dead = False

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        try:
            self.errlog.seek(0)
            lines = self.errlog.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    async def start(self, ready: asyncio.Future[None]) -> None:
        """The owner task: connect, initialize, list tools, then wait for stop."""
        from mcp import ClientSession

        self.stop = asyncio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport())

                async def on_message(message: Any) -> None:
                    # the transport hands over what it could not parse: garbage, not MCP
                    if isinstance(message, Exception) and not ready.done():
                        first = str(message).strip().splitlines()
                        what = first[0][:200] if first else type(message).__name__
                        ready.set_exception(McpError(f"it does not speak MCP ({what})"))

                session = await stack.enter_async_context(
                    ClientSession(read, write, message_handler=on_message)
                )
                await session.initialize()
                tools: list[Any] = []
                cursor = None
                while True:
                    page = (
                        await session.list_tools(cursor) if cursor else await session.list_tools()
                    )
                    tools.extend(page.tools)
                    cursor = page.nextCursor
                    if not cursor or len(tools) > 1000:
                        break
                self.session, self.tools = session, tools
                if not ready.done():
                    ready.set_result(None)
                await self.stop.wait()
        except BaseException as e:
            self.dead = True
            if not ready.done():
                ready.set_exception(e if isinstance(e, Exception) else McpError("stopped"))
            if not isinstance(e, Exception):
                raise
            log.info("MCP server %s ended: %s", self.config.name, e)
        finally:
            self.session = None
            self.dead = True

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        cfg = self.config
        if cfg.transport == "stdio":
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            self.errlog = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
            params = StdioServerParameters(
                command=cfg.command, args=list(cfg.args), env=cfg.env, cwd=cfg.cwd
            )
            return _two(stdio_client(params, errlog=self.errlog))  # type: ignore[arg-type]
        if cfg.transport == "sse":
            from mcp.client.sse import sse_client

            return _two(sse_client(cfg.url, headers=cfg.headers or None))
        return _http(cfg.url, cfg.headers)


@contextlib.asynccontextmanager
async def _two(cm: contextlib.AbstractAsyncContextManager[Any]) -> AsyncIterator[tuple[Any, Any]]:
    async with cm as streams:
        yield streams[0], streams[1]


@contextlib.asynccontextmanager
async def _http(url: str, headers: dict[str, str]) -> AsyncIterator[tuple[Any, Any]]:
    from mcp.client import streamable_http as sh
    from mcp.shared._httpx_utils import create_mcp_http_client

    if hasattr(sh, "streamable_http_client"):
        async with (
            create_mcp_http_client(headers=headers or None) as client,
            sh.streamable_http_client(url, http_client=client) as streams,
        ):
            yield streams[0], streams[1]
    else:  # mcp < 1.24
        async with sh.streamablehttp_client(url, headers=headers or None) as streams:
            yield streams[0], streams[1]


class McpHub:
    """The configured servers, started when first needed, stopped by close()."""

    def __init__(self, servers: tuple[ServerConfig, ...], *, start_timeout: float = 20.0) -> None:
        self.configs = {s.name: s for s in servers}
        self.start_timeout = start_timeout
        self.problems: dict[str, str] = {}  # server name -> why it is not available
        self._servers: dict[str, _Server] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the loop, _servers and _closed
        self._starting = {name: threading.Lock() for name in self.configs}  # one start at a time
        self._closed = False

    # -- the loop thread --------------------------------------------------------------

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise McpError("the tools are closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                t = threading.Thread(target=loop.run_forever, name="mcp-client", daemon=True)
                t.start()
                self._loop, self._thread = loop, t
            return self._loop

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())

    # -- servers ------------------------------------------------------------------------

    def _server(self, name: str) -> _Server:
        """A running server (started now if needed); McpError when it cannot be. A server
        that failed to start stays failed (its problem is the answer) until
        `problems` is cleared."""
        cfg = self.configs.get(name)
        if cfg is None:
            raise McpError(f"no MCP server named {name!r} in mcp.json")
        with self._starting[name]:
            if self._closed:
                raise McpError("the tools are closed")
            srv = self._servers.get(name)
            if srv is not None and not srv.dead:
                return srv
            if name in self.problems:
                raise McpError(self.problems[name])
            if srv is not None:  # it died: end its owner task before starting it again
                self._stop_server(srv)
            srv = _Server(cfg)
            with self._lock:
                self._servers[name] = srv
            fut = self._submit(self._start(srv))
            try:
                fut.result(self.start_timeout)
            except concurrent.futures.TimeoutError:
                fut.cancel()
                self._stop_server(srv)
                msg = f"MCP server {name!r} did not start within {self.start_timeout:g} s"
                self.problems[name] = msg
                raise McpError(msg) from None
            except Exception as e:  # a boundary: a misbehaving server is one tool error  # noqa: BLE001
                msg = f"MCP server {name!r} could not start: {_describe(e, srv)}"
                self._stop_server(srv)
                self.problems[name] = msg
                raise McpError(msg) from None
            self.problems.pop(name, None)
            return srv

    async def _start(self, srv: _Server) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        srv.task = asyncio.create_task(srv.start(ready), name=f"mcp-{srv.config.name}")
        await ready

    def _stop_server(self, srv: _Server, wait: float = 5.0) -> None:
        loop = self._loop
        if loop is None or srv.task is None:
            if srv.errlog is not None:
                srv.errlog.close()
            return

        async def stop() -> None:
            task = srv.task
            if task is None or task.done():
                return
            if srv.session is None or srv.stop is None:  # still starting: nothing to finish
                task.cancel()
            else:
                srv.stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), wait)
            except Exception:  # a boundary: a misbehaving server is one tool error  # noqa: BLE001
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 3.0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(wait + 5.0)
        srv.dead = True
        if srv.errlog is not None:
            srv.errlog.close()

    # -- tools --------------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        """The tools of every configured server that starts; the others are in problems."""
        out: list[ToolSpec] = []

        def start(name: str) -> _Server | None:
            try:
                return self._server(name)
            except McpError as e:
                log.warning("%s", e)
                return None

        names = list(self.configs)
        if not names:
            return out
        # all at once: listing waits for the slowest server, not for the sum of them
        with concurrent.futures.ThreadPoolExecutor(min(len(names), 8), "mcp-start") as pool:
            started = list(pool.map(start, names))
        for name, srv in zip(names, started):
            if srv is None:
                continue
            for tool in srv.tools:
                full = offered_name(name, tool.name)
                if any(s.name == full for s in out):
                    log.warning("MCP server %s: a second tool named %s is left out", name, full)
                    continue
                schema = tool.inputSchema if isinstance(tool.inputSchema, dict) else {}
                if schema.get("type") != "object":
                    schema = {"properties": {}, **schema, "type": "object"}
                out.append(
                    ToolSpec(
                        name=full,
                        description=(tool.description or tool.title or tool.name or "").strip(),
                        parameters=schema,
                        source=f"mcp:{name}",
                        default_permission="ask",
                    )
                )
        return out

    def call(
        self, full_name: str, arguments: dict[str, Any], *, cancel: threading.Event, timeout: float
    ) -> ToolResult:
        server, _, short = full_name.partition(SEPARATOR)
        try:
            srv = self._server(server)
        except McpError as e:
            return ToolResult(str(e), is_error=True)
        tool = next((t.name for t in srv.tools if offered_name(server, t.name) == full_name), None)
        if tool is None:
            return ToolResult(f"MCP server {server!r} has no tool {short!r}", is_error=True)
        session = srv.session
        if session is None:
            return ToolResult(f"MCP server {server!r} is not running", is_error=True)
        fut = self._submit(
            session.call_tool(tool, arguments, read_timeout_seconds=timedelta(seconds=timeout))
        )
        deadline = time.monotonic() + timeout + 2.0  # the SDK's own timeout comes first
        while True:
            try:
                result = fut.result(0.05)
                break
            except concurrent.futures.TimeoutError:
                if self._closed:
                    fut.cancel()
                    return ToolResult(
                        f"{full_name}: cancelled (the tools were closed)", is_error=True
                    )
                if cancel.is_set():
                    fut.cancel()
                    return ToolResult(f"{full_name}: cancelled", is_error=True)
                if time.monotonic() >= deadline:
                    fut.cancel()
                    srv.dead = True  # it may be stuck: started afresh on the next call
                    return ToolResult(_timeout(server, timeout), is_error=True)
            except concurrent.futures.CancelledError:
                return ToolResult(f"{full_name}: cancelled", is_error=True)
            except Exception as e:  # a boundary: a misbehaving server is one tool error  # noqa: BLE001
                return ToolResult(self._failed(srv, e, timeout), is_error=True)
        return _result(result)

    def _failed(self, srv: _Server, e: BaseException, timeout: float) -> str:
        name = srv.config.name
        text = _describe(e, srv)
        if "timed out" in text.lower() or "timeout" in text.lower():
            srv.dead = True  # it may be stuck: started afresh on the next call
            return _timeout(name, timeout)
        if "connection closed" in text.lower() or srv.dead:
            srv.dead = True  # started again on the next call
            tail = srv.stderr_tail()
            return f"MCP server {name!r} stopped during the call" + (f": {tail}" if tail else "")
        return f"MCP server {name!r} failed: {text}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            servers = list(self._servers.values())
        for srv in servers:
            self._stop_server(srv)
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            if not thread.is_alive():
                loop.close()
        self._loop = self._thread = None


def _timeout(server: str, timeout: float) -> str:
    return f"MCP server {server!r} did not answer within {timeout:g} s"


def _describe(e: BaseException, srv: _Server) -> str:
    inner = getattr(e, "exceptions", None)  # anyio task groups wrap what went wrong
    if inner:
        return _describe(inner[0], srv)
    msg = str(e).strip() or type(e).__name__
    if isinstance(e, (FileNotFoundError, PermissionError)) and srv.config.transport == "stdio":
        msg = f"cannot run {srv.config.command!r}: {e.strerror or e}"
    tail = srv.stderr_tail()
    if tail and tail not in msg:
        msg = f"{msg} (it said: {tail})"
    return msg.splitlines()[0] if msg else type(e).__name__


def _result(result: Any) -> ToolResult:
    parts: list[str] = []
    for c in getattr(result, "content", None) or []:
        kind = getattr(c, "type", "")
        if kind == "text":
            parts.append(c.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(c, 'mimeType', '?')}, not shown]")
        elif kind == "resource":
            res = c.resource
            parts.append(getattr(res, "text", None) or f"[resource {res.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(c, 'uri', '')}]")
    if not parts and getattr(result, "structuredContent", None) is not None:
        import json

        parts.append(json.dumps(result.structuredContent, ensure_ascii=False))
    text = "\n".join(parts) if parts else "[no content]"
    return ToolResult(text, is_error=bool(getattr(result, "isError", False)))
