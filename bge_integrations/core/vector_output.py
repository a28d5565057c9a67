"""What happens to vectors after the model: Matryoshka truncation and quantisation.

Both run on the model's float32 output, after the embedding cache (which keeps full vectors),
so changing them never invalidates cached entries.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np

Precision = Literal["float32", "int8", "uint8", "binary", "ubinary"]
"""Output types of sentence-transformers' ``quantize_embeddings``."""


def check_precision(precision: Any, ranges: Any) -> np.ndarray | None:
    """Check precision and quantization_ranges together; return the ranges as a float32 array.

    Raises:
        ValueError: If precision is unknown, or ranges are not of shape (2, dim) or given with a
            precision that does not use them (only ``"int8"`` and ``"uint8"`` do).

    Example:
        >>> check_precision("int8", [[-1.0, -1.0], [1.0, 1.0]]).shape
        (2, 2)

    """
    if precision not in get_args(Precision):
        msg = f"precision must be one of {get_args(Precision)}, got {precision!r}"
        raise ValueError(msg)
    if ranges is None:
        return None
    if precision not in ("int8", "uint8"):
        msg = f"quantization_ranges apply to precision 'int8' or 'uint8' only, not {precision!r}"
        raise ValueError(msg)
    try:
        array: np.ndarray = np.asarray(ranges, dtype=np.float32)
    except (TypeError, ValueError):
        array = np.empty(0, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != 2 or not np.isfinite(array).all():
        msg = f"quantization_ranges must be finite numbers of shape (2, dim): minima then maxima, got {ranges!r:.80}"
        raise ValueError(msg)
    return array


def finish_vectors(
    vectors: np.ndarray,
    *,
    truncate_dim: int | None,
    precision: Precision,
    ranges: np.ndarray | None,
) -> list[list[Any]]:
    """Rows of float32 vectors as lists, truncated and quantised as asked.

    Truncation keeps the first ``truncate_dim`` dimensions; each vector that came unit-length
    (the model normalises, as BGE's do) is made unit-length again, so cosine and dot product
    still agree (sentence-transformers leaves them shorter unless ``normalize_embeddings=True``).
    Quantisation is sentence-transformers' ``quantize_embeddings``: without ranges,
    ``"int8"``/``"uint8"`` take each dimension's range from the vectors of this call, as
    sentence-transformers does, so the same text may quantise differently in another call;
    give ``quantization_ranges`` (from a calibration set) for stable codes.

    Example:
        >>> finish_vectors(np.array([[0.6, 0.8, 0.0]], dtype=np.float32), truncate_dim=1,
        ...                precision="float32", ranges=None)
        [[1.0]]

    """
    if truncate_dim is not None and truncate_dim < vectors.shape[1]:
        unit = np.abs(np.linalg.norm(vectors, axis=1) - 1.0) < 1e-3  # per vector: one odd row decides nothing
        vectors = vectors[:, :truncate_dim]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.where(unit[:, None], vectors / np.maximum(norms, 1e-12), vectors)
    if precision == "float32":
        rows: list[list[Any]] = vectors.tolist()
        return rows
    if ranges is not None and ranges.shape[1] != vectors.shape[1]:
        msg = f"quantization_ranges has {ranges.shape[1]} dimensions, the vectors {vectors.shape[1]}"
        raise ValueError(msg)
    from sentence_transformers import quantize_embeddings  # slow import, needed only here

    quantised = quantize_embeddings(vectors, precision, ranges=ranges)
    out: list[list[Any]] = np.asarray(quantised).tolist()
    return out


__all__ = ["Precision", "check_precision", "finish_vectors"]
