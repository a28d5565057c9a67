"""Argument checks of the compat classes: each error names the bad value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bge_integrations.core.notices import warn_user
from bge_integrations.core.validation import check_positive_int

Pair = tuple[str, str]


def check_no_extra_kwargs(owner: str, kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that FlagEmbedding would pass to the tokenizer (not supported here).

    Raises:
        TypeError: Naming every unexpected argument.

    Example:
        >>> check_no_extra_kwargs("FlagModel", {})

    """
    if kwargs:
        names = ", ".join(repr(name) for name in sorted(kwargs))
        msg = f"{owner} got unexpected keyword argument(s) {names}; see docs/compat.md for what is supported"
        raise TypeError(msg)


def ignore_extra_kwargs(owner: str, kwargs: dict[str, Any]) -> None:
    """Warn about constructor arguments not used here (FlagEmbedding keeps unknown ones as attributes)."""
    if kwargs:
        names = ", ".join(repr(name) for name in sorted(kwargs))
        msg = f"{owner} ignores keyword argument(s) {names}; see docs/compat.md for what is supported"
        warn_user(msg, UserWarning)


def check_formats(**formats: Any) -> None:
    """Check that each instruction format is a string taking an instruction and a text.

    Raises:
        TypeError: If a format is not a string, naming it.
        ValueError: If a format cannot take two values, naming it.

    Example:
        >>> check_formats(query_instruction_format="{}{}")

    """
    for name, value in formats.items():
        if not isinstance(value, str):
            msg = f"{name} must be a string such as '{{}}{{}}', got {type(value).__name__}: {value!r:.80}"
            raise TypeError(msg)
        try:
            value.format("", "")
        except (IndexError, KeyError, ValueError) as exc:
            msg = f"{name} must format an instruction and a text, such as '{{}}{{}}', got {value!r}"
            raise ValueError(msg) from exc


def check_instructions(**instructions: Any) -> None:
    """Check that each instruction is a string or None.

    Raises:
        TypeError: Naming the first instruction of another type.

    """
    for name, value in instructions.items():
        if value is not None and not isinstance(value, str):
            msg = f"{name} must be a string or None, got {type(value).__name__}: {value!r:.80}"
            raise TypeError(msg)


def check_lengths(**values: Any) -> None:
    """Check that each value is an int > 0 (batch sizes, max lengths), naming the first that is not."""
    for name, value in values.items():
        check_positive_int(value, name=name)


def check_pairs(sentence_pairs: Any) -> list[Pair]:
    """Return FlagReranker's input as a list of (query, passage) pairs.

    One pair (``["q", "p"]``) counts as a list of one pair, as in FlagEmbedding.

    Raises:
        TypeError: If the input or one of its pairs is not two strings, naming its index.

    Example:
        >>> check_pairs(["q", "p"])
        [('q', 'p')]

    """
    if not isinstance(sentence_pairs, Sequence) and callable(getattr(sentence_pairs, "tolist", None)):
        sentence_pairs = sentence_pairs.tolist()  # a numpy array of pairs
    if isinstance(sentence_pairs, (str, bytes)) or not isinstance(sentence_pairs, Sequence):
        msg = f"sentence_pairs must be a [query, passage] pair or a list of pairs, got {sentence_pairs!r:.80}"
        raise TypeError(msg)
    if len(sentence_pairs) > 0 and isinstance(sentence_pairs[0], str):
        sentence_pairs = [sentence_pairs]
    pairs = []
    for index, pair in enumerate(sentence_pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            msg = f"sentence_pairs[{index}] must be a [query, passage] pair, got {pair!r:.80}"
            raise TypeError(msg)
        for part, text in zip(("query", "passage"), pair, strict=True):
            if not isinstance(text, str):
                msg = f"sentence_pairs[{index}] {part} must be a string, got {type(text).__name__}: {text!r:.80}"
                raise TypeError(msg)
        pairs.append((pair[0], pair[1]))
    return pairs


__all__ = [
    "Pair",
    "check_formats",
    "check_instructions",
    "check_lengths",
    "check_no_extra_kwargs",
    "check_pairs",
    "ignore_extra_kwargs",
]
