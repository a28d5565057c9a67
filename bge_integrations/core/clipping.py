"""Tokenising only the beginning of a very long text, where that cannot change what is read.

A model reads the first ``window`` tokens of a text; tokenising all of a 5 MB text to keep 512
tokens costs seconds. For a tokenizer that splits words at spaces and normalises characters
locally (BERT's WordPiece, XLM-RoBERTa's SentencePiece Unigram, byte-level BPE), each word is
tokenised on its own, so a prefix of the text cut at a space gives the same tokens for every word
before the cut. :func:`clip_to_window` cuts such a prefix, long enough to fill the window many
times over; :func:`clip_holds` then confirms, on the prefix's tokens, that the window filled and
ended before the prefix's last word. When it did not (mostly spaces, one huge word, an unknown
tokenizer pipeline), the whole text is tokenised: the result is never different, only faster.
:func:`encode_beginnings` does all three for a list of texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from tokenizers import Encoding, Tokenizer

CLIP_CHARS_PER_TOKEN = 32
"""A prefix keeps this many characters per window token (16,384 for 512 tokens): several times
what a window holds in any language, so that the window fills from the prefix alone."""

_SPLITTERS = frozenset({"BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Metaspace", "ByteLevel"})
_LOCAL_PRE_TOKENIZERS = _SPLITTERS | {"Punctuation", "Digits"}
_LOCAL_NORMALIZERS = frozenset(
    {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents", "Precompiled", "Strip", "Prepend"}
)
_SPACE_RUNS = {"Regex": " {2,}"}
"""The one ``Replace`` normaliser allowed: XLM-RoBERTa's, which shortens runs of spaces."""


def splits_locally(tokenizer: Tokenizer) -> bool:
    """Whether tokenizer tokenises the words between spaces independently (so a prefix is safe).

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> tokenizer = Tokenizer(models.WordLevel({"a": 0}, unk_token="a"))
        >>> tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        >>> splits_locally(tokenizer)
        True

    """
    spec = json.loads(tokenizer.to_str())
    pre_tokenizers = _steps(spec.get("pre_tokenizer"), "pretokenizers")
    normalizers = _steps(spec.get("normalizer"), "normalizers")
    if not any(_splits_at_spaces(step) for step in pre_tokenizers):
        return False
    if any(step.get("type") not in _LOCAL_PRE_TOKENIZERS for step in pre_tokenizers):
        return False
    return all(_local_normalizer(step) for step in normalizers)


def clip_to_window(text: str, window: int) -> str:
    """A prefix of text cut at a space, of about ``CLIP_CHARS_PER_TOKEN * window`` characters.

    Returns text itself (the same object) when it is shorter, or has no space to cut at in the
    second half of that length.

    Example:
        >>> clip_to_window("short text", 512)
        'short text'
        >>> len(clip_to_window("word " * 10_000, 512)) < 16_384
        True

    """
    limit = CLIP_CHARS_PER_TOKEN * window
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text if cut <= 0 else text[:cut]


def clip_holds(offsets: Sequence[tuple[int, int]], overflowed: bool, clipped: str) -> bool:
    """Whether a window tokenised from clipped is the window of every text clipped is a prefix of.

    The window must be full (else later text would add tokens to it) and end before the
    prefix's last word (the only word that text after the cut could continue).

    Args:
        offsets: Character offsets (in clipped) of the window's tokens.
        overflowed: Whether clipped has more tokens than the window holds.
        clipped: The prefix that was tokenised.

    """
    if not overflowed:
        return False
    last_word = clipped.rstrip().rfind(" ")
    return max((end for _, end in offsets), default=0) <= last_word


def encode_beginnings(
    texts: list[str], window: int, encode: Callable[[list[str]], list[Encoding]], *, clips: bool
) -> list[Encoding]:
    """Encodings of texts whose first window tokens are exact (what follows may be missing).

    With clips (the tokenizer :func:`splits_locally`), a text far longer than the window is
    encoded from a prefix (:func:`clip_to_window`); one whose window that prefix cannot settle
    (:func:`clip_holds`) is encoded again, whole.

    Args:
        texts: The texts.
        window: Tokens read of each text.
        encode: Encodes a list of texts; it either does not truncate, or truncates to window.
        clips: Whether long texts may be encoded from a prefix.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> tokenizer = Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="a"))
        >>> tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        >>> encodings = encode_beginnings(["b a " * 10_000], 4, tokenizer.encode_batch, clips=True)
        >>> encodings[0].ids[:4], len(encodings[0].ids) < 20_000
        ([1, 0, 1, 0], True)

    """
    clipped = [clip_to_window(text, window) for text in texts] if clips else texts
    encodings = encode(clipped)
    for index, (text, prefix) in enumerate(zip(texts, clipped, strict=True)):
        if prefix is text:
            continue
        encoding = encodings[index]
        overflowed = bool(encoding.overflowing) or len(encoding.ids) > window
        if not clip_holds(encoding.offsets[:window], overflowed, prefix):
            encodings[index] = encode([text])[0]
    return encodings


def _steps(spec: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [step for inner in spec.get(key, []) for step in _steps(inner, key)]
    return [spec]


def _splits_at_spaces(step: dict[str, Any]) -> bool:
    kind = step.get("type")
    if kind == "Metaspace":
        return bool(step.get("split", True))
    if kind == "ByteLevel":
        return bool(step.get("use_regex", True))
    return kind in _SPLITTERS


def _local_normalizer(step: dict[str, Any]) -> bool:
    kind = step.get("type")
    if kind == "Replace":
        return step.get("pattern") == _SPACE_RUNS and step.get("content") == " "
    return kind in _LOCAL_NORMALIZERS


__all__ = ["CLIP_CHARS_PER_TOKEN", "clip_holds", "clip_to_window", "encode_beginnings", "splits_locally"]
