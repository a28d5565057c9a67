"""Inside LlamaIndex: VectorStoreIndex + MockLLM + BGERerank, and IngestionPipeline (all offline)."""

from __future__ import annotations

import numpy as np
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.schema import MetadataMode, TextNode

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.loading import REGISTRY
from bge_integrations.llama_index import RETRIEVAL_SCORE_KEY, BGEEmbedding, BGERerank
from tests.llama_index_adapter.conftest import PASSAGES, QUERY


def nodes() -> list[TextNode]:
    return [TextNode(text=text, id_=f"n{i}", metadata={"source": f"doc{i}"}) for i, text in enumerate(PASSAGES)]


@pytest.fixture
def index(embedding: BGEEmbedding) -> VectorStoreIndex:
    return VectorStoreIndex(nodes(), embed_model=embedding)


def expected_sources(index: VectorStoreIndex, tiny_reranker_path: str) -> list[tuple[str, float, float]]:
    """(node id, rerank score, retrieval score) of the best 2 of the 4 retrieved nodes, by the core."""
    retrieved = index.as_retriever(similarity_top_k=4).retrieve(QUERY)
    texts = [r.node.get_content(metadata_mode=MetadataMode.EMBED) for r in retrieved]
    ranked = BGEReranker(tiny_reranker_path, device="cpu").rank(QUERY, texts, top_n=2)
    return [(retrieved[i.index].node.node_id, i.score, retrieved[i.index].score) for i in ranked]


def sources(response: object) -> list[tuple[str, float, float]]:
    return [(s.node.node_id, s.score, s.node.metadata[RETRIEVAL_SCORE_KEY]) for s in response.source_nodes]  # type: ignore[attr-defined]


def test_retrieval_uses_query_vectors_and_document_vectors(index: VectorStoreIndex, tiny_embedder_path: str) -> None:
    core = BGEEmbedder(tiny_embedder_path, device="cpu")
    query, docs = (
        np.array(core.embed_query(QUERY)),
        np.array(core.embed_documents([n.get_content(MetadataMode.EMBED) for n in nodes()])),
    )
    best = index.as_retriever(similarity_top_k=1).retrieve(QUERY)[0]
    assert best.node.node_id == f"n{int(np.argmax(docs @ query))}"
    assert best.score == pytest.approx(float(np.max(docs @ query)), abs=1e-5)


def test_query_engine_reranks(index: VectorStoreIndex, rerank: BGERerank, tiny_reranker_path: str) -> None:
    rerank.top_n = 2
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=4, node_postprocessors=[rerank])
    assert sources(engine.query(QUERY)) == expected_sources(index, tiny_reranker_path)
    assert REGISTRY.load_count == 2


async def test_async_query_engine_reranks(index: VectorStoreIndex, rerank: BGERerank, tiny_reranker_path: str) -> None:
    rerank.top_n = 2
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=4, node_postprocessors=[rerank])
    assert sources(await engine.aquery(QUERY)) == expected_sources(index, tiny_reranker_path)


def test_ingestion_pipeline_vectors_equal_the_core(embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
    out = IngestionPipeline(transformations=[embedding]).run(nodes=nodes())
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes()]
    assert [n.embedding for n in out] == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(texts)


async def test_async_ingestion_pipeline(embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
    out = await IngestionPipeline(transformations=[embedding]).arun(nodes=nodes())
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes()]
    assert [n.embedding for n in out] == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(texts)


def test_ingestion_cache_sees_changed_settings(embedding: BGEEmbedding, tiny_embedder_path: str) -> None:
    first = IngestionPipeline(transformations=[embedding])
    plain = [n.embedding for n in first.run(nodes=nodes())]
    prefixed = BGEEmbedding(tiny_embedder_path, device="cpu", text_instruction="passage: ")
    second = [n.embedding for n in IngestionPipeline(transformations=[prefixed], cache=first.cache).run(nodes=nodes())]
    texts = ["passage: " + n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes()]
    assert second == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(texts) != plain
