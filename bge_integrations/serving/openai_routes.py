"""OpenAI's embeddings API: ``POST /v1/embeddings`` as the openai SDK and framework clients send it."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal, cast

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from bge_integrations.core.validation import valid_unicode
from bge_integrations.serving.errors import ApiError
from bge_integrations.serving.limits import admitted, check_texts, is_query, service_of
from bge_integrations.serving.settings import ServerSettings
from bge_integrations.serving.tokens import decode_tokens

router = APIRouter()


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request, plus ``input_type`` (``"query"`` or ``"document"``) for BGE's roles."""

    model_config = ConfigDict(extra="allow")

    input: str | list[str] | list[int] | list[list[int]] = Field(
        description="A text, texts, or tiktoken token ids (one list per text)."
    )
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    input_type: str | None = Field(
        default=None,
        description='"query" (the model\'s query instruction goes in front) or "document" (the default).',
    )


async def embeddings(request: Request, body: EmbeddingsRequest, *, query_route: bool) -> dict[str, Any]:
    """Shared body of the plain and the query-marked routes."""
    service = service_of(request)
    settings: ServerSettings = request.app.state.settings
    if body.dimensions is not None:
        width = service.need_embedder().dimension
        if body.dimensions != width:
            msg = (
                f"dimensions={body.dimensions}: {settings.served_name} gives {width}-dimensional vectors "
                "and BGE models are not trained to be shortened; leave dimensions out"
            )
            raise ApiError(400, msg, param="dimensions")
    query = True if query_route else is_query(body.input_type, param="input_type")
    token_input = not isinstance(body.input, str) and bool(body.input) and not isinstance(body.input[0], str)
    # Decoding token ids is CPU work: off the event loop (it stays free to accept requests).
    texts, token_count = (
        await asyncio.to_thread(_texts, body.input, settings) if token_input else _texts(body.input, settings)
    )
    check_texts(texts, settings, param="input")
    async with admitted(request, len(texts)):
        vectors = await service.embed(texts, query=query)
        if token_count is None:
            token_count = await service.count_tokens(texts)
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vector, body.encoding_format)}
        for index, vector in enumerate(vectors)
    ]
    return {
        "object": "list",
        "data": data,
        "model": valid_unicode(body.model) if body.model else settings.served_name,
        "usage": {"prompt_tokens": token_count, "total_tokens": token_count},
    }


@router.post("/v1/embeddings")
@router.post("/embeddings", include_in_schema=False)
async def create_embeddings(request: Request, body: EmbeddingsRequest) -> dict[str, Any]:
    """Embed texts (documents unless ``input_type`` is ``"query"``), in input order."""
    return await embeddings(request, body, query_route=False)


@router.post("/query/v1/embeddings")
@router.post("/query/embeddings", include_in_schema=False)
async def create_query_embeddings(request: Request, body: EmbeddingsRequest) -> dict[str, Any]:
    """Embed texts as queries: for stock clients that cannot send ``input_type`` (``base_url=.../query/v1``)."""
    return await embeddings(request, body, query_route=True)


@router.get("/v1/models")
@router.get("/query/v1/models", include_in_schema=False)
async def list_models(request: Request) -> dict[str, Any]:
    """The model this server serves, as OpenAI's model list."""
    settings: ServerSettings = request.app.state.settings
    created = int(request.app.state.started)
    return {
        "object": "list",
        "data": [{"id": settings.served_name, "object": "model", "created": created, "owned_by": "bge-integrations"}],
    }


def _texts(
    value: str | list[str] | list[int] | list[list[int]], settings: ServerSettings
) -> tuple[list[str], int | None]:
    """The texts of ``input`` and, for token-id input, its token count."""
    if isinstance(value, str):
        return [value], None
    if not value:
        return [], 0
    if all(isinstance(item, str) for item in value):
        return [str(item) for item in value], None
    rows = cast("list[list[int]]", [value] if isinstance(value[0], int) else value)
    if len(rows) > settings.max_items:
        msg = f"input has {len(rows)} items; this server takes at most {settings.max_items} per request"
        raise ApiError(413, msg, param="input")
    for row in rows:
        if len(row) > settings.max_chars:
            msg = f"a token-id input has {len(row)} tokens; this server takes at most {settings.max_chars}"
            raise ApiError(413, msg, param="input")
    return decode_tokens(rows, settings.token_encoding), sum(len(row) for row in rows)


def _encode(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


__all__ = ["EmbeddingsRequest", "router"]
