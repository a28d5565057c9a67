"""Counting tokens without truncation, to know which inputs a model will cut."""

from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer


class TokenCounter:
    """Counts the tokens (special tokens included) that a tokenizer makes of each text.

    It works on a private copy of the fast tokenizer with truncation and padding off, so it
    never disturbs the model's own tokenizer.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> counter = TokenCounter(AutoTokenizer.from_pretrained("BAAI/bge-small-en-v1.5"))  # doctest: +SKIP
        >>> counter.lengths(["hello"])  # doctest: +SKIP
        [3]

    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend: Tokenizer | None = None
        if isinstance(backend, Tokenizer):
            self._backend = Tokenizer.from_str(backend.to_str())
            self._backend.no_truncation()
            self._backend.no_padding()

    def lengths(self, texts: list[str]) -> list[int]:
        """Token counts of texts, special tokens included."""
        if self._backend is None:
            return [len(ids) for ids in self._tokenizer(texts, add_special_tokens=True)["input_ids"]]
        return [len(e.ids) for e in self._backend.encode_batch(texts, add_special_tokens=True)]


__all__ = ["TokenCounter"]
