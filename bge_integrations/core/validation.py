"""Input checks shared by the embedder, the reranker and every adapter.

Every check names the bad value: a user who passed ``None`` at position 3 of 10,000 texts is
told so instead of getting a tokenizer traceback or a silently shorter result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def check_texts(texts: Any, *, name: str = "texts") -> list[str]:
    """Return texts as a list after checking that it is a sequence of strings.

    Raises:
        TypeError: If texts is None, a single string, not a sequence, or holds a non-string.

    Example:
        >>> check_texts(("a", "b"))
        ['a', 'b']

    """
    if texts is None:
        msg = f"{name} must be a sequence of strings, got None"
        raise TypeError(msg)
    if isinstance(texts, (str, bytes)):
        msg = f"{name} must be a sequence of strings, got a single {type(texts).__name__}: {texts[:50]!r}"
        raise TypeError(msg)
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            msg = f"{name} must be a sequence of strings, got {type(texts).__name__}"
            raise TypeError(msg) from None
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            msg = f"{name}[{index}] must be a string, got {type(text).__name__}: {text!r:.80}"
            raise TypeError(msg)
    return list(texts)


def check_text(text: Any, *, name: str = "text") -> str:
    """Return text after checking that it is a string."""
    if not isinstance(text, str):
        msg = f"{name} must be a string, got {type(text).__name__}: {text!r:.80}"
        raise TypeError(msg)
    return text


def check_positive_int(value: Any, *, name: str, allow_none: bool = False) -> int | None:
    """Return value after checking that it is an int > 0 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        msg = f"{name} must be an int > 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_non_negative_int(value: Any, *, name: str) -> int:
    """Return value after checking that it is an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{name} must be an int >= 0, got {value!r}"
        raise ValueError(msg)
    return value


def check_optional_float(value: Any, *, name: str) -> float | None:
    """Return value as a float after checking that it is a real number (or None)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        msg = f"{name} must be a number or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


__all__ = [
    "check_non_negative_int",
    "check_optional_float",
    "check_positive_int",
    "check_text",
    "check_texts",
]
