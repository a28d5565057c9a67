"""Query embeddings through LlamaIndex's ``embeddings_cache``, apart from text embeddings.

LlamaIndex keys both query and text embeddings by the raw string in one collection, so a
query would get a cached *document* vector (without the BGE instruction) for the same string.
Query vectors go to their own collection here, with the events and callbacks LlamaIndex emits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.storage.kvstore.types import BaseKVStore

from bge_integrations.llama_index._events import embedding_events

QUERY_CACHE_COLLECTION = "bge_query_embeddings"
"""The ``embeddings_cache`` collection that holds query vectors (texts stay in ``"embeddings"``)."""


def cached_query_embedding(
    model: BaseEmbedding, cache: BaseKVStore, query: str, compute: Callable[[str], Embedding]
) -> Embedding:
    """The query's vector from the cache's query collection, computed and stored on a miss."""
    with embedding_events(model, query) as out:
        hit = cache.get(key=query, collection=QUERY_CACHE_COLLECTION)
        if hit:
            vector: Embedding = next(iter(hit.values()))
        else:
            if model.rate_limiter is not None:
                model.rate_limiter.acquire()
            vector = compute(query)
            cache.put(key=query, val={str(uuid.uuid4()): vector}, collection=QUERY_CACHE_COLLECTION)
        out.append(vector)
    return vector


async def acached_query_embedding(
    model: BaseEmbedding, cache: BaseKVStore, query: str, compute: Callable[[str], Awaitable[Embedding]]
) -> Embedding:
    """Async :func:`cached_query_embedding`."""
    with embedding_events(model, query) as out:
        hit = await cache.aget(key=query, collection=QUERY_CACHE_COLLECTION)
        if hit:
            vector: Embedding = next(iter(hit.values()))
        else:
            if model.rate_limiter is not None:
                await model.rate_limiter.async_acquire()
            vector = await compute(query)
            await cache.aput(key=query, val={str(uuid.uuid4()): vector}, collection=QUERY_CACHE_COLLECTION)
        out.append(vector)
    return vector


__all__ = ["QUERY_CACHE_COLLECTION", "acached_query_embedding", "cached_query_embedding"]
