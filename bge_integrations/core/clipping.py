"""Tokenising only the beginning of a very long text, where that cannot change what is read.

A model reads the first ``window`` tokens of a text; tokenising all of a 5 MB text to keep 512
tokens costs seconds and hundreds of megabytes (a 300 MB one, more memory than there is). For a
tokenizer that normalises characters locally and splits text into words (pre-tokens) by local
rules (BERT's WordPiece, XLM-RoBERTa's SentencePiece Unigram, byte-level BPE), each word is
tokenised on its own, so a prefix of the text gives the same tokens for every word before its
last one. :func:`clip_to_window` cuts a prefix long enough to fill the window many times over;
:func:`clip_holds` confirms, on the prefix's tokens, that the window filled and ended before the
prefix's last word (the tokenizer's own words: for BERT, punctuation splits ``"a,a,a"`` too).
When it did not (mostly spaces, one huge word), a longer prefix is tried, within a bound that
:func:`encode_prefixes` documents: the cost follows what the window needs, never the text's
length. :func:`encode_beginnings` does all this for a list of texts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from tokenizers import Encoding, Tokenizer

CLIP_CHARS_PER_TOKEN = 32
"""A prefix keeps this many characters per window token (16,384 for 512 tokens): several times
what a window holds in any language, so that the window fills from the prefix alone."""
CLIP_GROWTH = 4
"""A prefix that cannot settle the window is followed by one this many times longer."""
CLIP_MAX_CHARS_PER_TOKEN = 2048
"""At most this many characters per window token are tokenised, counting a window as at least
512 tokens: 1 Mi characters (2 MiB to 4 MiB of UTF-8) for windows up to 512 tokens."""

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


def clip_to_window(text: str, window: int, *, chars: int | None = None) -> str:
    """A prefix of text of about chars (default ``CLIP_CHARS_PER_TOKEN * window``) characters.

    Cut at the last space in the second half of that length, or, where there is none (a text
    without spaces: base64, minified code, ``"a,a,a,..."``), at that length. Returns text
    itself (the same object) when it is not longer.

    Example:
        >>> clip_to_window("short text", 512)
        'short text'
        >>> len(clip_to_window("word " * 10_000, 512)) < 16_384
        True
        >>> len(clip_to_window("a," * 100_000, 512))
        16384

    """
    limit = CLIP_CHARS_PER_TOKEN * window if chars is None else chars
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", limit // 2, limit)
    return text[: limit if cut <= 0 else cut]


def clip_holds(encoding: Encoding, window: int) -> bool:
    """Whether the window of encoding, tokenised from a prefix, is the window of every text it is a prefix of.

    The window must be full (else later text would add tokens to it) and end before the
    prefix's last word: the tokenizer's own last pre-token (a word between spaces, or a
    punctuation mark or run of letters where its pre-tokenizer splits there), the only one
    that text after the cut could continue.

    Args:
        encoding: The prefix's encoding: whole, or cut to window with the rest in ``overflowing``.
        window: Tokens read.

    """
    pieces = [encoding, *encoding.overflowing]
    if len(encoding.ids) <= window and not encoding.overflowing:
        return False
    in_window = [word for word in encoding.word_ids[:window] if word is not None]
    last = _last_word(pieces)
    return bool(in_window) and last is not None and max(in_window) < last


def encode_beginnings(
    texts: list[str], window: int, encode: Callable[[list[str]], list[Encoding]], *, clips: bool
) -> list[Encoding]:
    """Encodings of texts whose first window tokens are those of the whole text (what follows may be missing).

    With clips (the tokenizer :func:`splits_locally`), a text far longer than the window is
    encoded from a prefix; see :func:`encode_prefixes`, which also says which prefix.

    Example:
        >>> from tokenizers import Tokenizer, models, pre_tokenizers
        >>> tokenizer = Tokenizer(models.WordLevel({"a": 0, "b": 1}, unk_token="a"))
        >>> tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        >>> encodings = encode_beginnings(["b a " * 10_000], 4, tokenizer.encode_batch, clips=True)
        >>> encodings[0].ids[:4], len(encodings[0].ids) < 20_000
        ([1, 0, 1, 0], True)

    """
    return encode_prefixes(texts, window, encode, clips=clips)[0]


def encode_prefixes(
    texts: list[str], window: int, encode: Callable[[list[str]], list[Encoding]], *, clips: bool
) -> tuple[list[Encoding], list[str]]:
    """Encodings of texts, each from a prefix that settles its first window tokens; and those prefixes.

    A text longer than ``CLIP_CHARS_PER_TOKEN * window`` characters is encoded from such a
    prefix (:func:`clip_to_window`). Where that prefix's window does not hold
    (:func:`clip_holds`: not full yet, or ending in the prefix's last word), a prefix
    ``CLIP_GROWTH`` times longer is tried, and so on: the cost follows what the window needs,
    not the text's length. Two bounds, for texts no prefix can settle:

    * A window that ends inside one word (pre-token) longer than two cuts (a text without any
      break, such as base64 under a SentencePiece tokenizer) is taken when two cuts, the second
      ``CLIP_GROWTH`` times longer, give the same window: the word's far end could change how
      its beginning is split only in contrived cases. (WordPiece reads any word longer than its
      limit as one unknown token, so there it is exact.)
    * At most ``CLIP_MAX_CHARS_PER_TOKEN * max(window, 512)`` characters (1 Mi for windows up
      to 512 tokens) are tokenised: a longer text whose window those cannot settle (over 2,000
      blank characters per token, say) is read from that prefix.

    Every other text (including every text of at most that length whose window holds) gets
    exactly the whole text's window. Without clips, texts are encoded as they are.

    Args:
        texts: The texts.
        window: Tokens read of each text.
        encode: Encodes a list of texts; it either does not truncate, or truncates to window.
        clips: Whether long texts may be encoded from a prefix.

    Returns:
        The encodings, and for each text what was encoded: the text itself or a prefix of it.

    """
    if not clips:
        return encode(texts), list(texts)
    clipped = [clip_to_window(text, window) for text in texts]
    encodings = list(encode(clipped))
    sources = list(clipped)
    for index, text in enumerate(texts):
        if clipped[index] is not text:
            encodings[index], sources[index] = _settle(text, window, encode, encodings[index], clipped[index])
    return encodings, sources


def _settle(
    text: str, window: int, encode: Callable[[list[str]], list[Encoding]], encoding: Encoding, prefix: str
) -> tuple[Encoding, str]:
    """Grow the prefix until its window holds, two cuts inside one word agree, or the bound is reached."""
    chars = CLIP_CHARS_PER_TOKEN * window
    bound = CLIP_MAX_CHARS_PER_TOKEN * max(window, 512)
    inside: list[int] | None = None
    while prefix is not text and not clip_holds(encoding, window):
        seen = encoding.ids[:window]  # (offsets may differ: WordPiece's unknown token spans its whole word)
        if _ends_in_last_word(encoding, window):
            if inside == seen:
                break  # two cuts, one word: the same window
            inside = seen
        else:
            inside = None
        if chars >= bound:
            break
        chars = min(chars * CLIP_GROWTH, bound)
        prefix = clip_to_window(text, window, chars=chars)
        encoding = encode([prefix])[0]
    return encoding, prefix


def _ends_in_last_word(encoding: Encoding, window: int) -> bool:
    """A full window whose last token is in the prefix's last word."""
    if len(encoding.ids) <= window and not encoding.overflowing:
        return False
    in_window = [word for word in encoding.word_ids[:window] if word is not None]
    return bool(in_window) and max(in_window) == _last_word([encoding, *encoding.overflowing])


def _last_word(pieces: Sequence[Encoding]) -> int | None:
    for piece in reversed(pieces):
        words = [word for word in piece.word_ids if word is not None]
        if words:
            return max(words)
    return None


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


__all__ = [
    "CLIP_CHARS_PER_TOKEN",
    "CLIP_GROWTH",
    "CLIP_MAX_CHARS_PER_TOKEN",
    "clip_holds",
    "clip_to_window",
    "encode_beginnings",
    "encode_prefixes",
    "splits_locally",
]
