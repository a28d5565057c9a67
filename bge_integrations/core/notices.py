"""Warnings that point at the user's line, whichever framework and thread they came through.

A warning raised deep inside an adapter would otherwise point at LangChain's, LlamaIndex's or
Haystack's code. And the async methods work in a worker thread, whose stack holds no caller at
all: there, warnings are collected and raised again on the caller's side when the work is done.

Inputs longer than the model's window are counted per object (:class:`TruncationMonitor`) and
told once per model and process (:class:`TruncationWarning`).
"""

from __future__ import annotations

import sys
import threading
import warnings
from contextvars import ContextVar
from typing import ClassVar

INTERNAL_MODULES = (
    "bge_integrations",
    "langchain",
    "llama_index",
    "haystack",
    "pydantic",
    "asyncio",
    "concurrent",
    "threading",
    "contextvars",
    "functools",  # cached_property: settings resolved on first use
)
"""Module-name prefixes of frames a warning skips: ours, the frameworks', the runtime's."""

_deferred: ContextVar[list[tuple[str, type[Warning]]] | None] = ContextVar("bge_deferred_warnings", default=None)


def caller_stacklevel() -> int:
    """Return the stacklevel (for the function calling this) of the first user frame."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        if not frame.f_globals.get("__name__", "").startswith(INTERNAL_MODULES):
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return 1


def warn_user(message: str, category: type[Warning]) -> None:
    """Warn at the user's line, or hold the warning for the awaiting caller (see ``core/coalescing.py``)."""
    deferred = _deferred.get()
    if deferred is not None:
        deferred.append((message, category))
        return
    warnings.warn(message, category, stacklevel=caller_stacklevel())


_told: set[str] = set()
_told_lock = threading.Lock()


def warn_once(message: str, category: type[Warning]) -> None:
    """:func:`warn_user`, once per message and process (a setting's notice, not each call's)."""
    with _told_lock:
        if message in _told:
            return
        _told.add(message)
    warn_user(message, category)


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


__all__ = ["INTERNAL_MODULES", "TruncationMonitor", "TruncationWarning", "caller_stacklevel", "warn_once", "warn_user"]
