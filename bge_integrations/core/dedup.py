"""Running each distinct text once: identical inputs get identical outputs, and cost once."""

from __future__ import annotations


def deduplicate(texts: list[str]) -> tuple[list[str], list[int]]:
    """Return the distinct texts (first-seen order) and, per input, its index among them.

    Batched kernels do not promise bit-identical results for identical rows, so without this
    two copies of a passage could score 1e-7 apart and break the rule that ties keep input
    order (and trec_eval's tie rule on collections with duplicate documents).

    Example:
        >>> deduplicate(["a", "b", "a"])
        (['a', 'b'], [0, 1, 0])

    """
    positions: dict[str, int] = {}
    inverse = [positions.setdefault(text, len(positions)) for text in texts]
    return list(positions), inverse


__all__ = ["deduplicate"]
