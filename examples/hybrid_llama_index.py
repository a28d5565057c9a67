"""Hybrid retrieval with bge-m3 in LlamaIndex: Qdrant (local mode) dense + sparse, then bge-m3 all-in-one reranking.

What it shows: a ``VectorStoreIndex`` on ``QdrantVectorStore(enable_hybrid=True)`` stores bge-m3's
dense vector (``BGEEmbedding``) and its lexical weights (``bge_m3_sparse_fns``) for every passage;
both share one copy of the model. A hybrid retriever fetches the best ``PREFETCH`` dense and
``PREFETCH`` sparse hits and fuses them, keeping ``--top-k``, with ``reciprocal_rank_fusion``
(Qdrant's RRF, which LangChain's and Haystack's Qdrant stores use; LlamaIndex's default would be
relative score fusion);
``BGEM3Rerank`` then reranks them by bge-m3's combined dense + sparse + ColBERT score and keeps
``--top-n``, with each component score in the node metadata. Qdrant runs in process
(``location=":memory:"``): no server. examples/hybrid_langchain.py and examples/hybrid_haystack.py
do the same in their frameworks and give the same hits.

Install::

    pip install "bge-integrations[llama-index]" llama-index-vector-stores-qdrant

Run::

    python examples/hybrid_llama_index.py                             # the demo questions
    python examples/hybrid_llama_index.py "Where do giant pandas live?" --top-k 5 --top-n 2

Offline: the model is BAAI/bge-m3 from the Hugging Face hub, downloaded on first use; once it is
cached (or with a local folder passed to ``--model``), ``HF_HUB_OFFLINE=1`` runs everything
without a network.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import QueryBundle
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.llama_index import (
    BGEEmbedding,
    BGEM3Rerank,
    BGEM3SparseEmbedding,
    bge_m3_sparse_fns,
    reciprocal_rank_fusion,
)

COLLECTION = "bge_m3_hybrid"
PREFETCH = 10
"""Dense and sparse hits fused per question: Haystack's ``QdrantHybridRetriever`` always fuses
Qdrant's default 10 of each, so the three examples use 10 (``--top-k`` up to 10 keeps them equal)."""


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


def build_retriever(
    passages: Sequence[str], *, model: str = "BAAI/bge-m3", device: str | None = None, top_k: int = 5
) -> BaseRetriever:
    """Index passages in an in-memory Qdrant collection (dense + sparse); a hybrid retriever over it."""
    sparse_doc_fn, sparse_query_fn = bge_m3_sparse_fns(BGEM3SparseEmbedding(model, device=device))
    store = QdrantVectorStore(
        COLLECTION,
        client=QdrantClient(location=":memory:"),
        enable_hybrid=True,
        sparse_doc_fn=sparse_doc_fn,
        sparse_query_fn=sparse_query_fn,
        hybrid_fusion_fn=reciprocal_rank_fusion,
    )
    index = VectorStoreIndex.from_documents(
        [Document(text=passage) for passage in passages],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=BGEEmbedding(model, device=device),
    )
    prefetch = max(top_k, PREFETCH)
    return index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=prefetch, sparse_top_k=prefetch, hybrid_top_k=top_k
    )


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
    retriever = build_retriever(passages, model=model, device=device, top_k=top_k)
    rerank = BGEM3Rerank(model=model, device=device, top_n=top_n)
    results = []
    for question in questions or QUERIES:
        candidates = retriever.retrieve(question)
        reranked = rerank.postprocess_nodes(candidates, QueryBundle(question))
        hits = [
            Hit(
                text=node.node.get_content(),
                score=float(node.score or 0.0),
                dense=node.node.metadata["dense_score"],
                sparse=node.node.metadata["sparse_score"],
                colbert=node.node.metadata["colbert_score"],
            )
            for node in reranked
        ]
        results.append(HybridResult(question, [node.node.get_content() for node in candidates], hits))
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
