"""A bounded queue in front of the model: work is admitted or refused at once, never piled up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Overloaded(Exception):  # noqa: N818 - the state the server reports (429 "Overloaded", as TEI)
    """Raised when admitting a request would go past the queue's capacity, or while shutting down."""

    def __init__(self, message: str, *, shutting_down: bool = False) -> None:
        super().__init__(message)
        self.shutting_down = shutting_down


class Admission:
    """Counts the items (texts, documents) admitted and not yet answered; refuses past capacity.

    A request is admitted whole or not at all, so memory held by waiting work is bounded by
    ``capacity`` items (each at most the server's ``max_chars``) whatever the load.

    Args:
        capacity: Items admitted at once at most.

    Example:
        >>> admission = Admission(capacity=4)
        >>> with admission.admit(3):
        ...     admission.pending
        3
        >>> admission.pending
        0

    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._pending = 0
        self._requests = 0
        self._closed = False
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        """Items admitted and not yet answered (the queue depth)."""
        return self._pending

    @property
    def requests(self) -> int:
        """Requests admitted and not yet answered."""
        return self._requests

    def acquire(self, items: int) -> None:
        """Take ``items`` places; raises :class:`Overloaded` if they are not free (or when closed)."""
        with self._lock:
            if self._closed:
                msg = "the server is shutting down"
                raise Overloaded(msg, shutting_down=True)
            if self._pending + items > self.capacity:
                msg = (
                    f"the server is at capacity ({self._pending} of {self.capacity} queued items; "
                    f"this request has {items}): retry later"
                )
                raise Overloaded(msg)
            self._pending += items
            self._requests += 1

    def release(self, items: int) -> None:
        """Give back the places one :meth:`acquire` took."""
        with self._lock:
            self._pending -= items
            self._requests -= 1

    @contextmanager
    def admit(self, items: int) -> Iterator[None]:
        """Hold ``items`` places while the block runs (:meth:`acquire`, then :meth:`release`)."""
        self.acquire(items)
        try:
            yield
        finally:
            self.release(items)

    def close(self) -> None:
        """Refuse new work from now on (shutdown); what was admitted still runs."""
        with self._lock:
            self._closed = True


__all__ = ["Admission", "Overloaded"]
