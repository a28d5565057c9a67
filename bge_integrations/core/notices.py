"""Warnings that point at the user's line, whichever framework and thread they came through.

A warning raised deep inside an adapter would otherwise point at LangChain's, LlamaIndex's or
Haystack's code. And the async methods work in a worker thread, whose stack holds no caller at
all: there, warnings are collected and raised again on the caller's side when the work is done.
"""

from __future__ import annotations

import sys
import warnings
from contextvars import ContextVar

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


__all__ = ["INTERNAL_MODULES", "caller_stacklevel", "warn_user"]
