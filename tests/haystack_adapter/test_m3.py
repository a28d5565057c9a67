"""The bge-m3 components against the core BGEM3Embedder / BGEM3Reranker, on the committed tiny bge-m3.

Also: sparse and hybrid retrieval through haystack_integrations' in-memory QdrantDocumentStore,
YAML round-trips, and the bge-m3 snippet of docs/haystack.md.
"""

from __future__ import annotations

import copy
import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from haystack import DeserializationError, Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack.core import serialization_security
from haystack.dataclasses import SparseEmbedding

from bge_integrations import BGEM3Embedder, BGEM3Reranker
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.m3_scoring import lexical_score
from bge_integrations.core.m3_types import SparseEmbedding as CoreSparse
from bge_integrations.haystack import (
    BGEM3DocumentEmbedder,
    BGEM3Ranker,
    BGEM3SparseDocumentEmbedder,
    BGEM3SparseTextEmbedder,
    BGEM3TextEmbedder,
    BGETextEmbedder,
)
from bge_integrations.haystack.m3_rankers import SCORE_META_KEYS

ROOT = Path(__file__).resolve().parents[2]
QUERY = "Where do giant pandas live?"
DOCS = [
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda"}),
    Document(content="Paris is the capital and most populous city of France.", meta={"title": "Paris"}),
    Document(content="Mitochondria are the powerhouse of the cell."),
    Document(content="Giant pandas live in bamboo forests in the mountains.", meta={"title": None}),
    Document(content="Vitamin D deficiency is common in northern latitudes.", meta={"title": "Vitamin D"}),
]
TITLED = [f"{doc.meta['title']}\n{doc.content}" if doc.meta.get("title") else str(doc.content) for doc in DOCS]
COMPONENTS = [
    BGEM3DocumentEmbedder,
    BGEM3SparseDocumentEmbedder,
    BGEM3TextEmbedder,
    BGEM3SparseTextEmbedder,
    BGEM3Ranker,
]


def core(path: str) -> BGEM3Embedder:
    return BGEM3Embedder(path, device="cpu")


def as_core(sparse: SparseEmbedding) -> CoreSparse:
    return CoreSparse(indices=tuple(sparse.indices), values=tuple(sparse.values))


@pytest.fixture
def no_allowlist_env(monkeypatch):
    """Haystack's default allowlist only, whatever other tests in this process allowlisted."""
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    monkeypatch.setattr(serialization_security, "_extra_allowed_modules", [])
    monkeypatch.setattr(serialization_security, "_unsafe_env_snapshot", False)


# --- embedders --------------------------------------------------------------------------------


def test_document_embedder_fills_dense_and_sparse_as_the_core_does(tiny_m3_path):
    documents = copy.deepcopy(DOCS)
    before = copy.deepcopy(documents)
    embedder = BGEM3DocumentEmbedder(model=tiny_m3_path, device="cpu", meta_fields_to_embed=["title"])
    result = embedder.run(documents=documents)["documents"]
    expected = core(tiny_m3_path).encode_documents(TITLED, outputs=("dense", "sparse"))
    assert expected.dense is not None
    assert expected.sparse is not None
    assert [doc.embedding for doc in result] == expected.dense.tolist()
    assert all(isinstance(doc.sparse_embedding, SparseEmbedding) for doc in result)
    assert [as_core(doc.sparse_embedding) for doc in result] == expected.sparse
    assert [doc.id for doc in result] == [doc.id for doc in DOCS]
    assert documents == before  # copies: the inputs keep no embedding
    assert all(doc.embedding is None and doc.sparse_embedding is None for doc in documents)
    assert REGISTRY.load_count == 2  # the encoder and the heads, each once


@pytest.mark.parametrize(
    ("cls", "kwargs", "dense", "sparse"),
    [
        (BGEM3DocumentEmbedder, {"outputs": ["dense"]}, True, False),
        (BGEM3DocumentEmbedder, {"outputs": ["sparse"]}, False, True),
        (BGEM3DocumentEmbedder, {"outputs": "sparse,dense"}, True, True),
        (BGEM3SparseDocumentEmbedder, {}, False, True),
    ],
)
def test_document_embedder_fills_only_what_is_asked(cls, kwargs, dense, sparse, tiny_m3_path):
    old_dense, old_sparse = [9.0] * 32, SparseEmbedding(indices=[1], values=[9.0])
    documents = [Document(content=doc.content, embedding=old_dense, sparse_embedding=old_sparse) for doc in DOCS]
    result = cls(model=tiny_m3_path, device="cpu", progress_bar=False, **kwargs).run(documents=documents)["documents"]
    texts = [str(doc.content) for doc in DOCS]
    m3 = core(tiny_m3_path)
    assert [doc.embedding for doc in result] == (m3.embed_documents(texts) if dense else [old_dense] * len(DOCS))
    expected_sparse = [m3.embed_sparse_documents(texts)[i] for i in range(len(DOCS))]
    assert [as_core(doc.sparse_embedding) for doc in result] == (
        expected_sparse if sparse else [as_core(old_sparse)] * len(DOCS)
    )


def test_document_embedder_outputs_are_checked_and_saved_as_a_list(tiny_m3_path):
    embedder = BGEM3DocumentEmbedder(model=tiny_m3_path, outputs="sparse")
    assert embedder.to_dict()["init_parameters"]["outputs"] == ["sparse"]
    with pytest.raises(ValueError, match=r"a Document has no field for ColBERT vectors"):
        BGEM3DocumentEmbedder(model=tiny_m3_path, outputs=["dense", "colbert"])
    with pytest.raises(ValueError, match=r"outputs must be among .*, got 'lexical'"):
        BGEM3DocumentEmbedder(model=tiny_m3_path, outputs=["lexical"])
    with pytest.raises(ValueError, match=r"at least one"):
        BGEM3DocumentEmbedder(model=tiny_m3_path, outputs=[])
    embedder.outputs = ["colbert"]  # set after __init__: checked at run
    with pytest.raises(ValueError, match="colbert"):
        embedder.run(documents=DOCS)


def test_document_embedder_prefix_suffix_separator_and_empty_content(tiny_m3_path):
    documents = [Document(content=None, meta={"title": "T"}), Document(content="b", meta={"title": 3})]
    embedder = BGEM3DocumentEmbedder(
        model=tiny_m3_path,
        device="cpu",
        meta_fields_to_embed=["title"],
        embedding_separator=" | ",
        prefix="passage: ",
        suffix=" END",
        progress_bar=False,
    )
    result = embedder.run(documents=documents)["documents"]
    expected = BGEM3Embedder(tiny_m3_path, device="cpu", document_instruction="passage: ").encode_documents(
        ["T |  END", "3 | b END"]
    )
    assert expected.dense is not None
    assert expected.sparse is not None
    assert [doc.embedding for doc in result] == expected.dense.tolist()
    assert [as_core(doc.sparse_embedding) for doc in result] == expected.sparse


def test_text_embedders_equal_the_core_queries_and_share_the_model(tiny_m3_path):
    both = BGEM3TextEmbedder(model=tiny_m3_path, device="cpu").run(text=QUERY)
    sparse = BGEM3SparseTextEmbedder(model=tiny_m3_path, device="cpu").run(text=QUERY)
    dense = BGETextEmbedder(model=tiny_m3_path, device="cpu").run(text=QUERY)  # bge-m3's own dense embedder
    expected = core(tiny_m3_path).encode_queries([QUERY], outputs=("dense", "sparse"))
    assert expected.dense is not None
    assert expected.sparse is not None
    assert set(both) == {"embedding", "sparse_embedding"}
    assert both["embedding"] == expected.dense[0].tolist() == dense["embedding"]
    assert list(sparse) == ["sparse_embedding"]
    assert sparse["sparse_embedding"] == both["sparse_embedding"]
    assert as_core(sparse["sparse_embedding"]) == expected.sparse[0]
    assert REGISTRY.load_count == 2  # one encoder for all three components, plus the heads


def test_text_embedder_prefix_and_suffix(tiny_m3_path):
    got = BGEM3SparseTextEmbedder(model=tiny_m3_path, device="cpu", prefix="query: ", suffix="?")
    expected = BGEM3Embedder(tiny_m3_path, device="cpu", query_instruction="query: ").embed_sparse_query(QUERY + "?")
    assert as_core(got.run(text=QUERY)["sparse_embedding"]) == expected


@pytest.mark.parametrize("cls", [BGEM3TextEmbedder, BGEM3SparseTextEmbedder])
def test_text_embedders_refuse_non_strings(cls, tiny_m3_path):
    embedder = cls(model=tiny_m3_path, device="cpu")
    with pytest.raises(TypeError, match=rf"{cls.__name__} expects a string as text, got list: \['a'\]"):
        embedder.run(text=["a"])
    assert REGISTRY.load_count == 0


@pytest.mark.parametrize("cls", [BGEM3DocumentEmbedder, BGEM3SparseDocumentEmbedder])
def test_document_embedders_refuse_non_documents(cls, tiny_m3_path):
    embedder = cls(model=tiny_m3_path, device="cpu")
    with pytest.raises(TypeError, match=rf"{cls.__name__} expects a list of Documents, got str: 'a'"):
        embedder.run(documents="a")
    with pytest.raises(TypeError, match=r"documents\[1\] is str"):
        embedder.run(documents=[Document(content="x"), "y"])
    assert embedder.run(documents=[]) == {"documents": []}
    assert REGISTRY.load_count == 0


async def test_run_async_equals_run(tiny_m3_path):
    docs = BGEM3DocumentEmbedder(model=tiny_m3_path, device="cpu", progress_bar=False)
    assert (await docs.run_async(documents=DOCS)) == docs.run(documents=DOCS)
    for cls in (BGEM3TextEmbedder, BGEM3SparseTextEmbedder):
        text = cls(model=tiny_m3_path, device="cpu")
        assert (await text.run_async(text=QUERY)) == text.run(text=QUERY)
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu", top_k=3)
    assert (await ranker.run_async(query=QUERY, documents=DOCS)) == ranker.run(query=QUERY, documents=DOCS)


# --- ranker -----------------------------------------------------------------------------------


def test_ranker_scores_and_meta_equal_the_core(tiny_m3_path):
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu", meta_fields_to_embed=["title"])
    documents = copy.deepcopy(DOCS)
    result = ranker.run(query=QUERY, documents=documents)["documents"]
    expected = BGEM3Reranker(tiny_m3_path, device="cpu").rank(QUERY, TITLED)
    assert [doc.id for doc in result] == [DOCS[item.index].id for item in expected]
    assert [doc.score for doc in result] == [item.score for item in expected]
    for doc, item in zip(result, expected, strict=True):
        assert doc.meta == {
            **DOCS[item.index].meta,
            "dense_score": item.dense,
            "sparse_score": item.sparse,
            "colbert_score": item.colbert,
        }
    assert documents == DOCS  # inputs untouched
    assert sorted(SCORE_META_KEYS.values()) == ["colbert_score", "dense_score", "sparse_score"]


def test_ranker_top_k_threshold_and_weights(tiny_m3_path):
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu", top_k=2, weights=[0.0, 1.0, 0.0])
    texts = [str(doc.content) for doc in DOCS]
    m3 = core(tiny_m3_path)
    query_sparse = m3.embed_sparse_query(QUERY)
    lexical = [lexical_score(query_sparse, doc) for doc in m3.embed_sparse_documents(texts)]
    result = ranker.run(query=QUERY, documents=DOCS)["documents"]
    best = sorted(range(len(DOCS)), key=lambda i: -lexical[i])
    assert [doc.id for doc in result] == [DOCS[i].id for i in best[:2]]
    assert [doc.score for doc in result] == pytest.approx([lexical[i] for i in best[:2]], abs=1e-9)
    all_docs = ranker.run(query=QUERY, documents=DOCS, top_k=5, score_threshold=lexical[best[2]])["documents"]
    assert [doc.id for doc in all_docs] == [DOCS[i].id for i in best[:3]]
    assert ranker.run(query=QUERY, documents=[])["documents"] == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_k": 0}, ValueError, r"top_k must be .*0"),
        ({"score_threshold": "high"}, ValueError, r"score_threshold must be a number or None, got 'high'"),
        ({"weights": [1.0, 1.0]}, ValueError, r"weights must be three numbers .*\[1\.0, 1\.0\]"),
        ({"weights": [1.0, -1.0, 1.0]}, ValueError, r"weights must be finite and non-negative"),
        ({"model": ""}, ValueError, r"model must be a hub id or a local path, got ''"),
        ({"device": "gpu9"}, ValueError, r"got 'gpu9'"),
    ],
)
def test_ranker_bad_settings_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        BGEM3Ranker(**kwargs)
    assert REGISTRY.load_count == 0


def test_ranker_bad_run_inputs_are_named(tiny_m3_path):
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu")
    with pytest.raises(TypeError, match=r"BGEM3Ranker expects a list of Documents, got str"):
        ranker.run(query=QUERY, documents="text")
    with pytest.raises(ValueError, match=r"top_k must be .*-1"):
        ranker.run(query=QUERY, documents=DOCS, top_k=-1)
    with pytest.raises(TypeError, match=r"query"):
        ranker.run(query=3, documents=DOCS)


def test_ranker_warm_up_loads_encoder_and_heads_once(tiny_m3_path):
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu")
    ranker.warm_up()
    assert REGISTRY.load_count == 2
    ranker.warm_up()
    ranker.run(query=QUERY, documents=DOCS)
    BGEM3DocumentEmbedder(model=tiny_m3_path, device="cpu", progress_bar=False).run(documents=DOCS)
    assert REGISTRY.load_count == 2  # the embedder configured alike shares both


@pytest.mark.parametrize("cls", [BGEM3DocumentEmbedder, BGEM3SparseTextEmbedder, BGEM3TextEmbedder])
async def test_embedder_warm_up_loads_encoder_and_heads_once(cls, tiny_m3_path):
    embedder = cls(model=tiny_m3_path, device="cpu")
    embedder.warm_up()
    assert REGISTRY.load_count == 2
    await embedder.warm_up_async()
    embedder.warm_up()
    assert REGISTRY.load_count == 2


@pytest.mark.parametrize(
    ("cls", "attribute", "value", "core_value"),
    [
        (BGEM3DocumentEmbedder, "batch_size", 1, lambda c: c.embedder.batch_size),
        (BGEM3DocumentEmbedder, "max_length", 16, lambda c: c.embedder.config.max_length),
        (BGEM3DocumentEmbedder, "prefix", "p: ", lambda c: c.embedder.config.document_instruction),
        (BGEM3SparseTextEmbedder, "prefix", "q: ", lambda c: c.embedder.config.query_instruction),
        (BGEM3TextEmbedder, "batch_size", 2, lambda c: c.embedder.batch_size),
        (BGEM3Ranker, "weights", [1.0, 0.0, 0.0], lambda c: list(c.reranker.weights)),
        (BGEM3Ranker, "max_length", 16, lambda c: c.reranker.config.max_length),
    ],
)
def test_attribute_changed_after_init_reaches_the_core_and_to_dict(cls, attribute, value, core_value, tiny_m3_path):
    component = cls(model=tiny_m3_path, device="cpu")
    setattr(component, attribute, value)
    assert core_value(component) == value
    assert component.to_dict()["init_parameters"][attribute] == value
    assert REGISTRY.load_count == 0


# --- serialization ----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", COMPONENTS)
def test_to_dict_saves_every_init_parameter_and_round_trips(cls, tiny_m3_path):
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(param.kind is inspect.Parameter.KEYWORD_ONLY for param in parameters)
    component = cls(model=tiny_m3_path, device="cpu", batch_size=np.int64(4), max_length=64)
    data = component.to_dict()
    module = "m3_rankers" if cls is BGEM3Ranker else "m3"
    assert data["type"] == f"bge_integrations.haystack.{module}.{cls.__name__}"
    assert list(data["init_parameters"]) == [param.name for param in parameters]
    assert data["init_parameters"]["device"] == {"type": "single", "device": "cpu"}
    assert data["init_parameters"]["batch_size"] == 4
    assert type(data["init_parameters"]["batch_size"]) is int
    assert data["init_parameters"]["token"] == {
        "type": "env_var",
        "env_vars": ["HF_API_TOKEN", "HF_TOKEN"],
        "strict": False,
    }
    assert cls.from_dict(data).to_dict() == data
    assert cls().to_dict()["init_parameters"]["model"] == "BAAI/bge-m3"
    assert REGISTRY.load_count == 0


def test_from_dict_refuses_remote_code(tiny_m3_path):
    data = BGEM3Ranker(model=tiny_m3_path).to_dict()
    data["init_parameters"]["trust_remote_code"] = True
    with pytest.raises(ValueError, match="trust_remote_code"):
        BGEM3Ranker.from_dict(data)


def test_ranker_weights_round_trip(tiny_m3_path):
    ranker = BGEM3Ranker(model=tiny_m3_path, weights=np.array([1, 0, 1]))
    assert ranker.to_dict()["init_parameters"]["weights"] == [1.0, 0.0, 1.0]
    assert BGEM3Ranker.from_dict(ranker.to_dict()).reranker.weights == (1.0, 0.0, 1.0)


# --- pipelines with Qdrant --------------------------------------------------------------------


def qdrant_pipelines(path: str) -> tuple[Pipeline, Pipeline, Pipeline]:
    qdrant = pytest.importorskip("haystack_integrations.document_stores.qdrant")
    retrievers = pytest.importorskip("haystack_integrations.components.retrievers.qdrant")
    store = qdrant.QdrantDocumentStore(":memory:", use_sparse_embeddings=True, embedding_dim=32, recreate_index=True)
    indexing = Pipeline()
    indexing.add_component("embedder", BGEM3DocumentEmbedder(model=path, device="cpu", progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    sparse = Pipeline()
    sparse.add_component("embedder", BGEM3SparseTextEmbedder(model=path, device="cpu"))
    sparse.add_component("retriever", retrievers.QdrantSparseEmbeddingRetriever(document_store=store, top_k=5))
    sparse.connect("embedder.sparse_embedding", "retriever.query_sparse_embedding")
    hybrid = Pipeline()
    hybrid.add_component("embedder", BGEM3TextEmbedder(model=path, device="cpu"))
    hybrid.add_component("retriever", retrievers.QdrantHybridRetriever(document_store=store, top_k=5))
    hybrid.add_component("ranker", BGEM3Ranker(model=path, device="cpu", top_k=3))
    hybrid.connect("embedder.embedding", "retriever.query_embedding")
    hybrid.connect("embedder.sparse_embedding", "retriever.query_sparse_embedding")
    hybrid.connect("retriever.documents", "ranker.documents")
    return indexing, sparse, hybrid


def test_qdrant_sparse_and_hybrid_retrieval(tiny_m3_path):
    indexing, sparse, hybrid = qdrant_pipelines(tiny_m3_path)
    assert indexing.run({"embedder": {"documents": DOCS}}) == {"writer": {"documents_written": 5}}

    # Sparse only: Qdrant's dot product of the sparse vectors is the core's lexical score.
    m3 = core(tiny_m3_path)
    texts = [str(doc.content) for doc in DOCS]
    lexical = [lexical_score(m3.embed_sparse_query(QUERY), doc) for doc in m3.embed_sparse_documents(texts)]
    matching = sorted((i for i in range(len(DOCS)) if lexical[i] > 0), key=lambda i: -lexical[i])
    assert len(matching) >= 2
    assert len({round(lexical[i], 4) for i in matching}) == len(matching)  # no near-ties: the order is defined
    retrieved = sparse.run({"embedder": {"text": QUERY}})["retriever"]["documents"]
    assert [doc.id for doc in retrieved] == [DOCS[i].id for i in matching]
    assert [doc.score for doc in retrieved] == pytest.approx([lexical[i] for i in matching], rel=1e-5)

    # Hybrid: a document's own text finds it first (best dense and best sparse score), and the
    # ranker reorders the hits as the core reranker does.
    target = 3
    query = str(DOCS[target].content)
    dense = m3.embed_documents(texts) @ np.asarray(m3.embed_query(query))
    own_lexical = [lexical_score(m3.embed_sparse_query(query), doc) for doc in m3.embed_sparse_documents(texts)]
    assert int(np.argmax(dense)) == target
    assert int(np.argmax(own_lexical)) == target
    result = hybrid.run({"embedder": {"text": query}, "ranker": {"query": query}}, include_outputs_from={"retriever"})
    hits = result["retriever"]["documents"]
    assert hits[0].id == DOCS[target].id
    assert {doc.id for doc in hits} == {doc.id for doc in DOCS}
    expected = BGEM3Reranker(tiny_m3_path, device="cpu").rank(query, [str(doc.content) for doc in hits], top_n=3)
    assert [doc.id for doc in result["ranker"]["documents"]] == [hits[item.index].id for item in expected]


def test_pipelines_round_trip_through_yaml_with_the_allowlist(tiny_m3_path, no_allowlist_env):
    for pipeline in qdrant_pipelines(tiny_m3_path):
        text = pipeline.dumps()
        assert "bge_integrations.haystack.m3.BGEM3" in text
        with pytest.raises(DeserializationError, match=r"bge_integrations\.haystack"):
            Pipeline.loads(text)
        loaded = Pipeline.loads(text, allowed_modules=["bge_integrations.*", "haystack_integrations.*"])
        assert loaded.to_dict() == pipeline.to_dict()
        # The reloaded embedder gives the same outputs (its store is a new, empty in-memory one).
        original, reloaded = pipeline.get_component("embedder"), loaded.get_component("embedder")
        inputs = {"documents": DOCS} if isinstance(original, BGEM3DocumentEmbedder) else {"text": QUERY}
        assert reloaded.run(**inputs) == original.run(**inputs)
    ranker = BGEM3Ranker(model=tiny_m3_path, device="cpu", top_k=2, weights=[1, 2, 3], meta_fields_to_embed=["title"])
    ranking = Pipeline()
    ranking.add_component("ranker", ranker)
    loaded = Pipeline.loads(ranking.dumps(), allowed_modules=["bge_integrations.*"])
    inputs = {"ranker": {"query": QUERY, "documents": DOCS}}
    assert loaded.run(inputs) == ranking.run(inputs)


# --- docs -------------------------------------------------------------------------------------


def test_docs_bge_m3_snippet_runs(tiny_m3_path, capsys):
    text = (ROOT / "docs" / "haystack.md").read_text(encoding="utf-8")
    section = text[text.index("## bge-m3") :]
    section = section[: section.index("\n## ", 1)] if "\n## " in section[1:] else section
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "docs/haystack.md: no Python block in the bge-m3 section"
    code = blocks[0].replace('"BAAI/bge-m3"', repr(tiny_m3_path)).replace("embedding_dim=1024", "embedding_dim=32")
    assert tiny_m3_path in code
    assert "embedding_dim=32" in code
    exec(compile(code, "haystack.md bge-m3", "exec"), {"__name__": "docs"})
    assert capsys.readouterr().out.strip()
