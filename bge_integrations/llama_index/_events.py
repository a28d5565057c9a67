"""LlamaIndex's instrumentation events and legacy callbacks, emitted around our own work."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]  # public, no __all__
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import NodeWithScore, QueryBundle

dispatcher = get_dispatcher(__name__)


@contextmanager
def embedding_events(model: BaseEmbedding, text: str) -> Iterator[list[Embedding]]:
    """Embedding start/end events and callback, as ``BaseEmbedding.get_query_embedding`` emits.

    Append the vector to the yielded list; it is reported when the block ends.
    """
    payload = model.to_payload()
    dispatcher.event(EmbeddingStartEvent(model_dict=payload))
    out: list[Embedding] = []
    with model.callback_manager.event(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload}) as event:
        yield out
        event.on_end(payload={EventPayload.CHUNKS: [text], EventPayload.EMBEDDINGS: out})
    dispatcher.event(EmbeddingEndEvent(chunks=[text], embeddings=out))


def batch_embedding_events(
    model: BaseEmbedding, texts: list[str], chunk_size: int, compute: Callable[[list[str]], list[Embedding]]
) -> list[Embedding]:
    """Embed every text in one ``compute`` call, with LlamaIndex's events for each chunk.

    ``BaseEmbedding.get_text_embedding_batch`` emits one start/end pair per ``embed_batch_size``
    chunk; so does this, with the same payloads, around a single call: the engine then sorts
    and batches the whole list at once (as LlamaIndex's own async path starts every chunk first
    and ends them after).
    """
    payload = model.to_payload()
    chunks = [texts[start : start + chunk_size] for start in range(0, len(texts), chunk_size)]
    started = []
    for _ in chunks:
        dispatcher.event(EmbeddingStartEvent(model_dict=payload))
        started.append(
            model.callback_manager.on_event_start(CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: payload})
        )
    vectors = compute(texts)
    position = 0
    for chunk, event_id in zip(chunks, started, strict=True):
        embeddings = vectors[position : position + len(chunk)]
        position += len(chunk)
        dispatcher.event(EmbeddingEndEvent(chunks=chunk, embeddings=embeddings))
        model.callback_manager.on_event_end(
            CBEventType.EMBEDDING,
            payload={EventPayload.CHUNKS: chunk, EventPayload.EMBEDDINGS: embeddings},
            event_id=event_id,
        )
    return vectors


@contextmanager
def rerank_events(
    callback_manager: CallbackManager, model: str, nodes: list[NodeWithScore], bundle: QueryBundle, top_n: int
) -> Iterator[list[NodeWithScore]]:
    """ReRank start/end events and the RERANKING callback, as ``SentenceTransformerRerank`` emits.

    Extend the yielded list with the reranked nodes; they are reported when the block ends.
    """
    dispatcher.event(ReRankStartEvent(query=bundle, nodes=nodes, top_n=top_n, model_name=model))
    out: list[NodeWithScore] = []
    payload: dict[str, Any] = {
        EventPayload.NODES: nodes,
        EventPayload.MODEL_NAME: model,
        EventPayload.QUERY_STR: bundle.query_str,
        EventPayload.TOP_K: top_n,
    }
    with callback_manager.event(CBEventType.RERANKING, payload=payload) as event:
        yield out
        event.on_end(payload={EventPayload.NODES: out})
    dispatcher.event(ReRankEndEvent(nodes=out))


__all__ = ["batch_embedding_events", "embedding_events", "rerank_events"]
