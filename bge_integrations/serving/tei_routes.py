"""Hugging Face Text Embeddings Inference's API: ``/embed``, ``/embed_sparse``, ``/info``, ``/health``.

TEI's ``/rerank`` shares its path with the Cohere-style one and lives in ``rerank_routes.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bge_integrations import __version__
from bge_integrations.serving.errors import ApiError
from bge_integrations.serving.limits import admitted, check_texts, is_query, service_of
from bge_integrations.serving.settings import ServerSettings

router = APIRouter()
Parsed = TypeVar("Parsed", bound=BaseModel)


class EmbedRequest(BaseModel):
    """TEI's ``/embed`` and ``/embed_sparse`` request; ``prompt_name="query"`` marks queries."""

    model_config = ConfigDict(extra="allow")

    inputs: str | list[str]
    normalize: bool = True
    truncate: bool | None = None
    truncation_direction: Literal["Left", "Right", "left", "right"] = "Right"
    prompt_name: str | None = Field(
        default=None, description='"query" puts the model\'s query instruction in front; None embeds documents.'
    )
    dimensions: int | None = None


async def _embed_texts(request: Request, body: EmbedRequest, *, query_route: bool) -> tuple[list[str], bool]:
    settings: ServerSettings = request.app.state.settings
    texts = [body.inputs] if isinstance(body.inputs, str) else list(body.inputs)
    check_texts(texts, settings, param="inputs")
    if body.truncation_direction.lower() == "left":
        msg = "truncation_direction='Left' is not supported: BGE models read the start of a text (use 'Right')"
        raise ApiError(422, msg, param="truncation_direction")
    query = True if query_route else is_query(body.prompt_name, param="prompt_name")
    return texts, query


async def embed(request: Request, body: EmbedRequest, *, query_route: bool) -> list[list[float]]:
    """Shared body of ``/embed`` and ``/query/embed``."""
    service = service_of(request)
    texts, query = await _embed_texts(request, body, query_route=query_route)
    embedder = service.need_embedder()
    # normalize=false (Haystack's HuggingFaceAPI embedders send it by default) still gets unit vectors:
    # BGE models are trained for them, and un-normalised ones would need a second copy of the model.
    if body.dimensions is not None and body.dimensions != embedder.dimension:
        msg = f"dimensions={body.dimensions}: the model gives {embedder.dimension}-dimensional vectors"
        raise ApiError(422, msg, param="dimensions")
    async with admitted(request, len(texts)):
        return await service.embed(texts, query=query)


@router.post("/")
async def tei_root(request: Request, body: dict[str, Any]) -> Any:
    """TEI's ``POST /``: ``/embed`` on a server with an embedder, else ``/rerank`` (as TEI routes it)."""
    if service_of(request).embedder is not None or "inputs" in body:
        return await embed(request, _parse(EmbedRequest, body), query_route=False)
    from bge_integrations.serving.rerank_routes import RerankRequest, rerank

    return await rerank(request, _parse(RerankRequest, body))


def _parse(model: type[Parsed], body: dict[str, Any]) -> Parsed:
    try:
        return model.model_validate(body)
    except ValidationError as error:
        raise RequestValidationError(error.errors()) from error


@router.post("/embed")
async def tei_embed(request: Request, body: EmbedRequest) -> list[list[float]]:
    """Embed ``inputs`` (documents; queries with ``prompt_name="query"``), as TEI does."""
    return await embed(request, body, query_route=False)


@router.post("/query/embed")
async def tei_embed_queries(request: Request, body: EmbedRequest) -> list[list[float]]:
    """Embed ``inputs`` as queries: for TEI clients that cannot send ``prompt_name``."""
    return await embed(request, body, query_route=True)


async def embed_sparse(request: Request, body: EmbedRequest, *, query_route: bool) -> list[list[dict[str, Any]]]:
    """Shared body of ``/embed_sparse`` and ``/query/embed_sparse``."""
    service = service_of(request)
    texts, query = await _embed_texts(request, body, query_route=query_route)
    async with admitted(request, len(texts)):
        sparse = await service.embed_sparse(texts, query=query)
    return [
        [{"index": int(index), "value": float(value)} for index, value in zip(item.indices, item.values, strict=True)]
        for item in sparse
    ]


@router.post("/embed_sparse")
async def tei_embed_sparse(request: Request, body: EmbedRequest) -> list[list[dict[str, Any]]]:
    """bge-m3's lexical weights per text, as TEI's ``[{"index": token_id, "value": weight}]``."""
    return await embed_sparse(request, body, query_route=False)


@router.post("/query/embed_sparse")
async def tei_embed_sparse_queries(request: Request, body: EmbedRequest) -> list[list[dict[str, Any]]]:
    """bge-m3's lexical weights of queries: for TEI clients that cannot send ``prompt_name``."""
    return await embed_sparse(request, body, query_route=True)


@router.get("/info")
async def tei_info(request: Request) -> dict[str, Any]:
    """What TEI's ``/info`` tells clients: model, type, limits."""
    settings: ServerSettings = request.app.state.settings
    service = service_of(request)
    model_type: dict[str, Any]
    if service.embedder is not None:
        handle: Any = service.embedder
        model_type = {"embedding": {"pooling": service.embedder.config.pooling or "cls"}}
    else:
        handle = service.need_reranker()
        model_type = {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    return {
        "model_id": settings.served_name,
        "model_sha": None,
        "model_dtype": "float16" if handle.config.use_fp16 else "float32",
        "model_type": model_type,
        "max_concurrent_requests": settings.max_queue_items,
        "max_input_length": handle.config.max_length,
        "max_batch_tokens": _max_batch_tokens(await asyncio.to_thread(getattr, handle, "batch_tokens"), handle.config),
        "max_batch_requests": None,
        "max_client_batch_size": settings.max_items,
        "auto_truncate": True,
        "tokenization_workers": 1,
        "version": __version__,
        "sha": None,
        "docker_label": None,
        "embedding_model": settings.model,
        "reranker_model": settings.reranker,
        "sparse": service.sparse,
    }


def _max_batch_tokens(budget: int | None, config: Any) -> int | None:
    """TEI's ``max_batch_tokens``: the padded-token budget, else ``batch_size`` texts of ``max_length``."""
    if budget is not None or config.max_length is None:
        return budget
    return int(config.batch_size * config.max_length)


@router.get("/health")
async def health(request: Request) -> dict[str, str]:
    """200 once the models are loaded (before that the server does not accept connections)."""
    return {"status": "ok"}


__all__ = ["EmbedRequest", "router"]
