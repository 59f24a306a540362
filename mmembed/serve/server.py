"""Binding a port and running the web app under uvicorn until Ctrl-C or SIGTERM."""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

from ..errors import ConfigError

__all__ = ["bind", "is_loopback", "run", "url_for"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port). ConfigError names the
    address when it cannot be bound (in use, or not an address of this machine)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a port number; give 1 to 65535 (0: any free port)")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise ConfigError(f"port {port} on {host} is in use; pass --port N (or --port 0 for any free port)") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def url_for(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run(app: Any, sock: socket.socket, *, on_started: Any = None, log_level: str = "warning",
        lifespan: str = "off") -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C or SIGTERM (uvicorn handles both, finishing the
    requests in flight). ``on_started`` is called in a thread once the server accepts;
    ``lifespan="on"`` runs the app's startup and shutdown (the MCP session manager needs it)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan=lifespan,
                            timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    if on_started is not None:
        def wait_then_call() -> None:
            import time

            deadline = time.monotonic() + 30
            while not server.started and not server.should_exit and time.monotonic() < deadline:
                time.sleep(0.02)
            if server.started:
                on_started()

        threading.Thread(target=wait_then_call, daemon=True, name="mmembed-serve-started").start()
    server.run(sockets=[sock])
