"""Progress bars for long work, on standard error, off unless asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


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


__all__ = ["progress_bar"]
