"""The core object behind an adapter: built from its settings, rebuilt when they change, never copied."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class CoreSlot(Generic[T]):
    """Holds the core object built from an adapter's settings, rebuilt when they change.

    Core objects hold settings only (weights live in the shared registry), so building one is
    cheap. A deep copy or an unpickled slot starts empty: its owner builds a core of its own on
    first use, which finds the already loaded model in the registry instead of copying it.

    Example:
        >>> slot: CoreSlot[dict[str, int]] = CoreSlot()
        >>> slot.get({"a": 1}, dict) is slot.get({"a": 1}, dict)
        True
        >>> slot.get({"a": 1}, dict) is slot.get({"a": 2}, dict)
        False

    """

    def __init__(self) -> None:
        self._built: tuple[dict[str, Any], T] | None = None

    def get(self, settings: dict[str, Any], build: Callable[..., T]) -> T:
        """The core built by ``build(**settings)``, reused while the settings stay the same."""
        built = self._built
        if built is None or built[0] != settings:
            built = (dict(settings), build(**settings))
            self._built = built  # one assignment: concurrent readers see a consistent pair
        return built[1]

    def __eq__(self, other: object) -> bool:
        # A cache of what the settings build, not state: owners with equal settings are equal.
        return isinstance(other, CoreSlot)

    __hash__ = None  # type: ignore[assignment]  # equal to every other slot: no hash can agree

    def __deepcopy__(self, memo: dict[int, Any]) -> CoreSlot[T]:
        return CoreSlot()

    def __reduce__(self) -> tuple[type[CoreSlot[Any]], tuple[()]]:
        return (CoreSlot, ())


__all__ = ["CoreSlot"]
