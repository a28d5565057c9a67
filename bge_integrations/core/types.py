"""Plain data types that the core returns and that adapters translate."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RankedText:
    """One reranked text: where it was in the input, its score, and the text itself.

    Args:
        index: Position of the text in the list given to ``rank()``.
        score: Relevance score on the reranker's scale (sigmoid by default).
        text: The text that was scored.
        layer_scores: From :meth:`~bge_integrations.BGEReranker.rank_layers` only: every scoring
            layer's score, ``{layer: score}`` (``score`` is the deepest layer's). None otherwise.

    Example:
        >>> RankedText(index=2, score=0.93, text="Paris is the capital of France.").index
        2

    """

    index: int
    score: float
    text: str
    layer_scores: dict[int, float] | None = field(default=None, repr=False)


__all__ = ["RankedText"]
