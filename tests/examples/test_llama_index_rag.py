"""examples/llama_index_rag.py: what its docstring claims about LlamaIndex's query engine holds."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from llama_index.llms.openai_like import OpenAILike
from qdrant_client import QdrantClient

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.llama_index import BGEEmbedding, BGERerank

if TYPE_CHECKING:
    from tests.examples.conftest import FakeLLM

pytestmark = [
    pytest.mark.allow_hosts(["127.0.0.1"]),
    pytest.mark.parametrize("example", ["llama_index_rag"], indirect=True),
]


def test_a_query_engine_runs_the_same_steps_in_one_call(
    example: ModuleType,
    tiny_embedder_path: str,
    tiny_reranker_path: str,
    fake_llm: FakeLLM,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BGE_RAG_LLM_MODEL", "tiny-chat")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    question = QUERIES[0]
    [result] = example.main(
        [question], model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu", top_k=5, top_n=2
    )

    client = QdrantClient(location=":memory:")
    index, added = example.open_index(client, BGEEmbedding(tiny_embedder_path, device="cpu"), PASSAGES)
    assert added == len(PASSAGES)
    llm = OpenAILike(model="tiny-chat", api_base=fake_llm.base_url, api_key="not-needed", is_chat_model=True)
    engine = index.as_query_engine(
        llm=llm,
        similarity_top_k=5,
        node_postprocessors=[BGERerank(model=tiny_reranker_path, top_n=2, device="cpu")],
        text_qa_template=example.QA_TEMPLATE,
    )
    response = engine.query(question)
    client.close()

    assert str(response) == result.answer == fake_llm.answer
    assert [(n.node.get_content(), n.score) for n in response.source_nodes] == [
        (p.text, p.rerank_score) for p in result.reranked
    ]
    first, second = fake_llm.requests
    assert second["body"]["messages"] == first["body"]["messages"]
