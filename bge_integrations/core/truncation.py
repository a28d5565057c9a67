"""Counting inputs that do not fit the model's window, and warning once per model."""

from __future__ import annotations

import threading
from typing import ClassVar

from bge_integrations.core.notices import warn_user


class TruncationWarning(UserWarning):
    """An input was longer than the model's window and only its beginning was read."""


class TruncationMonitor:
    """Counts truncated inputs for one object and warns once per model and process.

    Example:
        >>> monitor = TruncationMonitor()
        >>> monitor.record("BAAI/bge-small-en-v1.5", truncated=0, total=3, max_length=512)
        >>> monitor.count
        0

    """

    _warned: ClassVar[set[str]] = set()
    _warned_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.count = 0
        """Inputs this object has truncated so far."""
        self._lock = threading.Lock()

    def record(
        self, model: str, *, truncated: int, total: int, max_length: int, what: str = "texts", reads: str | None = None
    ) -> None:
        """Add truncated inputs to the count; warn the first time a model truncates anything.

        ``reads`` says how much the model reads when it is not ``the {max_length} tokens``.
        """
        if truncated <= 0:
            return
        with self._lock:
            self.count += truncated
        with self._warned_lock:
            first = model not in self._warned
            self._warned.add(model)
        if first:
            msg = (
                f"{truncated} of {total} {what} are longer than {reads or f'the {max_length} tokens'} that "
                f"{model!r} reads and were truncated; only their beginning is used. "
                "This warning is shown once per model; see the `truncated_count` attribute."
            )
            warn_user(msg, TruncationWarning)

    @classmethod
    def reset_warnings(cls) -> None:
        """Forget which models were warned about (for tests)."""
        with cls._warned_lock:
            cls._warned.clear()


__all__ = ["TruncationMonitor", "TruncationWarning"]
