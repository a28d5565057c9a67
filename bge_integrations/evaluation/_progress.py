"""Progress bars on standard error for the evaluation loops (tqdm, off unless asked)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, enabled: bool, desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """Yield items, drawing a tqdm bar on standard error while enabled.

    Only wraps the loop it is given: it never changes how work is split into model calls.

    Example:
        >>> list(progress([1, 2], enabled=False, desc="Searching", unit="query"))
        [1, 2]

    """
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    yield from tqdm(items, desc=desc, unit=unit, total=total)


__all__ = ["progress"]
