"""bge-m3's scores, as FlagEmbedding computes them: dense dot, lexical matching, ColBERT MaxSim, weighted sum.

All take what :class:`~bge_integrations.BGEM3Embedder` returns (NumPy arrays, lists of floats,
:class:`~bge_integrations.core.m3_types.SparseEmbedding` or FlagEmbedding's ``{str(id): weight}``
dicts) and return Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bge_integrations.core.m3_types import SparseEmbedding

DEFAULT_WEIGHTS: tuple[float, float, float] = (0.4, 0.2, 0.4)
"""Weights of (dense, sparse, colbert) in the combined score: those the bge-m3 model card uses."""

SparseLike = SparseEmbedding | Mapping[Any, Any]


def dense_score(query: Any, passage: Any) -> float:
    """Dot product of two dense vectors (their cosine: bge-m3's are normalised).

    Example:
        >>> dense_score([0.6, 0.8], [1.0, 0.0])
        0.6

    """
    return float(np.dot(np.asarray(query, dtype=np.float64), np.asarray(passage, dtype=np.float64)))


def lexical_score(query: SparseLike, passage: SparseLike) -> float:
    """Lexical matching score: the sum, over token ids in both, of the product of their weights.

    Example:
        >>> lexical_score({"5": 0.5, "9": 0.25}, {"9": 0.4, "12": 1.0})
        0.1

    """
    first, second = _as_weights(query), _as_weights(passage)
    if len(second) < len(first):
        first, second = second, first
    return float(sum(weight * second[key] for key, weight in first.items() if key in second))


def colbert_score(query: Any, passage: Any) -> float:
    """ColBERT late interaction (MaxSim), as FlagEmbedding's ``colbert_score``.

    For each query token vector its best dot product with the passage's token vectors, summed
    and divided by the number of query tokens.

    Example:
        >>> round(colbert_score([[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.6, 0.8]]), 6)
        0.9

    """
    q = np.asarray(query, dtype=np.float32)
    p = np.asarray(passage, dtype=np.float32)
    if q.ndim != 2 or p.ndim != 2 or q.shape[1] != p.shape[1]:
        msg = f"colbert vectors must be (tokens, dim) arrays of one width, got shapes {q.shape} and {p.shape}"
        raise ValueError(msg)
    if len(q) == 0 or len(p) == 0:
        return 0.0
    return float((q @ p.T).max(axis=1).sum(dtype=np.float64) / len(q))


def check_weights(weights: Any) -> tuple[float, float, float]:
    """Three finite, non-negative weights for (dense, sparse, colbert) with a positive sum.

    Example:
        >>> check_weights([1, 1, 1])
        (1.0, 1.0, 1.0)

    """
    if not isinstance(weights, Sequence) or isinstance(weights, str) or len(weights) != 3:
        msg = f"weights must be three numbers for (dense, sparse, colbert), got {weights!r}"
        raise ValueError(msg)
    values = []
    for weight in weights:
        if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number)):
            msg = f"weights must be three numbers for (dense, sparse, colbert), got {weights!r}"
            raise TypeError(msg)
        value = float(weight)
        if not math.isfinite(value) or value < 0:
            msg = f"weights must be finite and non-negative, got {weights!r}"
            raise ValueError(msg)
        values.append(value)
    if sum(values) <= 0:
        msg = f"weights must not all be 0, got {weights!r}"
        raise ValueError(msg)
    return values[0], values[1], values[2]


def combined_score(dense: float, sparse: float, colbert: float, weights: Sequence[float] = DEFAULT_WEIGHTS) -> float:
    """The weighted mean of the three scores, as FlagEmbedding's ``compute_score(...)["colbert+sparse+dense"]``.

    ``(w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)``.

    Example:
        >>> round(combined_score(0.5, 0.25, 1.0), 6)
        0.65

    """
    w0, w1, w2 = check_weights(weights)
    return (w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)


def _as_weights(value: SparseLike) -> Mapping[Any, Any]:
    if isinstance(value, SparseEmbedding):
        return value.as_dict()
    if isinstance(value, Mapping):
        # FlagEmbedding keys are str(id); ours are ints. Either way, one kind per mapping.
        return {int(key) if isinstance(key, str) and key.isdigit() else key: weight for key, weight in value.items()}
    msg = f"lexical weights must be a SparseEmbedding or a mapping of token id to weight, got {type(value).__name__}"
    raise TypeError(msg)


__all__ = ["DEFAULT_WEIGHTS", "check_weights", "colbert_score", "combined_score", "dense_score", "lexical_score"]
