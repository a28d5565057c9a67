"""Request checks shared by every route: item counts, text sizes, roles; admission to the queue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request

from bge_integrations.serving.admission import Admission, Overloaded
from bge_integrations.serving.errors import ApiError
from bge_integrations.serving.metrics import ServerMetrics
from bge_integrations.serving.service import ModelService
from bge_integrations.serving.settings import ServerSettings

QUERY_ROLES = frozenset({"query", "search_query"})
DOCUMENT_ROLES = frozenset({"document", "passage", "search_document"})


def check_texts(texts: list[str], settings: ServerSettings, *, param: str) -> None:
    """413 when a request has more texts than ``max_items`` or a text longer than ``max_chars``."""
    if len(texts) > settings.max_items:
        msg = f"{param} has {len(texts)} items; this server takes at most {settings.max_items} per request"
        raise ApiError(413, msg, param=param)
    for number, text in enumerate(texts):
        if len(text) > settings.max_chars:
            msg = f"{param}[{number}] has {len(text)} characters; this server takes at most {settings.max_chars}"
            raise ApiError(413, msg, param=param)


def is_query(role: str | None, *, param: str, default: bool = False) -> bool:
    """Whether a role value marks queries (None: the default); 400 naming the value otherwise."""
    if role is None:
        return default
    if role.lower() in QUERY_ROLES:
        return True
    if role.lower() in DOCUMENT_ROLES:
        return False
    msg = f"{param} must be one of {sorted(QUERY_ROLES | DOCUMENT_ROLES)}, got {role!r}"
    raise ApiError(400, msg, param=param)


def service_of(request: Request) -> ModelService:
    """The app's model service."""
    service: ModelService = request.app.state.service
    return service


@asynccontextmanager
async def admitted(request: Request, items: int) -> AsyncIterator[None]:
    """Hold queue places for a request's items; 429 (503 while shutting down) when they are not free."""
    admission: Admission = request.app.state.admission
    metrics: ServerMetrics = request.app.state.metrics
    settings: ServerSettings = request.app.state.settings
    route = getattr(request.scope.get("route"), "path", request.url.path)
    metrics.request_items.labels(route=route).observe(items)
    try:
        admission.acquire(items)
    except Overloaded as error:
        metrics.rejected.labels(reason="shutting_down" if error.shutting_down else "queue_full").inc()
        raise ApiError(503 if error.shutting_down else 429, str(error), retry_after=settings.retry_after) from error
    try:
        yield
    finally:
        admission.release(items)


__all__ = ["admitted", "check_texts", "is_query", "service_of"]
