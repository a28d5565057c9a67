"""``bge-integrations serve --engine ray``: the same HTTP app, as N replicas on Ray Serve.

Each replica is a Ray actor that builds its own app with ``create_app(settings)`` when it starts
(so each loads the models once, in its own process, and runs the app's lifespan); Ray Serve's
HTTP proxy listens on ``host:port`` and spreads requests over the replicas. Every endpoint, path
and error of the single-process server is the same; each response also carries an
``x-bge-replica`` header naming the replica that answered.

Limits that the app keeps (``max_queue_items``, ``/metrics``) are per replica: N replicas admit
N times ``max_queue_items`` texts in all, and ``/metrics`` reports the replica that answered.

Uses the Ray cluster this process is connected to (``ray.init(address=...)``, or ``RAY_ADDRESS``),
or starts a local one, as any Ray call does.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

try:
    import ray
    from ray import serve
except ImportError as exc:  # pragma: no cover - depends on the environment
    msg = 'bge-integrations serve --engine ray needs Ray Serve: pip install "bge-integrations[ray-serve]"'
    raise ImportError(msg) from exc

from ray.serve.exceptions import RayServeException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bge_integrations.core.validation import check_positive_int
from bge_integrations.ray.engine import check_resources
from bge_integrations.serving.metrics import ServerMetrics
from bge_integrations.serving.service import ModelService
from bge_integrations.serving.settings import ServerSettings

_logger = logging.getLogger(__name__)

APP_NAME = "bge-integrations"
"""The Serve application (and deployment) name ``start_ray_server`` uses by default."""

REPLICA_HEADER = "x-bge-replica"
"""Response header naming the replica that answered (Ray Serve's replica id)."""


def replica_options(
    settings: ServerSettings, *, gpus_per_replica: float = 0, cpus_per_replica: float | None = None
) -> tuple[ServerSettings, dict[str, float]]:
    """The settings each replica serves with, and its Ray actor resources.

    A CPU replica (``gpus_per_replica == 0``) runs its models on ``"cpu"`` with
    ``cpus_per_replica`` CPUs (default 1; Ray sets the replica's torch threads to match); a GPU
    replica on ``"cuda"``. A ``device`` in ``embedder_settings`` or ``reranker_settings`` wins.

    Raises:
        ValueError: If gpus_per_replica is negative, or cpus_per_replica is not None and not > 0.

    Example:
        >>> settings = ServerSettings(model="BAAI/bge-small-en-v1.5")
        >>> served, resources = replica_options(settings, gpus_per_replica=1)
        >>> served.embedder_settings["device"], resources
        ('cuda', {'num_gpus': 1})

    """
    check_resources(
        gpus=gpus_per_replica, cpus=cpus_per_replica, gpus_name="gpus_per_replica", cpus_name="cpus_per_replica"
    )
    device = "cuda" if gpus_per_replica else "cpu"
    served = dataclasses.replace(
        settings,
        embedder_settings={"device": device, **settings.embedder_settings},
        reranker_settings={"device": device, **settings.reranker_settings},
    )
    resources: dict[str, float] = {}
    if gpus_per_replica:
        resources["num_gpus"] = gpus_per_replica
        if cpus_per_replica is not None:
            resources["num_cpus"] = cpus_per_replica
    else:
        resources["num_cpus"] = 1 if cpus_per_replica is None else cpus_per_replica
    return served, resources


class _ReplicaHeader:
    """ASGI middleware that adds ``x-bge-replica: <id>`` to every HTTP response."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


@serve.ingress()
class BGEReplica:
    """One Ray Serve replica: builds ``create_app(settings)`` in its own process, at start.

    Ray Serve runs the app's lifespan (model loading) before the replica takes traffic, and its
    shutdown when the replica stops. Deployed by :func:`build_application`.
    """

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings

    def __serve_build_asgi_app__(self) -> ASGIApp:
        """The replica's app (called once by Ray Serve, in the replica)."""
        from bge_integrations.serving.app import create_app  # the replica's import, not the driver's

        app = create_app(self.settings)
        app.add_middleware(_ReplicaHeader, replica=serve.get_replica_context().replica_tag)
        return app


def build_application(
    settings: ServerSettings,
    *,
    replicas: int = 1,
    gpus_per_replica: float = 0,
    cpus_per_replica: float | None = None,
    max_ongoing_requests: int = 256,
    name: str = APP_NAME,
) -> serve.Application:
    """The Serve application: ``replicas`` copies of the server app, for ``serve.run``.

    Args:
        settings: What each replica serves (pickled to the replicas: plain values).
        replicas: Replicas, each loading the models once.
        gpus_per_replica: GPUs per replica; 0 for CPU replicas.
        cpus_per_replica: CPUs per replica. None: 1 for a CPU replica (Ray's default otherwise).
        max_ongoing_requests: Requests a replica works on at once. Concurrent requests share the
            replica's model batches, and the app answers 429 past ``max_queue_items``, so this is
            well above Ray's default (5); requests beyond it wait in Ray's proxy.
        name: The deployment name.

    Raises:
        ValueError: If a number is out of range (the message names it).

    Example:
        >>> application = build_application(ServerSettings(model="BAAI/bge-small-en-v1.5"), replicas=2)
        >>> type(application).__name__
        'Application'

    """
    check_positive_int(replicas, name="replicas")
    check_positive_int(max_ongoing_requests, name="max_ongoing_requests")
    served, resources = replica_options(settings, gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica)
    ModelService(served, ServerMetrics()).check()  # the settings as each replica gets them (its device)
    deployment = serve.deployment(
        name=name,
        num_replicas=replicas,
        ray_actor_options=dict(resources),
        max_ongoing_requests=max_ongoing_requests,
        # Past that, at most as many again wait in Ray (its default, -1, queues without bound and the
        # app's 429 would never see them); beyond, Ray's proxy answers 503.
        max_queued_requests=max_ongoing_requests,
    )(BGEReplica)
    return deployment.bind(served)


def start_ray_server(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    gpus_per_replica: float = 0,
    cpus_per_replica: float | None = None,
    max_ongoing_requests: int = 256,
    name: str = APP_NAME,
) -> str:
    """Deploy the server on Ray Serve and return its base URL once every replica is ready.

    Starts Serve with its HTTP proxy on ``host:port`` (unless Serve already runs on the cluster,
    on that same address), deploys ``replicas`` replicas under ``name`` at route prefix ``/`` and
    waits until they have loaded their models. :func:`stop_ray_server` undoes it.

    Raises:
        ValueError: If a value is out of range, or Serve already runs on this cluster with its
            proxy on another address (Serve keeps one address per cluster).
        ray.serve.exceptions.RayServeException: If the replicas fail to start (their error).

    Example:
        >>> settings = ServerSettings(model="BAAI/bge-small-en-v1.5")
        >>> url = start_ray_server(settings, port=8080, replicas=2)  # doctest: +SKIP
        >>> url  # doctest: +SKIP
        'http://127.0.0.1:8080'
        >>> stop_ray_server()  # doctest: +SKIP

    """
    _check_address(host, port)
    application = build_application(
        settings,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        cpus_per_replica=cpus_per_replica,
        max_ongoing_requests=max_ongoing_requests,
        name=name,
    )
    return _deploy(application, host=host, port=port, name=name)


def _check_address(host: Any, port: Any) -> None:
    if not isinstance(host, str) or not host.strip():
        msg = f"host must be a non-empty string, got {host!r}"
        raise ValueError(msg)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        msg = f"port must be an integer in 1..65535, got {port!r}"
        raise ValueError(msg)


def _deploy(application: serve.Application, *, host: str, port: int, name: str) -> str:
    serve.start(http_options={"host": host, "port": port})
    _check_proxy_address(host, port)
    serve.run(application, name=name, route_prefix="/")
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _check_proxy_address(host: str, port: int) -> None:
    """Raise ValueError if Serve was already running with its proxy on another address."""
    from ray.serve.context import _get_global_client  # Serve exposes its HTTP config nowhere else

    client = _get_global_client()
    config = None if client is None else client.http_config
    if config is not None and (config.host, config.port) != (host, port):
        msg = (
            f"Ray Serve already runs on this cluster with its HTTP proxy on {config.host}:{config.port}, "
            f"not {host}:{port}; serve on that address, or stop Serve first (serve shutdown)"
        )
        raise ValueError(msg)


def stop_ray_server(name: str = APP_NAME) -> None:
    """Delete the application ``name``; shut Serve down (freeing its port) if no other remains.

    Example:
        >>> stop_ray_server()  # doctest: +SKIP

    """
    try:
        serve.delete(name)
    except RayServeException:  # Serve is not running: nothing to stop
        return
    if not serve.status().applications:
        serve.shutdown()  # type: ignore[no-untyped-call]


def run_ray_server(
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    replicas: int = 1,
    gpus_per_replica: float = 0,
    cpus_per_replica: float | None = None,
    max_ongoing_requests: int = 256,
    address: str | None = None,
) -> None:
    """Serve on Ray until interrupted (Ctrl-C or SIGTERM), then stop the replicas: the CLI's ``--engine ray``.

    Args:
        settings: What each replica serves.
        host: Address of Ray Serve's HTTP proxy (on every node that runs one).
        port: Its port.
        replicas: Replicas, each loading the models once.
        gpus_per_replica: GPUs per replica; 0 for CPU replicas.
        cpus_per_replica: CPUs per replica (None: 1 for a CPU replica).
        max_ongoing_requests: Requests a replica works on at once (see :func:`build_application`).
        address: Ray cluster to connect to (``ray.init(address=...)``) when this process has not
            connected yet. None: ``RAY_ADDRESS``, or a new local Ray instance.

    Example:
        >>> settings = ServerSettings(model="BAAI/bge-base-en-v1.5")
        >>> run_ray_server(settings, host="0.0.0.0", port=8080, replicas=4, gpus_per_replica=1)  # doctest: +SKIP

    """
    _check_address(host, port)
    application = build_application(  # checks every value before Ray starts
        settings,
        replicas=replicas,
        gpus_per_replica=gpus_per_replica,
        cpus_per_replica=cpus_per_replica,
        max_ongoing_requests=max_ongoing_requests,
    )
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=address)
    try:
        with _sigterm_interrupts():
            try:
                url = _deploy(application, host=host, port=port, name=APP_NAME)
                _logger.warning(
                    "Serving %s on %s with %d Ray Serve replica(s); Ctrl-C stops", settings.served_name, url, replicas
                )
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
            finally:
                stop_ray_server(APP_NAME)
    finally:
        if started_ray:
            ray.shutdown()


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within, SIGTERM raises KeyboardInterrupt in the main thread (as Ctrl-C does), for a clean stop."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous: Any = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


__all__ = [
    "APP_NAME",
    "REPLICA_HEADER",
    "BGEReplica",
    "build_application",
    "replica_options",
    "run_ray_server",
    "start_ray_server",
    "stop_ray_server",
]
