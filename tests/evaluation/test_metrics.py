from __future__ import annotations

import math

import numpy as np
import pytest

from bge_integrations.evaluation import exact_search, ndcg_at_k, recall_at_k


def test_ndcg_perfect_and_graded() -> None:
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(dcg / idcg)


def test_ndcg_cuts_at_k_and_ignores_unjudged_and_zero_grades() -> None:
    ranked = [f"x{i}" for i in range(10)] + ["a"]
    assert ndcg_at_k(ranked, {"a": 1}) == 0.0
    assert ndcg_at_k(["z", "a"], {"a": 1, "z": 0}) == pytest.approx(1 / math.log2(3))


def test_ndcg_ideal_uses_all_judged_relevant() -> None:
    # Two relevant documents judged, one retrieved first: DCG 1, IDCG 1 + 1/log2(3).
    assert ndcg_at_k(["a", "x"], {"a": 1, "b": 1}) == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_recall() -> None:
    assert recall_at_k(["a", "b", "c"], {"a": 1, "c": 2, "d": 1}, k=2) == pytest.approx(1 / 3)
    assert recall_at_k(["a"], {"a": 0}) == 0.0


def test_exact_search_orders_by_score_then_position() -> None:
    docs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    indices, scores = exact_search(queries, docs, top_k=3)
    assert indices.tolist() == [[0, 2, 3], [1, 3, 0]]
    assert scores[0].tolist() == pytest.approx([1.0, 1.0, 0.6])
    assert exact_search(queries, docs, top_k=10)[0].shape == (2, 4)


def test_ties_break_by_document_id_descending_as_trec_eval() -> None:
    from bge_integrations.evaluation.retrieval import trec_order

    assert trec_order(["MED-1", "MED-3", "MED-2", "MED-9"], [0.5, 0.5, 0.7, 0.1]) == [
        "MED-2",
        "MED-3",
        "MED-1",
        "MED-9",
    ]


def test_mrr() -> None:
    from bge_integrations.evaluation import mrr_at_k

    assert mrr_at_k(["x", "y", "a"], {"a": 1}) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], {"a": 0}) == 0.0
    assert mrr_at_k([f"x{i}" for i in range(10)] + ["a"], {"a": 1}) == 0.0
