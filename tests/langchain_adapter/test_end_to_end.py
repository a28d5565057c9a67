"""Offline RAG retrieval: our embeddings in an InMemoryVectorStore, BGERerank on top."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.notices import TruncationWarning
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.langchain import BGEEmbeddings, BGERerank

K = 5


@pytest.fixture
def docs() -> list[Document]:
    return [Document(text, id=f"p{i}", metadata={"source": "demo", "n": [i]}) for i, text in enumerate(PASSAGES)]


def _expected(query: str, embedder_path: str, reranker_path: str) -> list[tuple[str, float]]:
    """The same pipeline written with the core alone: cosine top-K, then rerank to top 2."""
    embedder = BGEEmbedder(embedder_path, device="cpu")
    doc_vectors = np.array(embedder.embed_documents(list(PASSAGES)))
    similarity = doc_vectors @ np.array(embedder.embed_query(query))
    candidates = [int(i) for i in np.argsort(-similarity, kind="stable")[:K]]
    ranked = BGEReranker(reranker_path, device="cpu").rank(query, [PASSAGES[i] for i in candidates], top_n=2)
    return [(f"p{candidates[item.index]}", item.score) for item in ranked]


async def test_contextual_compression_over_our_embeddings(
    docs: list[Document], tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    before = copy.deepcopy(docs)
    store = InMemoryVectorStore(BGEEmbeddings(model_name=tiny_embedder_path, device="cpu"))
    await store.aadd_documents(docs)
    retriever = ContextualCompressionRetriever(
        base_compressor=BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=2),
        base_retriever=store.as_retriever(search_kwargs={"k": K}),
    )
    for query in QUERIES:
        expected = _expected(query, tiny_embedder_path, tiny_reranker_path)
        for hits in (retriever.invoke(query), await retriever.ainvoke(query)):
            assert [(hit.id, hit.metadata["relevance_score"]) for hit in hits] == expected
            assert all(hit.metadata["source"] == "demo" for hit in hits)
    assert docs == before
    assert REGISTRY.load_count == 2  # one embedder and one reranker, whatever the number of objects


async def test_one_call_retriever_over_our_embeddings(
    docs: list[Document], tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    store = InMemoryVectorStore(BGEEmbeddings(model_name=tiny_embedder_path, device="cpu"))
    store.add_documents(docs)
    retriever = BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=2).as_retriever(store, k=K)
    query = QUERIES[0]
    expected = _expected(query, tiny_embedder_path, tiny_reranker_path)
    assert [(hit.id, hit.metadata["relevance_score"]) for hit in retriever.invoke(query)] == expected
    assert await retriever.ainvoke(query) == retriever.invoke(query)


# --- a truncation warning points at the caller's line, through LangChain's frames too ----------

LONG = " ".join(["Giant pandas live in the bamboo forests of the mountains of Sichuan."] * 12)


def _truncation_records(record: pytest.WarningsRecorder) -> list[warnings.WarningMessage]:
    found = [w for w in record if issubclass(w.category, TruncationWarning)]
    assert found
    return found


def test_truncation_warning_from_a_vector_store_points_here(tiny_embedder_path: str) -> None:
    store = InMemoryVectorStore(BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", max_length=16))
    with pytest.warns(TruncationWarning) as record:
        store.add_texts([LONG, "short"])
    assert [w.filename for w in _truncation_records(record)] == [__file__]


def test_truncation_warning_from_a_compression_retriever_points_here(
    docs: list[Document], tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    store = InMemoryVectorStore(BGEEmbeddings(model_name=tiny_embedder_path, device="cpu"))
    store.add_documents([*docs, Document(LONG, id="long")])
    retriever = ContextualCompressionRetriever(
        base_compressor=BGERerank(model_name=tiny_reranker_path, device="cpu", windows=False, max_length=64),
        base_retriever=store.as_retriever(search_kwargs={"k": len(docs) + 1}),
    )
    with pytest.warns(TruncationWarning, match=r"passages \(windows=False\)") as record:
        retriever.invoke(QUERIES[0])
    assert [w.filename for w in _truncation_records(record)] == [__file__]
