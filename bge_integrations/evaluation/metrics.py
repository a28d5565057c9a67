"""nDCG@k and Recall@k as trec_eval computes them (and so pytrec_eval and MTEB)."""

from __future__ import annotations

import math


def ndcg_at_k(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k of one ranking: gain = the judged grade, discount ``1/log2(rank + 1)``.

    The ideal ranking orders the judged grades, best first. Unjudged documents gain 0.

    Example:
        >>> ndcg_at_k(["a", "b"], {"b": 1})
        0.6309297535714575

    """
    dcg = sum(judged.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: list[str], judged: dict[str, int], k: int = 100) -> float:
    """Share of the documents judged relevant (grade >= 1) that appear in the top k.

    Example:
        >>> recall_at_k(["a", "b"], {"b": 1, "c": 2}, k=2)
        0.5

    """
    relevant = {doc for doc, grade in judged.items() if grade >= 1}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked[:k])) / len(relevant)


def mrr_at_k(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant document (grade >= 1) in the top k, else 0.

    Example:
        >>> mrr_at_k(["x", "a", "b"], {"a": 1, "b": 2})
        0.5

    """
    for rank, doc in enumerate(ranked[:k], start=1):
        if judged.get(doc, 0) >= 1:
            return 1.0 / rank
    return 0.0


__all__ = ["mrr_at_k", "ndcg_at_k", "recall_at_k"]
