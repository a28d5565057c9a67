"""Plain data types that the core returns and that adapters translate."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankedText:
    """One reranked text: where it was in the input, its score, and the text itself.

    Args:
        index: Position of the text in the list given to ``rank()``.
        score: Relevance score on the reranker's scale (sigmoid by default).
        text: The text that was scored.

    Example:
        >>> RankedText(index=2, score=0.93, text="Paris is the capital of France.").index
        2

    """

    index: int
    score: float
    text: str


__all__ = ["RankedText"]
