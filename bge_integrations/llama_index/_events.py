"""LlamaIndex's instrumentation events and legacy callbacks, emitted around our own work."""

from __future__ import annotations

from collections.abc import Iterator
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


__all__ = ["embedding_events", "rerank_events"]
