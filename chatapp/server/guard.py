"""What a web page must not do to a local server: the checks before any route.

A page in a browser can send requests to 127.0.0.1 but cannot read the answers of a
cross-origin request without CORS, so a key-less server must refuse what such a page
can send without asking first:

- a `Host` other than the names the server is bound to (DNS rebinding: attacker.example
  resolved to 127.0.0.1 makes the browser treat the server as the page's own origin);
- a POST whose body is not JSON (`text/plain`, form posts: a browser sends those
  cross-origin without a CORS preflight);
- any request with an `Origin` that CORS does not allow (only browsers send one).
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from chatapp.server.errors import ApiError

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def host_name(header: str) -> str:
    """The name in a Host header, without the port or a trailing dot; IPv6 without
    brackets."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.split(":")[0]
    return header.rstrip(".")


def allow_host(hosts: set[str], host: str) -> None:
    """Add a name the server answers to (a wildcard address names none)."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host not in WILDCARDS:
        hosts.add(host)


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


class GuardMiddleware:
    """Refuses foreign Host headers, non-JSON POST bodies and disallowed origins with
    OpenAI-shaped errors. `hosts`: names the server answers to besides loopback (the
    configured --host); the address a connection came in on is always accepted."""

    def __init__(self, app: ASGIApp, hosts: set[str], origins: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = hosts  # shared: ServerThread adds the host it binds (allow_host)
        self.origins = frozenset(o.rstrip("/") for o in origins)
        self.any_origin = "*" in self.origins

    def _host_ok(self, scope: Scope, headers: Headers) -> bool:
        if "host" not in headers:
            return True  # an HTTP/1.0 tool; a browser always names the host
        name = host_name(headers["host"])
        if name in LOOPBACK_NAMES or name in self.hosts:
            return True
        server = scope.get("server")  # the local address this connection reached
        return server is not None and _same_address(name, str(server[0]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        error: ApiError | None = None
        origin = headers.get("origin")
        if not self._host_ok(scope, headers):
            error = ApiError(
                403,
                f"Host '{headers.get('host', '')}' is not a name this server answers to.",
                code="host_not_allowed",
            )
        elif origin is not None and not (self.any_origin or origin.rstrip("/") in self.origins):
            error = ApiError(
                403,
                f"Requests from the web page at {origin} are not allowed "
                "(allow it with --cors-origin).",
                code="origin_not_allowed",
            )
        elif scope["method"] == "POST":
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                error = ApiError(
                    415,
                    f"The request body must be JSON (Content-Type: application/json), "
                    f"not '{kind or 'none'}'.",
                    code="unsupported_media_type",
                )
        if error is not None:
            await error.response()(scope, receive, send)
            return
        await self.app(scope, receive, send)
