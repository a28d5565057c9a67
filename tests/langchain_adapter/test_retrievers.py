from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    BaseCallbackHandler,
    CallbackManagerForRetrieverRun,
    Callbacks,
)
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.vectorstores import InMemoryVectorStore, VectorStoreRetriever
from pydantic import Field, ValidationError

from bge_integrations.core.loading import REGISTRY
from bge_integrations.demo_corpus import PASSAGES
from bge_integrations.langchain import BGERerank, BGERerankRetriever

QUERY = "Where do giant pandas live?"


class ListRetriever(BaseRetriever):
    """Returns its first k documents and remembers the extra invoke arguments."""

    docs: list[Document]
    k: int = 2
    seen: list[dict[str, Any]] = Field(default_factory=list)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        self.seen.append(kwargs)
        return self.docs[: self.k]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        self.seen.append({"async": True, **kwargs})
        return self.docs[: self.k]


class NoK(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return []


class RetrieverRuns(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[tuple[UUID, UUID | None]] = []

    def on_retriever_start(
        self, serialized: dict[str, Any], query: str, *, run_id: UUID, parent_run_id: UUID | None = None, **kw: Any
    ) -> None:
        self.starts.append((run_id, parent_run_id))


@pytest.fixture
def store() -> InMemoryVectorStore:
    docs = [Document(text, id=str(i), metadata={"i": i}) for i, text in enumerate(PASSAGES)]
    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents(docs)
    return store


@pytest.fixture
def rerank(tiny_reranker_path: str) -> BGERerank:
    return BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=3)


def test_as_retriever_over_a_vector_store(store: InMemoryVectorStore, rerank: BGERerank) -> None:
    retriever = rerank.as_retriever(store, k=6)
    assert isinstance(retriever, BGERerankRetriever)
    assert retriever.reranker is rerank
    assert isinstance(retriever.base_retriever, VectorStoreRetriever)
    candidates = store.similarity_search(QUERY, k=6)
    result = retriever.invoke(QUERY)
    assert result == list(rerank.compress_documents(candidates, QUERY))
    assert len(result) == 3
    assert {d.id for d in result} <= {d.id for d in candidates}


def test_k_is_set_on_a_copy_of_a_vector_store_retriever(store: InMemoryVectorStore, rerank: BGERerank) -> None:
    base = store.as_retriever(search_kwargs={"k": 2, "filter": None})
    retriever = rerank.as_retriever(base, k=5)
    assert base.search_kwargs == {"k": 2, "filter": None}
    assert isinstance(retriever.base_retriever, VectorStoreRetriever)
    assert retriever.base_retriever.search_kwargs == {"k": 5, "filter": None}
    rerank.top_n = None
    assert len(retriever.invoke(QUERY)) == 5
    assert len(rerank.as_retriever(base).invoke(QUERY)) == 2


def test_k_is_set_on_a_copy_of_a_retriever_with_a_k_field(rerank: BGERerank) -> None:
    base = ListRetriever(docs=[Document(text) for text in PASSAGES], k=1)
    retriever = rerank.as_retriever(base, k=4)
    assert base.k == 1
    assert retriever.base_retriever.k == 4  # type: ignore[attr-defined]
    rerank.top_n = None
    assert [d.page_content for d in retriever.invoke(QUERY)] != []
    assert len(retriever.invoke(QUERY)) == 4


@pytest.mark.parametrize(("k", "match"), [(3, "k=3 cannot be set on a NoK"), (0, "k must be an int > 0, got 0")])
def test_bad_k_is_named(rerank: BGERerank, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rerank.as_retriever(NoK(), k=k)


def test_any_runnable_is_a_base_retriever(rerank: BGERerank) -> None:
    docs = [Document(text) for text in PASSAGES[:4]]
    retriever = BGERerankRetriever(base_retriever=RunnableLambda(lambda _query: docs), reranker=rerank)
    assert retriever.invoke(QUERY) == list(rerank.compress_documents(docs, QUERY))


class LastFirst(BaseDocumentCompressor):
    """A compressor that is not ours: reverses the candidates."""

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        return list(reversed(documents))


def test_any_document_compressor_is_a_reranker() -> None:
    docs = [Document(text) for text in PASSAGES[:3]]
    retriever = BGERerankRetriever(base_retriever=RunnableLambda(lambda _query: docs), reranker=LastFirst())
    assert retriever.invoke(QUERY) == docs[::-1]
    with pytest.raises(ValidationError, match="reranker"):
        BGERerankRetriever(base_retriever=RunnableLambda(lambda _query: docs), reranker=lambda docs: docs)


def test_no_candidates_load_nothing(rerank: BGERerank) -> None:
    assert rerank.as_retriever(NoK()).invoke(QUERY) == []
    assert REGISTRY.load_count == 0


async def test_async_equals_sync(store: InMemoryVectorStore, rerank: BGERerank) -> None:
    retriever = rerank.as_retriever(store, k=6)
    assert await retriever.ainvoke(QUERY) == retriever.invoke(QUERY)
    assert await rerank.as_retriever(NoK()).ainvoke(QUERY) == []


async def test_callbacks_and_arguments_reach_the_base_retriever(rerank: BGERerank) -> None:
    base = ListRetriever(docs=[Document(text) for text in PASSAGES], k=4)
    retriever = rerank.as_retriever(base)
    for call in (retriever.invoke, retriever.ainvoke):
        runs = RetrieverRuns()
        result = call(QUERY, config={"callbacks": [runs]}, extra="x")
        if not isinstance(result, list):
            result = await result
        assert len(result) == 3
        (outer, outer_parent), (inner, inner_parent) = runs.starts
        assert outer_parent is None
        assert inner_parent == outer
        assert inner != outer
    assert base.seen == [{"extra": "x"}, {"async": True, "extra": "x"}]


async def test_same_as_contextual_compression_retriever(store: InMemoryVectorStore, rerank: BGERerank) -> None:
    base = store.as_retriever(search_kwargs={"k": 6})
    classic = ContextualCompressionRetriever(base_compressor=rerank, base_retriever=base)
    ours = rerank.as_retriever(base)
    expected = classic.invoke(QUERY)
    assert [d.metadata["relevance_score"] for d in expected] == sorted(
        (d.metadata["relevance_score"] for d in expected), reverse=True
    )
    assert ours.invoke(QUERY) == expected
    assert await ours.ainvoke(QUERY) == await classic.ainvoke(QUERY) == expected
