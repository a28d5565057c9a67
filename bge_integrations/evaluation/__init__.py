"""Retrieval evaluation on BEIR-layout collections, scored as trec_eval (and MTEB) score them."""

from __future__ import annotations

from bge_integrations.evaluation.beir import RetrievalDataset, load_beir
from bge_integrations.evaluation.metrics import mrr_at_k, ndcg_at_k, recall_at_k
from bge_integrations.evaluation.retrieval import RetrievalReport, evaluate_retrieval, exact_search

__all__ = [
    "RetrievalDataset",
    "RetrievalReport",
    "evaluate_retrieval",
    "exact_search",
    "load_beir",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]
