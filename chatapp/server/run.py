"""Running the API app under uvicorn: in the foreground (`chatapp serve`) or on a
background thread (the window's switch, the tests)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from chatapp.core.errors import UserError
from chatapp.server.guard import allow_host

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, api_key: str) -> None:
    """Anything but loopback is reachable by others: it needs an API key."""
    if not is_loopback(host) and not api_key:
        raise UserError(
            f"Serving on {host} makes the model reachable from other machines: "
            "give an API key with --api-key (or CHATAPP_API_KEY)."
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one), or a UserError saying why not."""
    sock: socket.socket | None = None
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        if sock is not None:
            sock.close()
        raise UserError(f"Cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class ServerThread:
    """uvicorn on a background thread. start() returns once it accepts connections."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        hosts = getattr(app.state, "hosts", None)
        if hosts is not None:  # requests naming the host it was given are its own
            allow_host(hosts, host)
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,  # open streams are cut (and their turns cancelled)
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="api-server", daemon=True
        )

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise UserError("The API server did not start.")
            time.sleep(0.02)
        log.info("API server on %s", self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()


def serve_forever(app: Starlette, sock: socket.socket) -> None:
    """In the foreground until Ctrl-C."""
    config = uvicorn.Config(app, log_level="info", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
