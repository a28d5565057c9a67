"""Hybrid retrieval with bge-m3 in LangChain: Qdrant (local mode) dense + sparse, then bge-m3 all-in-one reranking.

What it shows: the passages go into a ``langchain_qdrant.QdrantVectorStore`` in hybrid mode with
two vectors each: bge-m3's dense vector (``BGEEmbeddings``) and its lexical weights
(``BGEM3SparseEmbeddings``); both objects share one copy of the model. Each question retrieves
``--top-k`` candidates: Qdrant's reciprocal rank fusion (RRF) of the best ``PREFETCH`` dense and
the best ``PREFETCH`` sparse hits; ``BGEM3Compressor`` then reranks them by bge-m3's combined dense + sparse + ColBERT
score and keeps ``--top-n``, with each component score in the metadata. Qdrant runs in process
(``location=":memory:"``): no server. examples/hybrid_llama_index.py and
examples/hybrid_haystack.py do the same in their frameworks and give the same hits.

Install::

    pip install "bge-integrations[langchain]" langchain-qdrant

Run::

    python examples/hybrid_langchain.py                               # the demo questions
    python examples/hybrid_langchain.py "Where do giant pandas live?" --top-k 5 --top-n 2

Offline: the model is BAAI/bge-m3 from the Hugging Face hub, downloaded on first use; once it is
cached (or with a local folder passed to ``--model``), ``HF_HUB_OFFLINE=1`` runs everything
without a network.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_qdrant import QdrantVectorStore, RetrievalMode

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.langchain import BGEEmbeddings, BGEM3Compressor
from bge_integrations.langchain.m3_qdrant import BGEM3SparseEmbeddings

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


def build_store(passages: Sequence[str], *, model: str = "BAAI/bge-m3", device: str | None = None) -> QdrantVectorStore:
    """Index passages in an in-memory Qdrant collection with a dense and a sparse vector each."""
    return QdrantVectorStore.from_texts(
        list(passages),
        embedding=BGEEmbeddings(model_name=model, device=device),
        sparse_embedding=BGEM3SparseEmbeddings(model_name=model, device=device),
        retrieval_mode=RetrievalMode.HYBRID,
        location=":memory:",
        collection_name=COLLECTION,
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
    store = build_store(passages, model=model, device=device)
    compressor = BGEM3Compressor(model_name=model, device=device, top_n=top_n)
    results = []
    for question in questions or QUERIES:
        # k is both the prefetch and the fused limit here: fuse PREFETCH of each, keep the best top_k.
        candidates = store.similarity_search(question, k=max(top_k, PREFETCH))[:top_k]
        reranked = compressor.compress_documents(candidates, question)
        hits = [
            Hit(
                text=doc.page_content,
                score=doc.metadata["relevance_score"],
                dense=doc.metadata["dense_score"],
                sparse=doc.metadata["sparse_score"],
                colbert=doc.metadata["colbert_score"],
            )
            for doc in reranked
        ]
        results.append(HybridResult(question, [doc.page_content for doc in candidates], hits))
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
