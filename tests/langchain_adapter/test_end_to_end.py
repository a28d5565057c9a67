"""Offline RAG retrieval: our embeddings in an InMemoryVectorStore, BGERerank on top."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import REGISTRY
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
