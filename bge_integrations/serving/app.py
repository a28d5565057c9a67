"""create_app: the ASGI app of ``bge-integrations serve``, on FastAPI.

One app holds one :class:`ModelService` (an embedder and a reranker from the core registry),
one bounded :class:`Admission` queue and its own metrics. Middleware, outermost first: metrics
(every request counted and timed, by route template), then the API key, then the body-size cap.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bge_integrations import __version__
from bge_integrations.serving import openai_routes, rerank_routes, tei_routes
from bge_integrations.serving.admission import Admission
from bge_integrations.serving.errors import ApiError, family_of
from bge_integrations.serving.metrics import ServerMetrics
from bge_integrations.serving.service import ModelService
from bge_integrations.serving.settings import ServerSettings

_PUBLIC = frozenset({"/health"})


def create_app(settings: ServerSettings, *, warm_up: bool = True) -> FastAPI:
    """The server's ASGI app for ``settings``; run it with uvicorn (:func:`run_server`) or Ray Serve.

    Args:
        settings: Models and limits.
        warm_up: Load the models at startup, before the first request (False: on first use).

    Example:
        >>> app = create_app(ServerSettings(model="BAAI/bge-small-en-v1.5"))
        >>> sorted(path for path in app.openapi()["paths"] if path.startswith("/v1"))
        ['/v1/embeddings', '/v1/models', '/v1/rerank']

    """
    metrics = ServerMetrics()
    admission = Admission(settings.max_queue_items)
    service = ModelService(settings, metrics)
    service.check()  # a bad model setting fails here, not in the server's startup
    metrics.queue_items.set_function(lambda: admission.pending)
    metrics.in_flight.set_function(lambda: admission.requests)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            service.warm_up()
        yield
        admission.close()

    app = FastAPI(
        title="bge-integrations",
        version=__version__,
        summary="BGE embeddings and reranking behind the OpenAI, TEI and Cohere APIs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.admission = admission
    app.state.metrics = metrics
    app.state.started = time.time()
    app.include_router(openai_routes.router)
    app.include_router(tei_routes.router)
    app.include_router(rerank_routes.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        return error.response(getattr(request.state, "family", None) or family_of(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        response = ApiError(error.status_code, str(error.detail)).response(family_of(request.url.path))
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        family = family_of(request.url.path)
        if request.url.path == "/rerank" and isinstance(error.body, dict) and "documents" in error.body:
            family = "cohere"  # a Cohere body on the shared path
        problems = "; ".join(_describe(problem) for problem in error.errors())
        param = ".".join(str(part) for part in error.errors()[0].get("loc", ())[1:]) if error.errors() else None
        return ApiError(422 if family == "tei" else 400, f"invalid request: {problems}", param=param).response(family)

    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_pending=settings.pending_bytes,
        retry_after=settings.retry_after,
        metrics=metrics,
    )
    app.add_middleware(ApiKey, key=settings.api_key)
    app.add_middleware(Metrics, metrics=metrics)
    return app


def _describe(problem: Any) -> str:
    where = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "body"
    return f"{where}: {problem.get('msg', 'invalid')}"


class BodyLimit:
    """Reads each request body whole, within two bounds, before the app sees it.

    A body over ``max_bytes`` (declared by Content-Length, or counted while a chunked body
    arrives) gets 413. Bodies held at once, by all requests being received or answered, stay
    under ``max_pending`` bytes: an upload that would go past it gets 429 with ``Retry-After``
    before more of it is read, so slow or many uploads cannot fill memory.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_pending: int, retry_after: int, metrics: ServerMetrics
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.retry_after = retry_after
        self.metrics = metrics
        self.pending = 0
        """Body bytes held now, by every request in flight (one event loop: no lock needed)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((int(v) for k, v in scope["headers"] if k == b"content-length" and v.isdigit()), 0)
        if declared > self.max_bytes:
            await self._too_large(declared, scope, receive, send)
            return
        held = 0
        try:
            if not self._hold(declared):
                await self._busy(scope, receive, send)
                return
            held = declared
            chunks: list[bytes] = []
            seen = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":  # the client went away: let the app see it
                    chunks, first = [], message
                    break
                chunk = message.get("body", b"")
                seen += len(chunk)
                if seen > self.max_bytes:
                    await self._too_large(seen, scope, receive, send)
                    return
                if seen > held:
                    if not self._hold(seen - held):
                        await self._busy(scope, receive, send)
                        return
                    held = seen
                chunks.append(chunk)
                if not message.get("more_body", False):
                    first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                    chunks = []
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return first

            await self.app(scope, replay, send)
        finally:
            self.pending -= held

    def _hold(self, size: int) -> bool:
        if self.pending + size > self.max_pending:
            return False
        self.pending += size
        return True

    async def _too_large(self, size: int, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejected.labels(reason="body_too_large").inc()
        message = f"the request body has {size} bytes or more; this server takes at most {self.max_bytes}"
        await ApiError(413, message).response(family_of(scope["path"]))(scope, receive, send)

    async def _busy(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.metrics.rejected.labels(reason="bodies_pending").inc()
        message = f"the server holds {self.max_pending} bytes of request bodies already: retry later"
        error = ApiError(429, message, retry_after=self.retry_after)
        await error.response(family_of(scope["path"]))(scope, receive, send)


class ApiKey:
    """With a key set, every path but ``/health`` needs ``Authorization: Bearer <key>`` or ``x-api-key``.

    The comparison takes the same time whatever the key sent (``hmac.compare_digest``).
    """

    def __init__(self, app: ASGIApp, *, key: str | None) -> None:
        self.app = app
        self.key = None if key is None else key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or scope["path"] in _PUBLIC:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
            elif name == b"x-api-key" and not given:
                given = value.strip()
        if hmac.compare_digest(given, self.key):
            await self.app(scope, receive, send)
            return
        message = "missing or wrong API key: send 'Authorization: Bearer <key>'"
        await ApiError(401, message).response(family_of(scope["path"]))(scope, receive, send)


class Metrics:
    """Counts and times every request by route template and status (unknown paths as ``other``)."""

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)


__all__ = ["create_app"]
