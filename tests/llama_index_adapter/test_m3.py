"""bge-m3 in LlamaIndex: sparse embedding, Qdrant hybrid search functions, reranker, docs snippet."""

from __future__ import annotations

import asyncio
import copy
import pickle
import re
import shutil
from pathlib import Path

import pytest
import qdrant_client
from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding
from llama_index.core.instrumentation.events.embedding import SparseEmbeddingEndEvent, SparseEmbeddingStartEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode
from llama_index.vector_stores.qdrant import QdrantVectorStore

from bge_integrations import BGEM3Embedder, BGEM3Reranker, MissingHeadError
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.m3_scoring import dense_score, lexical_score
from bge_integrations.llama_index import (
    M3_SCORE_KEYS,
    RETRIEVAL_SCORE_KEY,
    BGEEmbedding,
    BGEM3Rerank,
    BGEM3SparseEmbedding,
    bge_m3_sparse_fns,
)
from tests.llama_index_adapter.conftest import PASSAGES, QUERY, Recorder, scored_nodes

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

CORPUS = [*PASSAGES, "Pandas eat bamboo in the mountains of Sichuan.", "Giant pandas live in China."]
DOCS = Path(__file__).parents[2] / "docs" / "llama_index.md"


@pytest.fixture
def sparse(tiny_m3_path: str) -> BGEM3SparseEmbedding:
    return BGEM3SparseEmbedding(tiny_m3_path, device="cpu")


@pytest.fixture
def core(tiny_m3_path: str) -> BGEM3Embedder:
    return BGEM3Embedder(tiny_m3_path, device="cpu")


def without_head(tiny_m3_path: str, tmp_path: Path, head: str) -> str:
    folder = tmp_path / "m3"
    shutil.copytree(tiny_m3_path, folder)
    (folder / head).unlink()
    return str(folder)


# --- BGEM3SparseEmbedding ----------------------------------------------------------------------


class TestSparseEmbedding:
    def test_is_a_llama_index_sparse_embedding(self, sparse: BGEM3SparseEmbedding) -> None:
        assert isinstance(sparse, BaseSparseEmbedding)
        assert sparse.class_name() == "BGEM3SparseEmbedding"
        assert sparse.embed_batch_size == sparse.batch_size == sparse.core.batch_size == 32

    def test_weights_equal_the_core(self, sparse: BGEM3SparseEmbedding, core: BGEM3Embedder) -> None:
        expected_docs = [s.as_dict() for s in core.embed_sparse_documents(CORPUS)]
        assert sparse.get_text_embedding_batch(CORPUS) == expected_docs
        assert sparse.get_text_embedding_batch(CORPUS, show_progress=True) == expected_docs
        assert [sparse.get_text_embedding(text) for text in CORPUS[:2]] == expected_docs[:2]
        query = sparse.get_query_embedding(QUERY)
        assert query == core.embed_sparse_query(QUERY).as_dict()
        assert all(isinstance(k, int) and isinstance(v, float) and v > 0 for k, v in query.items())

    def test_query_instruction_reaches_queries_only(self, tiny_m3_path: str, core: BGEM3Embedder) -> None:
        prefixed = BGEM3SparseEmbedding(tiny_m3_path, device="cpu", query_instruction="query: ")
        assert prefixed.get_query_embedding(QUERY) == core.embed_sparse_documents(["query: " + QUERY])[0].as_dict()
        assert prefixed.get_query_embedding(QUERY) != core.embed_sparse_query(QUERY).as_dict()
        assert prefixed.get_text_embedding(QUERY) == core.embed_sparse_documents([QUERY])[0].as_dict()

    def test_async_equals_sync(self, sparse: BGEM3SparseEmbedding) -> None:
        async def run() -> tuple[object, ...]:
            return (
                await sparse.aget_query_embedding(QUERY),
                await sparse.aget_text_embedding(CORPUS[0]),
                await sparse.aget_text_embedding_batch(CORPUS),
            )

        query, text, batch = asyncio.run(run())
        assert query == sparse.get_query_embedding(QUERY)
        assert text == sparse.get_text_embedding(CORPUS[0])
        assert batch == sparse.get_text_embedding_batch(CORPUS)

    def test_batch_events_one_pair_per_chunk(self, tiny_m3_path: str, recorder: Recorder) -> None:
        sparse = BGEM3SparseEmbedding(tiny_m3_path, device="cpu", batch_size=3)
        out = sparse.get_text_embedding_batch(CORPUS)
        assert len(recorder.of(SparseEmbeddingStartEvent)) == 3  # 7 texts in chunks of 3
        ends = recorder.of(SparseEmbeddingEndEvent)
        assert [event.chunks for event in ends] == [CORPUS[0:3], CORPUS[3:6], CORPUS[6:]]
        assert [e for event in ends for e in event.embeddings] == out

    def test_shares_the_encoder_with_the_dense_embedding(self, sparse: BGEM3SparseEmbedding, tiny_m3_path: str) -> None:
        dense = BGEEmbedding(tiny_m3_path, device="cpu")
        dense.get_query_embedding(QUERY)
        sparse.get_query_embedding(QUERY)
        assert dense.core.load_key == sparse.core.load_key
        assert sorted(key.kind for key in REGISTRY.loaded_keys()) == ["embedder", "m3-heads"]  # once each

    def test_dict_round_trip_and_pickle(self, tiny_m3_path: str) -> None:
        sparse = BGEM3SparseEmbedding(tiny_m3_path, device="cpu", batch_size=4, max_length=64, token="hf_secret")
        data = sparse.to_dict()
        assert data["class_name"] == "BGEM3SparseEmbedding"
        assert data["embed_batch_size"] == 4
        assert data["max_length"] == 64
        assert "token" not in data
        assert "hf_secret" not in repr(sparse)
        twin = BGEM3SparseEmbedding.from_dict(data)
        assert twin.to_dict() == data
        vector = sparse.get_query_embedding(QUERY)
        unpickled = pickle.loads(pickle.dumps(sparse))
        assert len(pickle.dumps(sparse)) < 5_000
        assert unpickled.get_query_embedding(QUERY) == vector
        assert copy.deepcopy(sparse).get_query_embedding(QUERY) == vector
        assert REGISTRY.load_count == 2  # the encoder and the heads, loaded once

    def test_data_cannot_switch_on_remote_code(self, tiny_m3_path: str) -> None:
        data = BGEM3SparseEmbedding(tiny_m3_path, device="cpu").to_dict()
        with pytest.raises(ValueError, match="trust_remote_code"):
            BGEM3SparseEmbedding.from_dict({**data, "trust_remote_code": True})
        with pytest.raises(ValueError, match="trust_remote_code"):
            BGEM3SparseEmbedding.model_validate({"model_name": tiny_m3_path, "trust_remote_code": True})

    def test_errors_name_the_bad_value(self, tiny_m3_path: str, sparse: BGEM3SparseEmbedding) -> None:
        with pytest.raises(ValueError, match="pooling"):
            BGEM3SparseEmbedding(tiny_m3_path, pooling="mean")  # dense-only settings are not fields
        with pytest.raises(ValueError, match=r"one setting, got 3 and 4"):
            BGEM3SparseEmbedding(tiny_m3_path, batch_size=3, embed_batch_size=4)
        with pytest.raises(ValueError, match="max_length"):
            BGEM3SparseEmbedding(tiny_m3_path, max_length=0)
        with pytest.raises(TypeError, match=r"texts\[1\]"):
            sparse.get_text_embedding_batch(["fine", 3])
        with pytest.raises(TypeError, match="query"):
            sparse.get_query_embedding(None)

    def test_missing_sparse_head_is_named(self, tiny_m3_path: str, tmp_path: Path) -> None:
        sparse = BGEM3SparseEmbedding(without_head(tiny_m3_path, tmp_path, "sparse_linear.pt"), device="cpu")
        with pytest.raises(MissingHeadError, match=r"sparse_linear\.pt"):
            sparse.get_query_embedding(QUERY)


# --- Qdrant hybrid search ------------------------------------------------------------------------


def node_id(i: int) -> str:
    return f"00000000-0000-0000-0000-{i:012d}"  # Qdrant point ids are UUIDs


def corpus_nodes() -> list[TextNode]:
    return [TextNode(text=text, id_=node_id(i)) for i, text in enumerate(CORPUS)]


def hybrid_index(dense: BGEEmbedding, sparse: BGEM3SparseEmbedding) -> VectorStoreIndex:
    doc_fn, query_fn = bge_m3_sparse_fns(sparse)
    store = QdrantVectorStore(
        "docs",
        client=qdrant_client.QdrantClient(location=":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=doc_fn,
        sparse_query_fn=query_fn,
    )
    return VectorStoreIndex(
        corpus_nodes(), storage_context=StorageContext.from_defaults(vector_store=store), embed_model=dense
    )


def min_max(scores: dict[int, float]) -> dict[int, float]:
    low, high = min(scores.values()), max(scores.values())
    return {i: (s - low) / (high - low) for i, s in scores.items()}


class TestQdrantHybrid:
    def test_fns_return_the_core_weights(self, sparse: BGEM3SparseEmbedding, core: BGEM3Embedder) -> None:
        for model in (sparse, core):
            doc_fn, query_fn = bge_m3_sparse_fns(model)
            indices, values = doc_fn(CORPUS[:3])
            expected = core.embed_sparse_documents(CORPUS[:3])
            assert indices == [list(s.indices) for s in expected]
            assert values == [list(s.values) for s in expected]
            assert query_fn([QUERY]) == (
                [list(core.embed_sparse_query(QUERY).indices)],
                [list(core.embed_sparse_query(QUERY).values)],
            )

    def test_query_fn_reads_the_query_instruction(self, tiny_m3_path: str) -> None:
        prefixed = BGEM3SparseEmbedding(tiny_m3_path, device="cpu", query_instruction="query: ")
        doc_fn, query_fn = bge_m3_sparse_fns(prefixed)
        query = prefixed.get_query_embedding(QUERY)
        text = prefixed.get_text_embedding(QUERY)
        assert query != text
        assert query_fn([QUERY]) == ([list(query)], [list(query.values())])
        assert doc_fn([QUERY]) == ([list(text)], [list(text.values())])

    def test_fns_pickle_and_refuse_other_models(self, sparse: BGEM3SparseEmbedding) -> None:
        doc_fn, _ = bge_m3_sparse_fns(sparse)
        assert pickle.loads(pickle.dumps(doc_fn))(CORPUS[:2]) == doc_fn(CORPUS[:2])
        with pytest.raises(TypeError, match="BGEM3SparseEmbedding or a BGEM3Embedder, got str"):
            bge_m3_sparse_fns("BAAI/bge-m3")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"texts must be a sequence of strings, got a single str"):
            doc_fn("one text")  # type: ignore[arg-type]

    def test_sparse_mode_is_the_core_lexical_ranking(
        self, sparse: BGEM3SparseEmbedding, core: BGEM3Embedder, tiny_m3_path: str
    ) -> None:
        index = hybrid_index(BGEEmbedding(tiny_m3_path, device="cpu"), sparse)
        retriever = index.as_retriever(vector_store_query_mode="sparse", sparse_top_k=len(CORPUS))
        hits = retriever.retrieve(QUERY)
        query = core.embed_sparse_query(QUERY)
        lexical = {i: lexical_score(query, doc) for i, doc in enumerate(core.embed_sparse_documents(CORPUS))}
        expected = sorted((i for i in lexical if lexical[i] > 0), key=lambda i: -lexical[i])
        assert len(expected) >= 4  # the corpus shares tokens with the query: a real ranking
        assert [hit.node.node_id for hit in hits] == [node_id(i) for i in expected]
        assert [hit.score for hit in hits] == pytest.approx([lexical[i] for i in expected], rel=1e-5)

    def test_hybrid_mode_fuses_core_scores(
        self, sparse: BGEM3SparseEmbedding, core: BGEM3Embedder, tiny_m3_path: str
    ) -> None:
        dense = BGEEmbedding(tiny_m3_path, device="cpu")
        index = hybrid_index(dense, sparse)
        k = len(CORPUS)
        hits = index.as_retriever(vector_store_query_mode="hybrid", similarity_top_k=k, sparse_top_k=k).retrieve(QUERY)
        # brute force: the store's relative score fusion (min-max per list, alpha=0.5) on core scores
        query_vector = dense.get_query_embedding(QUERY)
        cosine = {i: dense_score(query_vector, v) for i, v in enumerate(core.embed_documents(CORPUS))}
        query = core.embed_sparse_query(QUERY)
        lexical = {i: lexical_score(query, d) for i, d in enumerate(core.embed_sparse_documents(CORPUS))}
        lexical_norm = min_max({i: s for i, s in lexical.items() if s > 0})
        cosine_norm = min_max(cosine)
        fused = {i: 0.5 * lexical_norm.get(i, 0.0) + 0.5 * cosine_norm[i] for i in range(k)}
        expected = sorted(fused, key=lambda i: -fused[i])
        assert [hit.node.node_id for hit in hits] == [node_id(i) for i in expected]
        assert [hit.score for hit in hits] == pytest.approx([fused[i] for i in expected], abs=1e-4)
        lexical_order = sorted(lexical, key=lambda i: -lexical[i])
        dense_order = sorted(cosine, key=lambda i: -cosine[i])
        assert lexical_order != dense_order  # so the fusion is tested, not one list

    def test_async_store(self, sparse: BGEM3SparseEmbedding, core: BGEM3Embedder, tiny_m3_path: str) -> None:
        doc_fn, query_fn = bge_m3_sparse_fns(sparse)
        store = QdrantVectorStore(
            "docs",
            aclient=qdrant_client.AsyncQdrantClient(location=":memory:"),
            enable_hybrid=True,
            sparse_doc_fn=doc_fn,
            sparse_query_fn=query_fn,
        )

        async def run() -> list[NodeWithScore]:
            index = VectorStoreIndex(
                corpus_nodes(),
                storage_context=StorageContext.from_defaults(vector_store=store),
                embed_model=BGEEmbedding(tiny_m3_path, device="cpu"),
                use_async=True,
            )
            retriever = index.as_retriever(vector_store_query_mode="sparse", sparse_top_k=3)
            return await retriever.aretrieve(QUERY)

        hits = asyncio.run(run())
        query = core.embed_sparse_query(QUERY)
        lexical = [lexical_score(query, doc) for doc in core.embed_sparse_documents(CORPUS)]
        expected = sorted(range(len(CORPUS)), key=lambda i: -lexical[i])[:3]
        assert [hit.node.node_id for hit in hits] == [node_id(i) for i in expected]


# --- BGEM3Rerank -------------------------------------------------------------------------------


def texts_of(nodes: list[NodeWithScore]) -> list[str]:
    return [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


@pytest.fixture
def m3_rerank(tiny_m3_path: str) -> BGEM3Rerank:
    return BGEM3Rerank(model=tiny_m3_path, device="cpu", top_n=3)


class TestRerank:
    def test_is_a_node_postprocessor(self, m3_rerank: BGEM3Rerank) -> None:
        assert isinstance(m3_rerank, BaseNodePostprocessor)
        assert m3_rerank.class_name() == "BGEM3Rerank"
        assert BGEM3Rerank(m3_rerank.model).top_n == 2  # as BGERerank and SentenceTransformerRerank

    def test_order_scores_and_components_equal_the_core(self, m3_rerank: BGEM3Rerank, tiny_m3_path: str) -> None:
        nodes = scored_nodes()
        expected = BGEM3Reranker(tiny_m3_path, device="cpu").rank(QUERY, texts_of(nodes), top_n=3)
        out = m3_rerank.postprocess_nodes(nodes, query_str=QUERY)
        assert [(n.node.node_id, n.score) for n in out] == [(f"n{item.index}", item.score) for item in expected]
        for result, item in zip(out, expected, strict=True):
            metadata = result.node.metadata
            assert {name: metadata[key] for name, key in M3_SCORE_KEYS.items()} == item.components()
            assert metadata[RETRIEVAL_SCORE_KEY] == nodes[item.index].score
            assert metadata["source"] == f"doc{item.index}"
            hidden = {RETRIEVAL_SCORE_KEY, *M3_SCORE_KEYS.values()}
            assert hidden <= set(result.node.excluded_llm_metadata_keys)
            assert hidden <= set(result.node.excluded_embed_metadata_keys)
            assert "dense_score" not in result.node.get_content(metadata_mode=MetadataMode.LLM)

    def test_inputs_untouched_and_rerank_twice_is_stable(self, m3_rerank: BGEM3Rerank) -> None:
        nodes = scored_nodes()
        before = [(n.score, dict(n.node.metadata), list(n.node.excluded_llm_metadata_keys)) for n in nodes]
        once = m3_rerank.postprocess_nodes(nodes, query_str=QUERY)
        assert [(n.score, n.node.metadata, n.node.excluded_llm_metadata_keys) for n in nodes] == before
        twice = m3_rerank.postprocess_nodes(once, query_str=QUERY)
        assert [(n.node.node_id, n.score) for n in twice] == [(n.node.node_id, n.score) for n in once]
        assert twice[0].node.excluded_llm_metadata_keys == once[0].node.excluded_llm_metadata_keys

    def test_weights_threshold_and_flags(self, tiny_m3_path: str) -> None:
        dense_only = BGEM3Rerank(tiny_m3_path, top_n=None, weights=(1, 0, 0), device="cpu")
        out = dense_only.postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert [n.score for n in out] == [n.node.metadata["dense_score"] for n in out]
        middle = sorted(n.get_score() for n in out)[2]
        kept = BGEM3Rerank(tiny_m3_path, top_n=None, weights=[1, 0, 0], score_threshold=middle)
        assert [n.score for n in kept.postprocess_nodes(scored_nodes(), query_str=QUERY)] == [
            n.score for n in out if n.get_score() >= middle
        ]
        bare = BGEM3Rerank(tiny_m3_path, keep_retrieval_score=False, keep_component_scores=False)
        nodes = scored_nodes()
        result = bare.postprocess_nodes(nodes, query_str=QUERY)
        assert all(any(r.node is n.node for n in nodes) for r in result)  # the caller's nodes, unchanged

    def test_async_equals_sync(self, m3_rerank: BGEM3Rerank) -> None:
        sync = m3_rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        got = asyncio.run(m3_rerank.apostprocess_nodes(scored_nodes(), query_str=QUERY))
        assert [(n.node.node_id, n.score, n.node.metadata) for n in got] == [
            (n.node.node_id, n.score, n.node.metadata) for n in sync
        ]

    def test_events(self, m3_rerank: BGEM3Rerank, recorder: Recorder) -> None:
        out = m3_rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        (start,) = recorder.of(ReRankStartEvent)
        (end,) = recorder.of(ReRankEndEvent)
        assert (start.top_n, start.model_name, start.query.query_str) == (3, m3_rerank.model, QUERY)
        assert end.nodes == out

    def test_dict_round_trip_and_pickle(self, tiny_m3_path: str) -> None:
        rerank = BGEM3Rerank(tiny_m3_path, top_n=1, weights=(1, 1, 1), device="cpu", token="hf_secret")
        data = rerank.to_dict()
        assert "token" not in data
        assert "hf_secret" not in repr(rerank)
        twin = BGEM3Rerank.from_dict(data)
        assert twin.weights == (1.0, 1.0, 1.0)
        assert twin.core.weights == (1.0, 1.0, 1.0)
        scores = [n.score for n in rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)]
        unpickled = pickle.loads(pickle.dumps(rerank))
        assert len(pickle.dumps(rerank)) < 5_000
        assert [n.score for n in unpickled.postprocess_nodes(scored_nodes(), query_str=QUERY)] == scores
        with pytest.raises(ValueError, match="trust_remote_code"):
            BGEM3Rerank.from_dict({**data, "trust_remote_code": True})

    def test_errors_name_the_bad_value(self, m3_rerank: BGEM3Rerank, tiny_m3_path: str, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"weights must be three numbers .*got \(1, 2\)"):
            BGEM3Rerank(tiny_m3_path, weights=(1, 2))
        with pytest.raises(ValueError, match="model must be a hub id or a local path, got ' '"):
            BGEM3Rerank(" ")
        with pytest.raises(ValueError, match="top_n"):
            BGEM3Rerank(tiny_m3_path, top_n=0)
        with pytest.raises(ValueError, match="colour"):
            BGEM3Rerank(tiny_m3_path, colour="red")
        with pytest.raises(ValueError, match="BGEM3Rerank needs a query"):
            m3_rerank.postprocess_nodes(scored_nodes())
        with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore.*wrap a node"):
            m3_rerank.postprocess_nodes([TextNode(text="x")], query_str=QUERY)  # type: ignore[list-item]
        no_colbert = BGEM3Rerank(without_head(tiny_m3_path, tmp_path, "colbert_linear.pt"), device="cpu")
        with pytest.raises(MissingHeadError, match=r"colbert_linear\.pt"):
            no_colbert.postprocess_nodes(scored_nodes(), query_str=QUERY)


# --- the docs snippet --------------------------------------------------------------------------


def test_docs_snippet_runs(tiny_m3_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## bge-m3: dense, sparse and ColBERT") :]
    code = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)[0]
    assert code.count("BAAI/bge-m3") == 3
    exec(compile(code.replace("BAAI/bge-m3", tiny_m3_path), "docs/llama_index.md bge-m3", "exec"), {})
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2  # both documents, reranked, each with its sparse score
