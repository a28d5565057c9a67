"""run_server: the app on uvicorn, bound to 127.0.0.1 unless told otherwise, draining on shutdown."""

from __future__ import annotations

import math
import socket

import uvicorn

from bge_integrations.serving.app import create_app
from bge_integrations.serving.settings import ServerSettings

MAX_CONNECTIONS = 4096
"""Connections and tasks uvicorn serves at once; past it, 503 (a backstop under the app's own bounds)."""

KEEP_ALIVE_S = 75
"""Seconds an idle keep-alive connection stays open. Longer than the clients' own pool expiry
(httpx, and so the openai SDK and the framework clients, drop idle connections after 5 s), so the
server never closes a connection a client is just reusing: with uvicorn's default of 5 s both ends
expire together and a request sent in that instant fails with a read error (seen under load)."""


def server_config(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    graceful_timeout: float = 30.0,
    log_level: str = "info",
) -> uvicorn.Config:
    """The uvicorn configuration for the app (one process: the model is loaded once and shared).

    On SIGINT/SIGTERM uvicorn stops accepting connections and waits up to ``graceful_timeout``
    seconds for the requests in flight to be answered before it exits.
    """
    return uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=math.ceil(graceful_timeout),
        limit_concurrency=MAX_CONNECTIONS,
        timeout_keep_alive=KEEP_ALIVE_S,
        access_log=False,
    )


def run_server(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    graceful_timeout: float = 30.0,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted (blocking). ``sock``: an already bound socket to serve on instead.

    Example:
        >>> run_server(ServerSettings(model="BAAI/bge-small-en-v1.5"), port=8080)  # doctest: +SKIP

    """
    config = server_config(settings, host=host, port=port, graceful_timeout=graceful_timeout, log_level=log_level)
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])


__all__ = ["run_server", "server_config"]
