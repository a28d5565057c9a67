"""A live server for tests: uvicorn in a thread, on 127.0.0.1 and a port the OS picks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from bge_integrations.serving import ServerSettings, server_config

START_TIMEOUT = 60.0


@contextmanager
def running_server(
    settings: ServerSettings, *, graceful_timeout: float = 5.0, app: FastAPI | None = None
) -> Iterator[str]:
    """Serve settings (or ``app``) on 127.0.0.1 while the block runs; yields the base URL ("http://127.0.0.1:PORT")."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = server_config(
        settings, host="127.0.0.1", port=port, graceful_timeout=graceful_timeout, log_level="warning"
    )
    if app is not None:
        config.app = app
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            msg = f"the test server did not start within {START_TIMEOUT} s"
            raise RuntimeError(msg)
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=graceful_timeout + 10)
        sock.close()
