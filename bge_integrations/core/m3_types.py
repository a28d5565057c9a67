"""What the bge-m3 engine returns: sparse (lexical) weights, the three outputs of a call, ranked texts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from bge_integrations.core.types import RankedText

M3Output = Literal["dense", "sparse", "colbert"]
"""One of bge-m3's three representations."""

M3_OUTPUTS: tuple[M3Output, ...] = get_args(M3Output)


@dataclass(frozen=True)
class SparseEmbedding:
    """Lexical weights of one text: token ids of the model's vocabulary and their weights.

    Each id appears once, with the largest weight any of its occurrences got; ids with weight 0
    and the special tokens (CLS, EOS, PAD, UNK) are left out, as FlagEmbedding does. Ids keep the
    order in which they first got a weight, so :meth:`as_dict` prints like FlagEmbedding's
    ``lexical_weights``. Two texts score by :func:`~bge_integrations.core.m3_scoring.lexical_score`.

    Args:
        indices: Token ids.
        values: Their weights (all > 0), one per id.

    Example:
        >>> sparse = SparseEmbedding(indices=(10, 4), values=(0.25, 0.5))
        >>> sparse.as_dict()
        {10: 0.25, 4: 0.5}
        >>> len(sparse), sparse.get(4), sparse.get(7)
        (2, 0.5, 0.0)

    """

    indices: tuple[int, ...]
    values: tuple[float, ...]
    _lookup: dict[int, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            msg = f"indices and values must have the same length, got {len(self.indices)} and {len(self.values)}"
            raise ValueError(msg)
        lookup = dict(zip(self.indices, self.values, strict=True))
        if len(lookup) != len(self.indices):
            msg = f"indices must be distinct, got {self.indices!r}"
            raise ValueError(msg)
        object.__setattr__(self, "_lookup", lookup)

    @classmethod
    def from_dict(cls, weights: Mapping[int | str, float]) -> SparseEmbedding:
        """From ``{id: weight}`` (ids as ints, or as the strings FlagEmbedding uses as keys)."""
        return cls(indices=tuple(int(key) for key in weights), values=tuple(float(v) for v in weights.values()))

    def as_dict(self) -> dict[int, float]:
        """``{token id: weight}`` (the form Milvus and LlamaIndex take)."""
        return dict(self._lookup)

    def get(self, index: int) -> float:
        """The weight of token id index (0.0 when the text has none)."""
        return self._lookup.get(index, 0.0)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return iter(zip(self.indices, self.values, strict=True))


@dataclass(frozen=True)
class M3Embeddings:
    """bge-m3's outputs for a list of texts, in input order; outputs not asked for are None.

    Args:
        dense: One vector per text, shape (texts, dimension), as :class:`BGEEmbedder` gives.
        sparse: One :class:`SparseEmbedding` per text.
        colbert: One (tokens, dimension) float32 array per text: a normalised vector per token
            after CLS (EOS included, padding not), as FlagEmbedding's ``colbert_vecs``.

    Example:
        >>> out = M3Embeddings(dense=np.eye(2, dtype=np.float32), sparse=None, colbert=None)
        >>> len(out), out.dense.shape
        (2, (2, 2))

    """

    dense: np.ndarray | None
    sparse: list[SparseEmbedding] | None
    colbert: list[np.ndarray] | None

    def __len__(self) -> int:
        for value in (self.dense, self.sparse, self.colbert):
            if value is not None:
                return len(value)
        return 0


@dataclass(frozen=True)
class M3RankedText(RankedText):
    """A ranked text with bge-m3's three component scores beside the combined ``score``.

    Args:
        dense: Dot product of the dense vectors.
        sparse: Lexical matching score.
        colbert: ColBERT MaxSim score (averaged over query tokens).

    Example:
        >>> item = M3RankedText(index=0, score=0.61, text="Pandas eat bamboo.", dense=0.7, sparse=0.2, colbert=0.8)
        >>> item.score, item.components()
        (0.61, {'dense': 0.7, 'sparse': 0.2, 'colbert': 0.8})

    """

    dense: float = 0.0
    sparse: float = 0.0
    colbert: float = 0.0

    def components(self) -> dict[str, float]:
        """The three component scores by name."""
        return {"dense": self.dense, "sparse": self.sparse, "colbert": self.colbert}


def check_outputs(outputs: object) -> tuple[M3Output, ...]:
    """The outputs asked for, in the canonical order (dense, sparse, colbert); ValueError names a bad one.

    Example:
        >>> check_outputs(["sparse", "dense"])
        ('dense', 'sparse')
        >>> check_outputs("dense,colbert")
        ('dense', 'colbert')

    """
    if isinstance(outputs, str):
        outputs = [part.strip() for part in outputs.split(",") if part.strip()]
    if not isinstance(outputs, (list, tuple, set, frozenset)):
        msg = f"outputs must be a list of {M3_OUTPUTS}, got {type(outputs).__name__}: {outputs!r}"
        raise TypeError(msg)
    unknown = [name for name in outputs if name not in M3_OUTPUTS]
    if unknown:
        msg = f"outputs must be among {M3_OUTPUTS}, got {unknown[0]!r}"
        raise ValueError(msg)
    if not outputs:
        msg = f"outputs must name at least one of {M3_OUTPUTS}, got {outputs!r}"
        raise ValueError(msg)
    return tuple(name for name in M3_OUTPUTS if name in outputs)


__all__ = ["M3_OUTPUTS", "M3Embeddings", "M3Output", "M3RankedText", "SparseEmbedding", "check_outputs"]
