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

from bge_integrations.core.clipping import encode_beginnings, splits_locally


@dataclass
class PairBatch:
    """Encoded pairs: one row per window, with the passage each window came from."""

    input_ids: list[list[int]] = field(default_factory=list)
    token_type_ids: list[list[int]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    truncated_passages: list[int] = field(default_factory=list)
    """Indices of the passages that did not fit one window."""
    cut_passages: list[int] = field(default_factory=list)
    """Indices of the passages not read whole (``windows=False``, or more windows than ``max_windows``)."""
    query_truncated: bool = False
    query_lengths: list[int] = field(default_factory=list)
    """LLM rerankers: tokens before the passage in each row (``<bos>``, query, separator)."""
    prompt_lengths: list[int] = field(default_factory=list)
    """LLM rerankers: tokens after the passage in each row (separator, prompt)."""


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
        # Not part of the tokenizer's JSON: tokenizer_kwargs={"split_special_tokens": True} sets it.
        self._backend.encode_special_tokens = backend.encode_special_tokens
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.window_overlap = window_overlap
        self._clips = splits_locally(self._backend)
        self._layout = self._pair_layout()
        self.special_tokens = self._backend.num_special_tokens_to_add(is_pair=True)
        if max_query_length + self.special_tokens >= max_length:
            msg = (
                f"max_query_length={max_query_length} leaves no room for the passage in "
                f"max_length={max_length} ({self.special_tokens} special tokens)"
            )
            raise ValueError(msg)

    def encode(self, query: str, passages: list[str], *, windows: bool, max_windows: int | None = None) -> PairBatch:
        """Encode query with every passage; long passages become windows or are truncated.

        With windows, a passage is read as up to max_windows windows (None: as many as it
        needs); without, only its first window is read.
        """
        batch = PairBatch()
        query_encoding = self._encode_beginnings([query], self.max_query_length)[0]
        if len(query_encoding.ids) > self.max_query_length:
            query_encoding.truncate(self.max_query_length)
            batch.query_truncated = True
        budget = self.max_length - self.special_tokens - len(query_encoding.ids)
        stride = min(self.window_overlap, budget // 2)
        limit = max_windows if windows else 1
        # The tokens that limit windows hold: only they need to be exact (a prefix may do).
        reach = None if limit is None else budget + (limit - 1) * (budget - stride)
        encoded = self._encode(passages) if reach is None else self._encode_beginnings(passages, reach)
        for owner, passage in enumerate(encoded):
            if len(passage.ids) > budget:
                batch.truncated_passages.append(owner)
            if reach is not None and len(passage.ids) > reach:
                batch.cut_passages.append(owner)
            for piece in self._pieces(passage, budget, stride, limit):
                ids, type_ids = self._join(query_encoding, piece)
                batch.input_ids.append(ids)
                batch.token_type_ids.append(type_ids)
                batch.owners.append(owner)
        return batch

    def _pair_layout(self) -> list[int | tuple[int, int]] | None:
        """How the post-processor lays out a pair: special tokens as (id, type id), sequences as 0 or 1.

        None when it is not such a fixed template (then each pair goes through the post-processor).
        """
        first = self._backend.encode("a", add_special_tokens=False)
        second = self._backend.encode("b", add_special_tokens=False)
        if not first.ids or not second.ids or first.overflowing or second.overflowing:
            return None
        pair = self._backend.post_process(first, second, add_special_tokens=True)
        layout: list[int | tuple[int, int]] = []
        self._sequence_types: dict[int, int] = {}
        for token_id, type_id, special in zip(pair.ids, pair.type_ids, pair.special_tokens_mask, strict=True):
            if special:
                layout.append((token_id, type_id))
            elif not layout or isinstance(layout[-1], tuple):  # a run of content: the next sequence
                self._sequence_types[len(self._sequence_types)] = type_id
                layout.append(len(self._sequence_types) - 1)
        if len(self._sequence_types) != 2:
            return None
        return layout if self._join(first, second, layout) == (pair.ids, pair.type_ids) else None

    def _join(
        self, query: Encoding, piece: Encoding, layout: list[int | tuple[int, int]] | None = None
    ) -> tuple[list[int], list[int]]:
        """The ids and type ids of the pair (query, piece), special tokens included.

        Built from the layout rather than by ``post_process``, which would also combine every
        overflowing part of a truncated query with every one of a truncated passage: for a long
        query and a long passage, millions of encodings that are thrown away.
        """
        layout = self._layout if layout is None else layout
        if layout is None:
            pair = self._backend.post_process(query, piece, add_special_tokens=True)
            return pair.ids, pair.type_ids
        ids: list[int] = []
        type_ids: list[int] = []
        for part in layout:
            if isinstance(part, tuple):
                ids.append(part[0])
                type_ids.append(part[1])
            else:
                sequence = (query, piece)[part].ids
                ids.extend(sequence)
                type_ids.extend([self._sequence_types[part]] * len(sequence))
        return ids, type_ids

    def _encode(self, texts: list[str]) -> list[Encoding]:
        return self._backend.encode_batch(texts, add_special_tokens=False)

    def _encode_beginnings(self, texts: list[str], window: int) -> list[Encoding]:
        """Encodings of texts whose first window tokens are exact (``core/clipping.py``)."""
        return encode_beginnings(texts, window, self._encode, clips=self._clips)

    @staticmethod
    def _pieces(passage: Encoding, budget: int, stride: int, limit: int | None) -> list[Encoding]:
        """The passage's windows of budget tokens, consecutive ones sharing stride; the first limit."""
        if len(passage.ids) <= budget:
            return [passage]
        passage.truncate(budget, stride=stride)
        return [passage, *passage.overflowing][:limit]


__all__ = ["PairBatch", "PairEncoder"]
