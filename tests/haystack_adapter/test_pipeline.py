"""Indexing and query pipelines with all three components: run, run_async, dumps() and loads()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from haystack import DeserializationError, Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.core import serialization_security
from haystack.document_stores.in_memory import InMemoryDocumentStore

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.loading import REGISTRY
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder

ROOT = Path(__file__).resolve().parents[2]
QUERY = "Where do giant pandas live?"
DOCS = [
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda"}),
    Document(content="Paris is the capital and most populous city of France.", meta={"title": "Paris"}),
    Document(content="Mitochondria are the powerhouse of the cell.", meta={"title": "Cells"}),
    Document(content="The quick brown fox jumps over the lazy dog.", meta={"title": "Fox"}),
    Document(content="Vitamin D deficiency is common in northern latitudes.", meta={"title": "Vitamin D"}),
]


def build(embedder_path: str, reranker_path: str, store: InMemoryDocumentStore) -> tuple[Pipeline, Pipeline]:
    indexing = Pipeline()
    indexing.add_component(
        "embedder", BGEDocumentEmbedder(model=embedder_path, device="cpu", meta_fields_to_embed=["title"])
    )
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    query = Pipeline()
    query.add_component("embedder", BGETextEmbedder(model=embedder_path, device="cpu"))
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=4))
    query.add_component("ranker", BGERanker(model=reranker_path, device="cpu", top_k=3, meta_fields_to_embed=["title"]))
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("retriever.documents", "ranker.documents")
    return indexing, query


def query_inputs() -> dict[str, dict[str, str]]:
    return {"embedder": {"text": QUERY}, "ranker": {"query": QUERY}}


def summary(documents: list[Document]) -> list[tuple[str, float]]:
    return [(doc.id, doc.score) for doc in documents]


@pytest.fixture
def no_allowlist_env(monkeypatch):
    """Haystack's default allowlist only, whatever other tests in this process allowlisted."""
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    monkeypatch.setattr(serialization_security, "_extra_allowed_modules", [])
    monkeypatch.setattr(serialization_security, "_unsafe_env_snapshot", False)


def test_pipelines_run_and_warm_up_loads_once(tiny_embedder_path, tiny_reranker_path):
    indexing, query = build(tiny_embedder_path, tiny_reranker_path, InMemoryDocumentStore(shared=False))
    assert indexing.run({"embedder": {"documents": DOCS}}) == {"writer": {"documents_written": 5}}
    result = query.run(query_inputs(), include_outputs_from={"retriever"})
    second = query.run(query_inputs())["ranker"]["documents"]
    assert REGISTRY.load_count == 2  # one embedder (shared by both embedders) + one reranker
    ranked, retrieved = result["ranker"]["documents"], result["retriever"]["documents"]
    assert ranked == second
    assert len(retrieved) == 4
    assert len(ranked) == 3
    # The ranker scored the retrieved documents (title + content) exactly as the core does.
    texts = [f"{doc.meta['title']}\n{doc.content}" for doc in retrieved]
    scores = BGEReranker(tiny_reranker_path, device="cpu").score(QUERY, texts)
    expected = sorted(zip((doc.id for doc in retrieved), scores, strict=True), key=lambda pair: -pair[1])[:3]
    assert summary(ranked) == expected
    # The retriever got the query embedding with the instruction (its scores are cosine/dot products).
    query_vector = BGEEmbedder(tiny_embedder_path, device="cpu").embed_query(QUERY)
    for doc in retrieved:
        stored = next(d for d in DOCS if d.id == doc.id)
        doc_vector = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(
            [f"{stored.meta['title']}\n{stored.content}"]
        )[0]
        assert doc.score == pytest.approx(float(np.dot(query_vector, doc_vector)), abs=1e-5)


async def test_pipeline_run_async_equals_run(tiny_embedder_path, tiny_reranker_path):
    store = InMemoryDocumentStore(shared=False)
    indexing, query = build(tiny_embedder_path, tiny_reranker_path, store)
    await indexing.run_async({"embedder": {"documents": DOCS}})
    embedded = store.filter_documents()
    assert len(embedded) == 5
    assert all(doc.embedding is not None for doc in embedded)
    result = await query.run_async(query_inputs())
    assert summary(result["ranker"]["documents"]) == summary(query.run(query_inputs())["ranker"]["documents"])


def test_loads_needs_the_allowlist_step(tiny_embedder_path, tiny_reranker_path, no_allowlist_env):
    indexing, query = build(tiny_embedder_path, tiny_reranker_path, InMemoryDocumentStore(shared=False))
    for pipeline in (indexing, query):
        text = pipeline.dumps()
        with pytest.raises(DeserializationError, match=r"bge_integrations\.haystack"):
            Pipeline.loads(text)
        loaded = Pipeline.loads(text, allowed_modules=["bge_integrations.*"])
        assert loaded.to_dict() == pipeline.to_dict()


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from haystack import DeserializationError, Document, Pipeline
    from haystack.core.serialization import allow_deserialization_module

    import bge_integrations.haystack  # importing it does not allowlist it

    indexing_yaml, query_yaml, docs_json, query_text = sys.argv[1:5]
    try:
        with open(query_yaml) as f:
            Pipeline.loads(f.read())
    except DeserializationError as exc:
        print("refused without the allowlist step:", exc, file=sys.stderr)
    else:
        sys.exit("loaded without the allowlist step")
    with open(indexing_yaml) as f:
        indexing = Pipeline.loads(f.read(), allowed_modules=["bge_integrations.*"])
    allow_deserialization_module("bge_integrations.haystack")
    with open(query_yaml) as f:
        query = Pipeline.loads(f.read())
    with open(docs_json) as f:
        docs = [Document.from_dict(d) for d in json.load(f)]
    indexing.run({"embedder": {"documents": docs}})
    ranked = query.run({"embedder": {"text": query_text}, "ranker": {"query": query_text}})["ranker"]["documents"]
    print(json.dumps([[doc.id, doc.score] for doc in ranked]))
    """
)


def test_dumped_pipelines_give_the_same_results_in_a_fresh_process(tiny_embedder_path, tiny_reranker_path, tmp_path):
    # The two pipelines share one store; a named index makes the reloaded stores share it too.
    store = InMemoryDocumentStore(index=f"bge-haystack-test-{uuid.uuid4()}")
    indexing, query = build(tiny_embedder_path, tiny_reranker_path, store)
    indexing.run({"embedder": {"documents": DOCS}})
    expected = summary(query.run(query_inputs())["ranker"]["documents"])

    (tmp_path / "indexing.yaml").write_text(indexing.dumps())
    (tmp_path / "query.yaml").write_text(query.dumps())
    (tmp_path / "docs.json").write_text(json.dumps([doc.to_dict() for doc in DOCS]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    env["HF_HUB_OFFLINE"] = "1"
    args = [tmp_path / "indexing.yaml", tmp_path / "query.yaml", tmp_path / "docs.json", QUERY]
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "refused without the allowlist step: Refusing to deserialize" in completed.stderr
    got = [tuple(item) for item in json.loads(completed.stdout.strip().splitlines()[-1])]
    assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in expected]
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], rel=0, abs=1e-9)
    assert len(got) == 3
