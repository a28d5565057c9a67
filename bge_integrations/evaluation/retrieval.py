"""Exact dense retrieval (cosine on normalised vectors) and its scores on a collection.

Rankings break score ties as trec_eval (and so pytrec_eval and MTEB) does: by document id,
descending. Collections hold exact duplicate documents (NFCorpus has 80 in duplicate groups),
whose embeddings tie exactly, so the tie rule moves published numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from bge_integrations.core.progress import progress_iter as progress_bar
from bge_integrations.evaluation.beir import RetrievalDataset
from bge_integrations.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k

EmbedFn = Callable[[list[str]], list[list[float]]]
RerankFn = Callable[[str, list[str]], list[float]]
Run = dict[str, tuple[list[str], list[float]]]
"""Query id to (document ids, scores) as a search returned them, in any order."""


@dataclass(frozen=True)
class RetrievalReport:
    """Mean nDCG@10 and Recall@100 over every judged query, with per-query values."""

    dataset: str
    ndcg_at_10: float
    recall_at_100: float
    mrr_at_10: float
    per_query_ndcg: dict[str, float] = field(repr=False)
    seconds: float = 0.0


def exact_search(queries: np.ndarray, docs: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the top_k documents per query by inner product, best first.

    Ties are broken by document position, so results are deterministic. Identical document
    vectors (exact duplicate texts) get identical scores: each distinct vector is scored once,
    since a matrix product may round the same dot product differently at another row (OpenBLAS
    0.3.31 does, by one ulp), which would order duplicates by position instead of by the trec rule.

    Example:
        >>> docs = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
        >>> indices, scores = exact_search(np.array([[0.9, 0.1]], dtype=np.float32), docs, top_k=3)
        >>> indices.tolist(), bool(scores[0, 0] == scores[0, 1])
        ([[0, 2, 1]], True)

    """
    top_k = min(top_k, docs.shape[0])
    distinct, inverse = np.unique(docs, axis=0, return_inverse=True)
    scores = (queries @ distinct.T)[:, inverse.reshape(-1)]
    candidates = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
    rows = np.arange(scores.shape[0])[:, None]
    candidate_scores = scores[rows, candidates]
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    indices = candidates[rows, order]
    return indices, scores[rows, indices]


def trec_order(doc_ids: list[str], scores: list[float]) -> list[str]:
    """doc_ids sorted as trec_eval sorts a run: score descending, then document id descending.

    Example:
        >>> trec_order(["a", "b", "c"], [0.5, 0.9, 0.5])
        ['b', 'c', 'a']

    """
    pairs = sorted(zip(doc_ids, scores, strict=True), key=lambda pair: pair[0], reverse=True)
    pairs.sort(key=lambda pair: -pair[1])
    return [doc_id for doc_id, _ in pairs]


def evaluate_retrieval(
    dataset: RetrievalDataset,
    embed_queries: EmbedFn,
    embed_documents: EmbedFn,
    *,
    rerank: RerankFn | None = None,
    rerank_top_k: int = 100,
    ignore_identical_ids: bool = True,
    progress: bool = False,
) -> RetrievalReport:
    """Embed the corpus and the judged queries, search exactly, optionally rerank, and score.

    Args:
        dataset: The collection.
        embed_queries: Maps query texts to vectors (the query instruction is its business).
        embed_documents: Maps document texts to vectors.
        rerank: Optional ``(query, passages) -> scores``; reorders the top ``rerank_top_k``.
        rerank_top_k: How many candidates the reranker reads per query.
        ignore_identical_ids: Drop a document whose id equals the query id (MTEB's default).
        progress: Show a bar over the queries while reranking. The embedding functions draw
            their own (``BGEEmbedder(show_progress_bar=True)``); the corpus is embedded in one
            call either way, so duplicate documents tie exactly.

    Example:
        >>> from bge_integrations import BGEEmbedder
        >>> from bge_integrations.evaluation import load_beir
        >>> embedder = BGEEmbedder("BAAI/bge-small-en-v1.5", show_progress_bar=True)
        >>> data = load_beir("../shared/data/scifact")  # doctest: +SKIP
        >>> evaluate_retrieval(data, embedder.embed_queries, embedder.embed_documents).ndcg_at_10  # doctest: +SKIP
        0.71273...

    """
    start = time.perf_counter()
    doc_vectors = np.asarray(embed_documents(dataset.doc_texts), dtype=np.float32)
    query_ids = list(dataset.queries)
    query_vectors = np.asarray(embed_queries([dataset.queries[q] for q in query_ids]), dtype=np.float32)
    indices, scores = exact_search(query_vectors, doc_vectors, top_k=max(101, rerank_top_k + 1))
    run: Run = {
        query_id: ([dataset.doc_ids[i] for i in indices[row]], scores[row].tolist())
        for row, query_id in enumerate(query_ids)
    }
    return score_run(
        dataset,
        run,
        depth=max(100, rerank_top_k),
        rerank=rerank,
        rerank_top_k=rerank_top_k,
        ignore_identical_ids=ignore_identical_ids,
        start=start,
        progress=progress,
    )


def score_run(
    dataset: RetrievalDataset,
    run: Run,
    *,
    depth: int = 100,
    rerank: Callable[[str, list[str]], list[float]] | None = None,
    rerank_top_k: int = 100,
    ignore_identical_ids: bool = True,
    start: float | None = None,
    progress: bool = False,
) -> RetrievalReport:
    """Score a run as ``evaluate_retrieval`` scores its own search: trec order, id filter, metrics.

    Args:
        dataset: The collection the run was retrieved from.
        run: Query id to (document ids, scores), in any order; every judged query must be there.
        depth: Documents kept per query after ordering and filtering.
        rerank: Optional ``(query, passages) -> scores``; reorders the top ``rerank_top_k``.
        rerank_top_k: How many candidates the reranker reads per query.
        ignore_identical_ids: Drop a document whose id equals the query id.
        start: ``time.perf_counter()`` when the work began, for ``seconds``; None: now.
        progress: Show a bar over the queries while reranking (standard error).

    Example:
        >>> from bge_integrations.evaluation.beir import RetrievalDataset
        >>> data = RetrievalDataset("toy", ["a", "b"], ["A", "B"], {"q": "?"}, {"q": {"b": 1}})
        >>> score_run(data, {"q": (["a", "b"], [0.5, 0.5])}).ndcg_at_10  # ties: id descending
        1.0

    """
    start = time.perf_counter() if start is None else start
    position = {doc_id: i for i, doc_id in enumerate(dataset.doc_ids)}
    per_query: dict[str, float] = {}
    recalls: list[float] = []
    reciprocal_ranks: list[float] = []
    queries: Iterable[tuple[str, str]] = dataset.queries.items()
    if rerank is not None:
        queries = progress_bar(queries, enabled=progress, desc="Reranking", unit="query", total=len(dataset.queries))
    for query_id, query in queries:
        doc_ids, scores = run[query_id]
        ranked = trec_order(list(doc_ids), [float(s) for s in scores])
        if ignore_identical_ids:
            ranked = [doc for doc in ranked if doc != query_id]
        ranked = ranked[:depth]
        if rerank is not None:
            head = ranked[:rerank_top_k]
            passages = [dataset.doc_texts[position[doc]] for doc in head]
            ranked = trec_order(head, rerank(query, passages)) + ranked[rerank_top_k:]
        per_query[query_id] = ndcg_at_k(ranked, dataset.qrels[query_id], 10)
        recalls.append(recall_at_k(ranked, dataset.qrels[query_id], 100))
        reciprocal_ranks.append(mrr_at_k(ranked, dataset.qrels[query_id], 10))
    return RetrievalReport(
        dataset=dataset.name,
        ndcg_at_10=float(np.mean(list(per_query.values()))),
        recall_at_100=float(np.mean(recalls)),
        mrr_at_10=float(np.mean(reciprocal_ranks)),
        per_query_ndcg=per_query,
        seconds=time.perf_counter() - start,
    )


__all__ = ["RetrievalReport", "Run", "evaluate_retrieval", "exact_search", "score_run", "trec_order"]
