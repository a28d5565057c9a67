"""Turning (query, passage) pairs into cross-encoder inputs, with windows for long passages.

The query is tokenized once and kept whole (up to ``max_query_length`` tokens); only the
passage is cut. A passage longer than what is left of the window is split into overlapping
windows, each paired with the full query, so that a relevant paragraph deep in a long document
is still read. Tokenizing each side separately and joining them with the tokenizer's own
post-processor gives exactly what ``tokenizer(query, passage, truncation="only_second")``
gives for the first window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tokenizers import Encoding, Tokenizer


@dataclass
class PairBatch:
    """Encoded pairs: one row per window, with the passage each window came from."""

    input_ids: list[list[int]] = field(default_factory=list)
    token_type_ids: list[list[int]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    truncated_passages: list[int] = field(default_factory=list)
    """Indices of the passages that did not fit one window."""
    query_truncated: bool = False


class PairEncoder:
    """Encodes a query against many passages for a cross-encoder.

    Args:
        tokenizer: A fast ``transformers`` tokenizer (it has a ``backend_tokenizer``).
        max_length: Tokens per pair, special tokens included.
        max_query_length: Tokens of the query kept at most.
        window_overlap: Tokens shared by consecutive windows of one passage.

    Example:
        >>> encoder = PairEncoder(tokenizer, max_length=512, max_query_length=384, window_overlap=64)  # doctest: +SKIP
        >>> batch = encoder.encode("query", ["short passage", "very long passage ..."], windows=True)  # doctest: +SKIP

    """

    def __init__(self, tokenizer: Any, *, max_length: int, max_query_length: int, window_overlap: int) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            msg = f"the reranker needs a fast tokenizer, got {type(tokenizer).__name__}"
            raise TypeError(msg)
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.window_overlap = window_overlap
        self.special_tokens = self._backend.num_special_tokens_to_add(is_pair=True)
        if max_query_length + self.special_tokens >= max_length:
            msg = (
                f"max_query_length={max_query_length} leaves no room for the passage in "
                f"max_length={max_length} ({self.special_tokens} special tokens)"
            )
            raise ValueError(msg)

    def encode(self, query: str, passages: list[str], *, windows: bool) -> PairBatch:
        """Encode query with every passage; long passages become windows or are truncated."""
        batch = PairBatch()
        query_encoding = self._backend.encode(query, add_special_tokens=False)
        if len(query_encoding.ids) > self.max_query_length:
            query_encoding.truncate(self.max_query_length)
            batch.query_truncated = True
        budget = self.max_length - self.special_tokens - len(query_encoding.ids)
        stride = min(self.window_overlap, budget // 2)
        for owner, passage in enumerate(self._backend.encode_batch(passages, add_special_tokens=False)):
            if len(passage.ids) > budget:
                batch.truncated_passages.append(owner)
            for piece in self._pieces(passage, budget, stride, windows=windows):
                pair = self._backend.post_process(query_encoding, piece, add_special_tokens=True)
                batch.input_ids.append(pair.ids)
                batch.token_type_ids.append(pair.type_ids)
                batch.owners.append(owner)
        return batch

    @staticmethod
    def _pieces(passage: Encoding, budget: int, stride: int, *, windows: bool) -> list[Encoding]:
        if len(passage.ids) <= budget:
            return [passage]
        passage.truncate(budget, stride=stride if windows else 0)
        return [passage, *passage.overflowing] if windows else [passage]


__all__ = ["PairBatch", "PairEncoder"]
