"""Evaluation on real data: retrieval (nDCG@10, Recall@100, MRR@10) and reranking (MAP, MRR@10).

Retrieval is dense, sparse (bge-m3 lexical weights or BM25) or hybrid (both fused; ``hybrid``).

Retrieval runs on BEIR-layout collections, scored as trec_eval (and MTEB) score them; reranking
on sets in the MTEB / C-MTEB layout, scored as MTEB's RerankingEvaluator scores them.
"""

from __future__ import annotations

from bge_integrations.evaluation.beir import RetrievalDataset, load_beir
from bge_integrations.evaluation.hybrid import HybridSettings, evaluate_hybrid
from bge_integrations.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from bge_integrations.evaluation.reranking import (
    RerankingReport,
    RerankingSample,
    RerankingSet,
    average_precision,
    evaluate_reranking,
    load_reranking_set,
    reciprocal_rank,
    reranking_set_from_beir,
    write_reranking_set,
)
from bge_integrations.evaluation.retrieval import RetrievalReport, evaluate_retrieval, exact_search

__all__ = [
    "HybridSettings",
    "RerankingReport",
    "RerankingSample",
    "RerankingSet",
    "RetrievalDataset",
    "RetrievalReport",
    "average_precision",
    "evaluate_hybrid",
    "evaluate_reranking",
    "evaluate_retrieval",
    "exact_search",
    "load_beir",
    "load_reranking_set",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "reciprocal_rank",
    "reranking_set_from_beir",
    "write_reranking_set",
]
