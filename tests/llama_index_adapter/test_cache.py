"""embeddings_cache: query vectors never collide with text vectors of the same string."""

from __future__ import annotations

import pytest
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent, EmbeddingStartEvent
from llama_index.core.storage.kvstore import SimpleKVStore

from bge_integrations import BGEEmbedder
from bge_integrations.llama_index import QUERY_CACHE_COLLECTION, BGEEmbedding
from tests.llama_index_adapter.conftest import QUERY, Recorder


@pytest.fixture
def cached(tiny_embedder_path: str) -> BGEEmbedding:
    return BGEEmbedding(tiny_embedder_path, device="cpu", embeddings_cache=SimpleKVStore())


@pytest.fixture
def core(tiny_embedder_path: str) -> BGEEmbedder:
    return BGEEmbedder(tiny_embedder_path, device="cpu")


def test_text_then_query_of_the_same_string(cached: BGEEmbedding, core: BGEEmbedder) -> None:
    assert cached.get_text_embedding(QUERY) == core.embed_documents([QUERY])[0]
    assert cached.get_query_embedding(QUERY) == core.embed_query(QUERY)


def test_query_then_text_of_the_same_string(cached: BGEEmbedding, core: BGEEmbedder) -> None:
    assert cached.get_query_embedding(QUERY) == core.embed_query(QUERY)
    assert cached.get_text_embedding_batch([QUERY]) == core.embed_documents([QUERY])
    assert cached.get_text_embedding(QUERY) == core.embed_documents([QUERY])[0]


async def test_async_paths_keep_them_apart(cached: BGEEmbedding, core: BGEEmbedder) -> None:
    assert await cached.aget_text_embedding_batch([QUERY]) == core.embed_documents([QUERY])
    assert await cached.aget_query_embedding(QUERY) == core.embed_query(QUERY)
    assert await cached.aget_text_embedding(QUERY) == core.embed_documents([QUERY])[0]


def test_entries_live_in_separate_collections(cached: BGEEmbedding, core: BGEEmbedder) -> None:
    cached.get_text_embedding(QUERY)
    cached.get_query_embedding(QUERY)
    store = cached.embeddings_cache
    assert list(store.get(QUERY, collection="embeddings").values()) == core.embed_documents([QUERY])
    assert list(store.get(QUERY, collection=QUERY_CACHE_COLLECTION).values()) == [core.embed_query(QUERY)]


async def test_cached_queries_are_not_recomputed(cached: BGEEmbedding, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached.get_query_embedding(QUERY)
    calls: list[str] = []
    monkeypatch.setattr(BGEEmbedder, "embed_query", lambda self, text: calls.append(text) or [0.0])
    assert cached.get_query_embedding(QUERY) == first
    assert await cached.aget_query_embedding(QUERY) == first
    assert calls == []
    assert cached.get_query_embedding("another") == [0.0]
    assert calls == ["another"]


def test_cached_path_emits_embedding_events(cached: BGEEmbedding, recorder: Recorder) -> None:
    vector = cached.get_query_embedding(QUERY)
    cached.get_query_embedding(QUERY)
    starts, ends = recorder.of(EmbeddingStartEvent), recorder.of(EmbeddingEndEvent)
    assert len(starts) == len(ends) == 2
    assert starts[0].model_dict["class_name"] == "BGEEmbedding"
    assert [(end.chunks, end.embeddings) for end in ends] == [([QUERY], [vector])] * 2
