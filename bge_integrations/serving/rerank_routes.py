"""Reranking: TEI's ``/rerank`` (``texts``) and the Cohere/Infinity ``/v1/rerank`` (``documents``).

``POST /rerank`` answers both: a body with ``texts`` is TEI's request and gets TEI's list; a
body with ``documents`` is Cohere's (what Infinity, LangChain's ``InfinityRerank`` and Cohere
clients send) and gets ``{"results": [...]}``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import valid_unicode
from bge_integrations.serving.errors import ApiError
from bge_integrations.serving.limits import admitted, check_texts, service_of
from bge_integrations.serving.settings import ServerSettings

router = APIRouter()


class Document(BaseModel):
    """A Cohere document object: ``{"text": ...}``."""

    model_config = ConfigDict(extra="allow")

    text: str


class RerankRequest(BaseModel):
    """TEI's (``texts``) or Cohere's (``documents``) rerank request."""

    model_config = ConfigDict(extra="allow")

    query: str
    texts: list[str] | None = Field(default=None, description="TEI: the texts to rank.")
    documents: list[str | Document] | None = Field(default=None, description="Cohere/Infinity: the texts to rank.")
    raw_scores: bool = Field(default=False, description="Logits instead of sigmoid scores in [0, 1].")
    return_text: bool = Field(default=False, description="TEI: put each text in its result.")
    truncate: bool | None = None
    truncation_direction: Literal["Left", "Right", "left", "right"] = "Right"
    top_n: int | None = Field(default=None, description="Cohere: keep the best top_n (None keeps all).")
    return_documents: bool | None = Field(default=None, description="Cohere: put each document in its result.")
    model: str | None = None


async def _rank(
    request: Request, body: RerankRequest, texts: list[str], top_n: int | None, *, count: bool = False
) -> tuple[list[RankedText], int]:
    """The ranking and, with ``count``, the tokens of query and texts (within the request's queue places)."""
    settings: ServerSettings = request.app.state.settings
    check_texts(texts, settings, param="texts" if body.texts is not None else "documents")
    if len(body.query) > settings.max_chars:
        msg = f"query has {len(body.query)} characters; this server takes at most {settings.max_chars}"
        raise ApiError(413, msg, param="query")
    if top_n is not None and top_n < 1:
        msg = f"top_n must be a positive integer or null, got {top_n}"
        raise ApiError(400 if body.documents is not None else 422, msg, param="top_n")
    if body.truncation_direction.lower() == "left":
        msg = "truncation_direction='Left' is not supported: passages longer than the model reads are scored by windows"
        raise ApiError(422, msg, param="truncation_direction")
    service = service_of(request)
    service.need_reranker()
    async with admitted(request, len(texts)):
        ranked = await service.rank(body.query, texts, top_n=top_n, raw=body.raw_scores)
        tokens = await service.count_tokens([body.query, *texts], reranker=True) if count else 0
    return ranked, tokens


@router.post("/rerank")
async def rerank(request: Request, body: RerankRequest) -> Any:
    """TEI's rerank (``texts``) or Cohere's (``documents``), by the body's fields."""
    if body.documents is not None:
        request.state.family = "cohere"
        if body.texts is not None:
            msg = "give either texts (TEI) or documents (Cohere), not both"
            raise ApiError(400, msg, param="texts")
        return await cohere_rerank(request, body)
    if body.texts is None:
        msg = "the request needs texts (TEI) or documents (Cohere): the passages to rank"
        raise ApiError(422, msg, param="texts")
    ranked, _ = await _rank(request, body, body.texts, None)
    return [
        {"index": item.index, "score": item.score, **({"text": item.text} if body.return_text else {})}
        for item in ranked
    ]


@router.post("/v1/rerank")
async def cohere_rerank(request: Request, body: RerankRequest) -> dict[str, Any]:
    """Cohere/Infinity-style rerank: ``{"results": [{"index", "relevance_score", "document"}]}``, best first."""
    request.state.family = "cohere"
    if body.documents is None:
        msg = "documents is required: the passages to rank"
        raise ApiError(400, msg, param="documents")
    settings: ServerSettings = request.app.state.settings
    texts = [item if isinstance(item, str) else item.text for item in body.documents]
    ranked, tokens = await _rank(request, body, texts, body.top_n, count=True)
    return {
        "object": "rerank",
        "id": str(uuid.uuid4()),
        "created": int(time.time()),
        "model": valid_unicode(body.model) if body.model else settings.reranker or settings.served_name,
        "results": [
            {
                "index": item.index,
                "relevance_score": item.score,
                **({"document": {"text": item.text}} if body.return_documents else {}),
            }
            for item in ranked
        ],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
    }


__all__ = ["RerankRequest", "router"]
