"""Progress bars for long work, on standard error, off unless asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def progress_bar(
    total: int, *, enabled: bool, unit: str = "item", desc: str | None = None
) -> Iterator[Callable[[int], None] | None]:
    """Yield a callback that advances a tqdm bar by n (or None when disabled).

    Example:
        >>> with progress_bar(3, enabled=False) as advance:
        ...     advance is None
        True

    """
    if not enabled:
        yield None
        return
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    with tqdm(total=total, unit=unit, desc=desc, leave=False) as bar:
        yield bar.update


def progress_iter(items: Iterable[T], *, enabled: bool, desc: str, unit: str, total: int | None = None) -> Iterator[T]:
    """Yield items, drawing a tqdm bar on standard error while enabled.

    Only wraps the loop it is given: it never changes how work is split into model calls.

    Example:
        >>> list(progress_iter([1, 2], enabled=False, desc="Searching", unit="query"))
        [1, 2]

    """
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, unit=unit, total=total)


__all__ = ["progress_bar", "progress_iter"]
