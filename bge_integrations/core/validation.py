r"""Input checks shared by the embedder, the reranker and every adapter.

Every check names the bad value: a user who passed ``None`` at position 3 of 10,000 texts is
told so instead of getting a tokenizer traceback or a silently shorter result.

Texts are otherwise taken as they are (empty, whitespace only, control characters, NUL, any
script), with one repair: a lone surrogate (U+D800..U+DFFF, which is not a character and which
UTF-8, and so the Rust tokenizers, cannot encode; ``json.loads`` and ``surrogateescape`` make
them) becomes U+FFFD, as a UTF-8 decoder does with an invalid byte. A surrogate pair, as in
``"\ud83d\udc3c"``, becomes the character it encodes. Results stay one per input, in order.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    r"""Return text with every lone surrogate replaced by U+FFFD (and surrogate pairs joined).

    Texts without surrogates (almost all) are returned as they are, at the cost of one scan.

    Example:
        >>> valid_unicode("a\ud800b") == "a\ufffdb", valid_unicode("\ud83d\udc3c") == "\U0001f43c"
        (True, True)

    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def check_texts(texts: Any, *, name: str = "texts") -> list[str]:
    """Return texts as a new list after checking that it is an ordered collection of strings.

    Lone surrogates become U+FFFD (see the module docstring); nothing else is changed.

    Raises:
        TypeError: If texts is None, a single string or bytes, a set (no order to return
            results in), a mapping (its keys are not texts), not iterable, or holds a non-string
            (named by index).

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
    if isinstance(texts, (set, frozenset, Mapping)):
        # A set has no order to give results back in; a mapping (say, ids to texts) would
        # silently have its keys embedded.
        msg = (
            f"{name} must be a sequence of strings, got a {type(texts).__name__}: {texts!r:.80} "
            "(pass a list, so that results come back in its order)"
        )
        raise TypeError(msg)
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(_must_be(name, "a sequence of strings", texts)) from None
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(_not_a_string(f"{name}[{index}]", text))
        if not text.isascii():
            checked[index] = valid_unicode(text)
    return checked


def check_text(text: Any, *, name: str = "text") -> str:
    """Return text after checking that it is a string; lone surrogates become U+FFFD.

    Raises:
        TypeError: If text is not a string, naming what it is.

    """
    if not isinstance(text, str):
        raise TypeError(_not_a_string(name, text))
    return valid_unicode(text)


def check_items(
    value: Any,
    kind: type[Any],
    *,
    name: str,
    sequence: str,
    item: str,
    hint: Callable[[Any], str] | None = None,
) -> Sequence[Any]:
    """Return value, as it is, after checking that it is a sequence (not a string) of kind instances.

    For the adapters' own inputs (nodes, documents): errors read ``{name} must be {sequence},
    got ...`` and ``{name}[index] must be {item}, got ...``, naming the bad value's type and
    repr (cut to 80 characters), followed by ``hint(bad item)`` when hint is given.

    Raises:
        TypeError: If value is a string, bytes or not a sequence, or holds an item that is not
            a kind (the first such, named by index).

    Example:
        >>> check_items((1, 2), int, name="ids", sequence="a sequence of ints", item="an int")
        (1, 2)
        >>> check_items([1, "2"], int, name="ids", sequence="a sequence of ints", item="an int")
        Traceback (most recent call last):
        ...
        TypeError: ids[1] must be an int, got str: '2'

    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(_must_be(name, sequence, value))
    for index, element in enumerate(value):
        if not isinstance(element, kind):
            raise TypeError(_must_be(f"{name}[{index}]", item, element, "" if hint is None else hint(element)))
    return value


def _not_a_string(name: str, value: Any) -> str:
    hint = " (decode bytes first, e.g. value.decode('utf-8'))" if isinstance(value, (bytes, bytearray)) else ""
    return _must_be(name, "a string", value, hint)


def _must_be(name: str, expected: str, value: Any, hint: str = "") -> str:
    return f"{name} must be {expected}, got {type(value).__name__}: {value!r:.80}{hint}"


def _integer(value: Any) -> int | None:
    """Value as a Python int when it is an integer (``np.int64(2)`` included, bools not), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


@overload
def check_positive_int(value: Any, *, name: str, allow_none: Literal[False] = False) -> int: ...
@overload
def check_positive_int(value: Any, *, name: str, allow_none: bool) -> int | None: ...
def check_positive_int(value: Any, *, name: str, allow_none: bool = False) -> int | None:
    """Return value as an int after checking that it is an integer > 0 (or None when allowed).

    NumPy integers (``np.int64(2)``, what an array yields) are integers; bools are not.

    Example:
        >>> import numpy as np
        >>> check_positive_int(np.int64(2), name="top_n")
        2

    """
    if value is None and allow_none:
        return None
    integer = _integer(value)
    if integer is None or integer <= 0:
        msg = f"{name} must be an int > 0, got {value!r}"
        raise ValueError(msg)
    return integer


def check_layers(value: Any, *, name: str, allow_zero: bool = False) -> tuple[int, ...] | None:
    """Return layer numbers as a tuple: one int or a non-empty sequence of distinct ints (None passes).

    Example:
        >>> check_layers([28, 40], name="cutoff_layers"), check_layers(28, name="cutoff_layers")
        ((28, 40), (28,))

    """
    if value is None:
        return None
    items = [value] if _integer(value) is not None else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not items:
        msg = f"{name} must be an int or a non-empty list of ints, got {value!r}"
        raise ValueError(msg)
    layers = tuple(_integer(item) for item in items)
    lowest = 0 if allow_zero else 1
    if any(layer is None or layer < lowest for layer in layers) or len(set(layers)) != len(layers):
        msg = f"{name} must hold distinct ints >= {lowest}, got {value!r}"
        raise ValueError(msg)
    return tuple(layer for layer in layers if layer is not None)


def check_non_negative_int(value: Any, *, name: str) -> int:
    """Return value as an int after checking that it is an integer >= 0 (NumPy integers included)."""
    integer = _integer(value)
    if integer is None or integer < 0:
        msg = f"{name} must be an int >= 0, got {value!r}"
        raise ValueError(msg)
    return integer


def check_optional_float(value: Any, *, name: str) -> float | None:
    """Return value as a float after checking that it is a real number, not NaN (or None).

    NumPy numbers (``np.float32(0.5)``, ``np.int64(1)``) are numbers; bools are not.
    """
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or value != value:
        msg = f"{name} must be a number or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


__all__ = [
    "check_items",
    "check_layers",
    "check_non_negative_int",
    "check_optional_float",
    "check_positive_int",
    "check_text",
    "check_texts",
    "valid_unicode",
]


def check_pairs(pairs: Any, *, name: str = "pairs") -> list[tuple[str, str]]:
    """Return (query, passage) pairs as a new list after checking each is two strings.

    Lone surrogates become U+FFFD, as in :func:`check_texts`.

    Raises:
        TypeError: If pairs is not an ordered collection, or an item is not two strings
            (named by its index, and which side is wrong).

    Example:
        >>> check_pairs([("q", "p")])
        [('q', 'p')]
        >>> check_pairs([("q", None)])
        Traceback (most recent call last):
        ...
        TypeError: pairs[0] must hold two strings; pairs[0][1] (the passage) is NoneType: None

    """
    if isinstance(pairs, (str, bytes, Mapping)) or not isinstance(pairs, Sequence):
        msg = f"{name} must be a list of (query, passage) pairs, got {type(pairs).__name__}"
        raise TypeError(msg)
    checked: list[tuple[str, str]] = []
    for index, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            msg = f"{name}[{index}] must be a (query, passage) pair, got {pair!r:.80}"
            raise TypeError(msg)
        for side, text in enumerate(pair):
            if not isinstance(text, str):
                what = "query" if side == 0 else "passage"
                msg = (
                    f"{name}[{index}] must hold two strings; {name}[{index}][{side}] (the {what}) "
                    f"is {type(text).__name__}: {text!r:.80}"
                )
                raise TypeError(msg)
        checked.append((valid_unicode(pair[0]), valid_unicode(pair[1])))
    return checked
