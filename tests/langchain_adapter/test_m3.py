"""bge-m3 in LangChain: sparse embeddings for Qdrant and Milvus, and the dense + sparse + ColBERT compressor.

Every value is compared with the core's (BGEM3Embedder, BGEM3Reranker) on the committed tiny
bge-m3; the Qdrant store runs in local in-memory mode and its rankings are checked against a
brute-force ranking computed from the core's scores.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.documents import Document
from pydantic import ValidationError

from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.core.m3_model import MissingHeadError
from bge_integrations.core.m3_reranker import BGEM3Reranker
from bge_integrations.core.m3_scoring import lexical_score
from bge_integrations.core.m3_types import SparseEmbedding
from bge_integrations.langchain import BGEEmbeddings, BGEM3Compressor, BGERerankRetriever

langchain_qdrant = pytest.importorskip("langchain_qdrant")
from langchain_qdrant import QdrantVectorStore, RetrievalMode, SparseEmbeddings, SparseVector  # noqa: E402

from bge_integrations.langchain import BGEM3SparseEmbeddings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

TEXTS = [
    "The giant panda is a bear species endemic to China.",
    "Pandas eat almost nothing but bamboo.",
    "Paris is the capital of France.",
    "Bamboo forests grow in the mountains of Sichuan.",
    "The Eiffel Tower stands in Paris.",
    "Bears hibernate in winter.",
    "China has many mountains and rivers.",
]
QUERY = "what do giant pandas eat in China?"


@pytest.fixture
def core(tiny_m3_path: str) -> BGEM3Embedder:
    return BGEM3Embedder(tiny_m3_path, device="cpu")


@pytest.fixture
def sparse(tiny_m3_path: str) -> BGEM3SparseEmbeddings:
    return BGEM3SparseEmbeddings(model_name=tiny_m3_path, device="cpu")


def _as_vector(sparse: SparseEmbedding) -> SparseVector:
    return SparseVector(indices=list(sparse.indices), values=list(sparse.values))


# --- sparse embeddings for Qdrant ----------------------------------------------------------------


def test_qdrant_sparse_vectors_are_the_cores(sparse: BGEM3SparseEmbeddings, core: BGEM3Embedder) -> None:
    assert isinstance(sparse, SparseEmbeddings)
    vectors = sparse.embed_documents(TEXTS)
    expected = core.embed_sparse_documents(TEXTS)
    assert all(type(vector) is SparseVector for vector in vectors)
    assert vectors == [_as_vector(item) for item in expected]
    assert all(vector.values and min(vector.values) > 0 for vector in vectors)
    assert sparse.embed_query(QUERY) == _as_vector(core.embed_sparse_query(QUERY))
    assert sparse.embed_documents([]) == []


async def test_qdrant_sparse_async_equals_sync(sparse: BGEM3SparseEmbeddings) -> None:
    assert await sparse.aembed_documents(TEXTS) == sparse.embed_documents(TEXTS)
    assert await sparse.aembed_query(QUERY) == sparse.embed_query(QUERY)


def test_dense_sparse_and_compressor_share_one_model(tiny_m3_path: str) -> None:
    dense = BGEEmbeddings(model_name=tiny_m3_path, device="cpu")
    sparse = BGEM3SparseEmbeddings(model_name=tiny_m3_path, device="cpu")
    compressor = BGEM3Compressor(model_name=tiny_m3_path, device="cpu")
    assert REGISTRY.load_count == 0  # constructors only store settings
    dense.embed_query(QUERY)
    sparse.embed_query(QUERY)
    compressor.compress_documents([Document(TEXTS[0])], QUERY)
    assert dense.client.load_key == sparse.client.load_key == compressor.client.load_key
    assert REGISTRY.load_count == 2  # the encoder once, bge-m3's two heads once
    assert dense.client.load_key in REGISTRY.loaded_keys()


def _store(mode: RetrievalMode, sparse: BGEM3SparseEmbeddings, dense: BGEEmbeddings | None) -> QdrantVectorStore:
    return QdrantVectorStore.from_texts(
        TEXTS,
        embedding=dense,
        sparse_embedding=sparse,
        retrieval_mode=mode,
        location=":memory:",
        collection_name=f"m3-{mode.value}",
    )


def test_qdrant_sparse_search_is_the_lexical_ranking(sparse: BGEM3SparseEmbeddings, core: BGEM3Embedder) -> None:
    store = _store(RetrievalMode.SPARSE, sparse, None)
    hits = store.similarity_search_with_score(QUERY, k=len(TEXTS))
    query = core.embed_sparse_query(QUERY)
    scores = {
        text: lexical_score(query, doc) for text, doc in zip(TEXTS, core.embed_sparse_documents(TEXTS), strict=True)
    }
    expected = sorted(((text, score) for text, score in scores.items() if score > 0), key=lambda item: -item[1])
    assert expected, "the query shares no token with the corpus: the test would check nothing"
    assert [doc.page_content for doc, _ in hits] == [text for text, _ in expected]
    assert [score for _, score in hits] == pytest.approx([score for _, score in expected], rel=1e-5)


def test_qdrant_hybrid_search_is_the_rrf_of_dense_and_sparse(
    sparse: BGEM3SparseEmbeddings, core: BGEM3Embedder, tiny_m3_path: str
) -> None:
    from qdrant_client.hybrid.fusion import DEFAULT_RANKING_CONSTANT_K

    dense = BGEEmbeddings(model_name=tiny_m3_path, device="cpu")
    store = _store(RetrievalMode.HYBRID, sparse, dense)
    out = core.encode_documents(TEXTS, outputs=["dense", "sparse"])
    query = core.encode_queries([QUERY], outputs=["dense", "sparse"])
    assert out.dense is not None
    assert out.sparse is not None
    assert query.dense is not None
    assert query.sparse is not None
    dense_scores = dict(zip(TEXTS, (out.dense @ query.dense[0]).tolist(), strict=True))
    lexical = {text: lexical_score(query.sparse[0], doc) for text, doc in zip(TEXTS, out.sparse, strict=True)}
    dense_order = sorted(TEXTS, key=lambda text: -dense_scores[text])
    sparse_order = sorted((text for text in TEXTS if lexical[text] > 0), key=lambda text: -lexical[text])
    assert len(sparse_order) > 1  # the sparse list counts too: the test would not notice it missing otherwise

    def fused(k: int) -> dict[str, float]:
        """Qdrant's RRF of the top k of each list: sum of 1 / (position + constant)."""
        scores: dict[str, float] = {}
        for order in (dense_order[:k], sparse_order[:k]):
            for position, text in enumerate(order):
                scores[text] = scores.get(text, 0.0) + 1 / (position + DEFAULT_RANKING_CONSTANT_K)
        return scores

    for k in (2, len(TEXTS)):
        hits = store.similarity_search_with_score(QUERY, k=k)
        expected = fused(k)
        assert [score for _, score in hits] == pytest.approx(sorted(expected.values(), reverse=True)[:k])
        assert {doc.page_content: score for doc, score in hits} == pytest.approx(
            {doc.page_content: expected[doc.page_content] for doc, _ in hits}
        )
    assert {doc.page_content for doc, _ in hits} == set(TEXTS)


# --- sparse embeddings for Milvus ------------------------------------------------------------------


def test_milvus_sparse_dicts_are_the_cores(tiny_m3_path: str, core: BGEM3Embedder) -> None:
    sparse_module = pytest.importorskip("langchain_milvus.utils.sparse")
    from bge_integrations.langchain import BGEM3MilvusSparseEmbeddings

    milvus = BGEM3MilvusSparseEmbeddings(model_name=tiny_m3_path, device="cpu")
    assert isinstance(milvus, sparse_module.BaseSparseEmbedding)
    docs = milvus.embed_documents(TEXTS)
    assert docs == [item.as_dict() for item in core.embed_sparse_documents(TEXTS)]
    assert all(type(key) is int and type(value) is float for doc in docs for key, value in doc.items())
    assert milvus.embed_query(QUERY) == core.embed_sparse_query(QUERY).as_dict()


async def test_milvus_sparse_async_equals_sync(tiny_m3_path: str) -> None:
    pytest.importorskip("langchain_milvus.utils.sparse")
    from bge_integrations.langchain import BGEM3MilvusSparseEmbeddings

    milvus = BGEM3MilvusSparseEmbeddings(model_name=tiny_m3_path, device="cpu")
    assert await milvus.aembed_documents(TEXTS) == milvus.embed_documents(TEXTS)
    assert await milvus.aembed_query(QUERY) == milvus.embed_query(QUERY)


def test_milvus_lite_sparse_search_is_the_lexical_ranking(
    tiny_m3_path: str, core: BGEM3Embedder, tmp_path: Path
) -> None:
    pytest.importorskip("milvus_lite")
    langchain_milvus = pytest.importorskip("langchain_milvus")
    from bge_integrations.langchain import BGEM3MilvusSparseEmbeddings

    milvus = BGEM3MilvusSparseEmbeddings(model_name=tiny_m3_path, device="cpu")
    store = langchain_milvus.Milvus.from_texts(
        TEXTS,
        embedding=milvus,
        connection_args={"uri": str(tmp_path / "milvus.db")},  # Milvus Lite: a local file, no server
        index_params={"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "IP", "params": {"drop_ratio_build": 0}},
        search_params={"metric_type": "IP", "params": {}},
        vector_field="sparse",
    )
    hits = store.similarity_search_with_score(QUERY, k=len(TEXTS))
    query = core.embed_sparse_query(QUERY)
    scores = {
        text: lexical_score(query, doc) for text, doc in zip(TEXTS, core.embed_sparse_documents(TEXTS), strict=True)
    }
    expected = sorted(((text, score) for text, score in scores.items() if score > 0), key=lambda item: -item[1])
    assert [doc.page_content for doc, _ in hits] == [text for text, _ in expected]
    assert [score for _, score in hits] == pytest.approx([score for _, score in expected], rel=1e-5)


# --- the compressor --------------------------------------------------------------------------------


def _docs() -> list[Document]:
    return [Document(text, id=f"d{i}", metadata={"i": i, "tags": ["x"]}) for i, text in enumerate(TEXTS)]


def test_compressor_orders_and_scores_as_the_core(tiny_m3_path: str) -> None:
    docs = _docs()
    compressor = BGEM3Compressor(model_name=tiny_m3_path, device="cpu", top_n=None, weights=(1.0, 0.5, 0.25))
    reranker = BGEM3Reranker(tiny_m3_path, device="cpu", weights=(1.0, 0.5, 0.25))
    out = compressor.compress_documents(docs, QUERY)
    components = reranker.score_components(QUERY, TEXTS)
    expected = sorted(range(len(TEXTS)), key=lambda i: -components[i]["combined"])
    assert [doc.metadata["i"] for doc in out] == expected  # every input exactly once, best first
    for doc in out:
        scores = components[doc.metadata["i"]]
        assert doc.metadata["relevance_score"] == scores["combined"]
        assert doc.metadata["dense_score"] == scores["dense"]
        assert doc.metadata["sparse_score"] == scores["sparse"]
        assert doc.metadata["colbert_score"] == scores["colbert"]
        assert doc.id == f"d{doc.metadata['i']}"
        assert doc.metadata["relevance_score"] == pytest.approx(
            (1.0 * scores["dense"] + 0.5 * scores["sparse"] + 0.25 * scores["colbert"]) / 1.75
        )
    assert len({doc.metadata["sparse_score"] for doc in out}) > 1
    assert [doc.metadata for doc in docs] == [{"i": i, "tags": ["x"]} for i in range(len(TEXTS))]  # inputs unchanged
    out[0].metadata["tags"].append("y")
    assert docs[expected[0]].metadata["tags"] == ["x"]  # copies, not shared


def test_compressor_top_n_and_threshold_cut_only_the_tail(tiny_m3_path: str) -> None:
    docs = _docs()
    every = BGEM3Compressor(model_name=tiny_m3_path, device="cpu", top_n=None).compress_documents(docs, QUERY)
    top = BGEM3Compressor(model_name=tiny_m3_path, device="cpu").compress_documents(docs, QUERY)
    assert [doc.metadata for doc in top] == [doc.metadata for doc in every[:3]]  # top_n defaults to 3
    cut = every[3].metadata["relevance_score"]
    kept = BGEM3Compressor(model_name=tiny_m3_path, device="cpu", top_n=None, score_threshold=cut)
    assert [doc.metadata for doc in kept.compress_documents(docs, QUERY)] == [doc.metadata for doc in every[:4]]
    assert BGEM3Compressor(model_name=tiny_m3_path, device="cpu").compress_documents([], QUERY) == []
    assert REGISTRY.load_count == 2  # one shared model for the three compressors


async def test_compressor_async_and_retriever(tiny_m3_path: str, sparse: BGEM3SparseEmbeddings) -> None:
    docs = _docs()
    compressor = BGEM3Compressor(model_name=tiny_m3_path, device="cpu", top_n=2)
    assert await compressor.acompress_documents(docs, QUERY) == compressor.compress_documents(docs, QUERY)
    store = _store(RetrievalMode.SPARSE, sparse, None)
    retriever = compressor.as_retriever(store, k=5)
    assert isinstance(retriever, BGERerankRetriever)
    candidates = store.similarity_search(QUERY, k=5)
    expected = compressor.compress_documents(candidates, QUERY)
    got = retriever.invoke(QUERY)
    assert [doc.page_content for doc in got] == [doc.page_content for doc in expected]
    assert [doc.metadata["relevance_score"] for doc in await retriever.ainvoke(QUERY)] == [
        doc.metadata["relevance_score"] for doc in expected
    ]


# --- errors ----------------------------------------------------------------------------------------


def test_errors_name_the_bad_value(tiny_m3_path: str, sparse: BGEM3SparseEmbeddings, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="texts"):
        sparse.embed_documents("one text, not a list")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="weights must be finite and non-negative"):
        BGEM3Compressor(model_name=tiny_m3_path, weights=(1.0, -1.0, 1.0))
    with pytest.raises(ValidationError, match="top_n"):
        BGEM3Compressor(model_name=tiny_m3_path, top_n=0)
    with pytest.raises(ValidationError, match="batch_size"):
        BGEM3SparseEmbeddings(model_name=tiny_m3_path, batch_size=0)
    with pytest.raises(ValidationError, match="device"):
        BGEM3SparseEmbeddings(model_name=tiny_m3_path, device="gpu")
    with pytest.raises(ValidationError, match="Extra inputs"):
        BGEM3SparseEmbeddings(model_name=tiny_m3_path, pooling="mean")  # type: ignore[call-arg]
    compressor = BGEM3Compressor(model_name=tiny_m3_path, device="cpu")
    with pytest.raises(TypeError, match="Document"):
        compressor.compress_documents(["a plain string"], QUERY)  # type: ignore[list-item]
    no_sparse = tmp_path / "no-sparse-head"
    shutil.copytree(tiny_m3_path, no_sparse)
    (no_sparse / "sparse_linear.pt").unlink()
    with pytest.raises(MissingHeadError, match=r"sparse_linear\.pt"):
        BGEM3SparseEmbeddings(model_name=str(no_sparse), device="cpu").embed_query(QUERY)
    import bge_integrations.langchain as adapter

    with pytest.raises(AttributeError, match="BGEM3Nothing"):
        _ = adapter.BGEM3Nothing


def test_settings_checked_on_assignment_and_objects_pickle(tiny_m3_path: str) -> None:
    compressor = BGEM3Compressor(model_name=tiny_m3_path, device="cpu", top_n=2)
    with pytest.raises(ValidationError, match="weights must be finite and non-negative"):
        compressor.weights = (1.0, float("nan"), 1.0)
    assert compressor.weights == (0.4, 0.2, 0.4)  # the rejected value is not kept
    compressor.weights = (1.0, 0.0, 0.0)
    assert compressor.client.weights == (1.0, 0.0, 0.0)
    sparse = BGEM3SparseEmbeddings(model_name=tiny_m3_path, device="cpu", token="hf_secret")  # type: ignore[arg-type]
    assert "hf_secret" not in repr(sparse)
    assert "token" not in sparse.model_dump()
    for original in (compressor, sparse):
        copy = pickle.loads(pickle.dumps(original))
        assert copy == original
    assert pickle.loads(pickle.dumps(sparse)).embed_query(QUERY) == sparse.embed_query(QUERY)
    assert REGISTRY.load_count == 2  # the copy found the model loaded by the original


STORE_PACKAGES_CODE = """
import json, sys
import bge_integrations.langchain as adapter
loaded = [m for m in ("langchain_qdrant", "langchain_milvus", "qdrant_client", "pymilvus") if m in sys.modules]
sys.modules["langchain_qdrant"] = None  # as if langchain-qdrant were not installed
sys.modules["langchain_milvus"] = None
hints = []
for name in ("BGEM3SparseEmbeddings", "BGEM3MilvusSparseEmbeddings"):
    try:
        getattr(adapter, name)
    except ImportError as exc:
        hints.append(str(exc))
print(json.dumps({"loaded": loaded, "hints": hints}))
"""


def test_store_packages_load_only_when_asked_for() -> None:
    out = subprocess.run([sys.executable, "-c", STORE_PACKAGES_CODE], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert result["hints"] == [
        "BGEM3SparseEmbeddings needs langchain-qdrant: pip install langchain-qdrant",
        "BGEM3MilvusSparseEmbeddings needs langchain-milvus: pip install langchain-milvus",
    ]


def test_public_classes_have_docstrings() -> None:
    import bge_integrations.langchain as adapter

    for name in ("BGEM3Compressor", "BGEM3SparseEmbeddings", "BGEM3MilvusSparseEmbeddings"):
        assert "Example:" in (getattr(adapter, name).__doc__ or "")


# --- docs ------------------------------------------------------------------------------------------


def test_docs_bge_m3_snippet_runs(tiny_m3_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "langchain.md").read_text(encoding="utf-8")
    section = page[page.index("\n## bge-m3") :]
    section = section[: section.find("\n## ", 1)] if "\n## " in section[1:] else section
    [code, *_] = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    code = code.replace("BAAI/bge-m3", tiny_m3_path).replace('device="cuda"', 'device="cpu"')
    exec(compile(code, "docs/langchain.md bge-m3", "exec"), {"__name__": "docs"})
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed
    assert all(re.match(r"^-?\d+\.\d+ .+", line) for line in printed), printed
