"""Hybrid retrieval with bge-m3 in Haystack: Qdrant (local mode) dense + sparse, then bge-m3 all-in-one reranking.

What it shows: an indexing pipeline (``BGEM3DocumentEmbedder`` -> ``DocumentWriter``) fills each
passage's ``embedding`` and ``sparse_embedding`` from one forward pass into a
``QdrantDocumentStore(use_sparse_embeddings=True)``; a query pipeline embeds the question the
same way (``BGEM3TextEmbedder``: both vectors from one pass), retrieves ``--top-k`` candidates
with ``QdrantHybridRetriever`` (Qdrant's reciprocal rank fusion of its default 10 best dense and
10 best sparse hits)
and reranks them with ``BGEM3Ranker`` by bge-m3's combined dense + sparse + ColBERT score,
keeping ``--top-n`` with each component score in ``meta``. All components share one copy of the
model; Qdrant runs in process (``":memory:"``): no server. examples/hybrid_langchain.py and
examples/hybrid_llama_index.py do the same in their frameworks and give the same hits.

Install::

    pip install "bge-integrations[haystack]" qdrant-haystack

Run::

    python examples/hybrid_haystack.py                                # the demo questions
    python examples/hybrid_haystack.py "Where do giant pandas live?" --top-k 5 --top-n 2

Offline: the model is BAAI/bge-m3 from the Hugging Face hub, downloaded on first use; once it is
cached (or with a local folder passed to ``--model``), ``HF_HUB_OFFLINE=1`` runs everything
without a network.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from haystack import Document, Pipeline
from haystack.components.writers import DocumentWriter
from haystack_integrations.components.retrievers.qdrant import QdrantHybridRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from bge_integrations import BGEM3Embedder
from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.haystack import BGEM3DocumentEmbedder, BGEM3Ranker, BGEM3TextEmbedder


@dataclass(frozen=True)
class Hit:
    """A reranked passage: bge-m3's combined score and its three components."""

    text: str
    score: float
    dense: float
    sparse: float
    colbert: float


@dataclass(frozen=True)
class HybridResult:
    """What the app found for one question: the fused candidates (best first), then the reranked hits."""

    question: str
    candidates: list[str]
    hits: list[Hit]


def build_pipelines(
    passages: Sequence[str], *, model: str = "BAAI/bge-m3", device: str | None = None, top_k: int = 5, top_n: int = 2
) -> Pipeline:
    """Index passages (dense + sparse) in an in-memory Qdrant store; return the query pipeline over it."""
    store = QdrantDocumentStore(
        ":memory:",
        use_sparse_embeddings=True,
        embedding_dim=BGEM3Embedder(model, device=device).dimension,
        similarity="cosine",
        recreate_index=True,
    )
    indexing = Pipeline()
    indexing.add_component("embedder", BGEM3DocumentEmbedder(model=model, device=device))
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    indexing.run({"embedder": {"documents": [Document(content=passage) for passage in passages]}})

    query = Pipeline()
    query.add_component("embedder", BGEM3TextEmbedder(model=model, device=device))
    query.add_component("retriever", QdrantHybridRetriever(document_store=store, top_k=top_k))
    query.add_component("ranker", BGEM3Ranker(model=model, device=device, top_k=top_n))
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("embedder.sparse_embedding", "retriever.query_sparse_embedding")
    query.connect("retriever.documents", "ranker.documents")
    return query


def main(
    questions: Sequence[str] | None = None,
    *,
    model: str = "BAAI/bge-m3",
    device: str | None = None,
    top_k: int = 5,
    top_n: int = 2,
    passages: Sequence[str] = PASSAGES,
) -> list[HybridResult]:
    """Index passages, then retrieve (hybrid) and rerank (bge-m3) for each question; print and return the results."""
    pipeline = build_pipelines(passages, model=model, device=device, top_k=top_k, top_n=top_n)
    results = []
    for question in questions or QUERIES:
        out = pipeline.run(
            {"embedder": {"text": question}, "ranker": {"query": question}},
            include_outputs_from={"retriever"},
        )
        hits = [
            Hit(
                text=doc.content or "",
                score=float(doc.score or 0.0),
                dense=doc.meta["dense_score"],
                sparse=doc.meta["sparse_score"],
                colbert=doc.meta["colbert_score"],
            )
            for doc in out["ranker"]["documents"]
        ]
        candidates = [doc.content or "" for doc in out["retriever"]["documents"]]
        results.append(HybridResult(question, candidates, hits))
        _print(results[-1])
    return results


def _print(result: HybridResult) -> None:
    print(f"\nQ: {result.question}")
    for hit in result.hits:
        scores = f"dense {hit.dense:.3f}, sparse {hit.sparse:.3f}, colbert {hit.colbert:.3f}"
        print(f"  {hit.score:.4f} ({scores})  {hit.text}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: questions, the model, the device, how many candidates and hits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", nargs="*", help="questions to answer (default: the demo questions)")
    parser.add_argument("--model", default="BAAI/bge-m3", help="bge-m3 hub id or local folder")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--top-k", type=int, default=5, help="candidates retrieved (hybrid, RRF)")
    parser.add_argument("--top-n", type=int, default=2, help="hits kept after reranking")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    main(args.questions, model=args.model, device=args.device, top_k=args.top_k, top_n=args.top_n)
