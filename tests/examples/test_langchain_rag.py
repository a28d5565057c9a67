"""examples/langchain_rag.py: what its docstring claims about ``BGERerank.as_retriever`` holds."""

from __future__ import annotations

from types import ModuleType

import pytest

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.langchain import BGEEmbeddings, BGERerank

pytestmark = [
    pytest.mark.allow_hosts(["127.0.0.1"]),
    pytest.mark.parametrize("example", ["langchain_rag"], indirect=True),
]


def test_as_retriever_does_retrieval_and_reranking_in_one_retriever(
    example: ModuleType, tiny_embedder_path: str, tiny_reranker_path: str
) -> None:
    question = QUERIES[2]
    [result] = example.main(
        [question], model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu", top_k=5, top_n=2
    )

    store = example.open_store(BGEEmbeddings(model_name=tiny_embedder_path, device="cpu"), None)
    assert example.index_passages(store, PASSAGES) == len(PASSAGES)
    assert example.index_passages(store, PASSAGES) == 0  # a filled collection is left as it is
    retriever = BGERerank(model_name=tiny_reranker_path, top_n=2, device="cpu").as_retriever(store, k=5)
    documents = retriever.invoke(question)

    assert [(d.page_content, d.metadata["relevance_score"]) for d in documents] == [
        (p.text, p.rerank_score) for p in result.reranked
    ]
