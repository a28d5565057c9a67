r"""Turning (query, passage) pairs into the inputs of BGE's LLM rerankers, with windows for long passages.

FlagEmbedding's decoder-only rerankers read one sequence per pair::

    <bos> "A: {query}" "\\n" "B: {passage}" "\\n" "{prompt}"

each part tokenized on its own without special tokens; the query is cut to ``max_query_length``
tokens, the passage to ``max_length`` tokens and then to what is left of
``max_length + len("\\n") + len(prompt)`` after the query (FlagEmbedding's ``encode_max_length``).
The model's score is the logit of ``Yes`` (or a layer head's output) at the last token. The
first window of every passage is exactly FlagEmbedding's input; a passage longer than that is read
as further overlapping windows, each again after ``"B: "``, so a relevant paragraph deep in a
long document is still read.
"""

from __future__ import annotations

from typing import Any

from tokenizers import Encoding, Tokenizer

from bge_integrations.core.clipping import encode_beginnings, splits_locally
from bge_integrations.core.pairs import PairBatch

QUERY_PREFIX = "A: "
"""FlagEmbedding's ``query_instruction_for_rerank`` for the LLM rerankers."""
PASSAGE_PREFIX = "B: "
"""FlagEmbedding's ``passage_instruction_for_rerank`` for the LLM rerankers."""
SEPARATOR = "\n"


class LLMPairEncoder:
    """Encodes a query against many passages for an LLM reranker (FlagEmbedding's layout).

    Args:
        tokenizer: A fast ``transformers`` tokenizer (it has a ``backend_tokenizer``).
        max_length: Passage tokens read at most (FlagEmbedding's ``max_length``).
        max_query_length: Query tokens kept at most (FlagEmbedding's ``query_max_length``).
        window_overlap: Tokens shared by consecutive windows of one passage.
        prompt: The instruction after the passage.
        always_bos: Start every sequence with ``<bos>`` even when it is the padding token
            (FlagEmbedding's lightweight reranker does; the others skip it then).

    Example:
        >>> encoder = LLMPairEncoder(tokenizer, max_length=512, max_query_length=384,  # doctest: +SKIP
        ...                          window_overlap=64, prompt="Given a query A and a passage B, ...")
        >>> batch = encoder.encode("what is a panda?", ["The giant panda is a bear."], windows=True)  # doctest: +SKIP

    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int,
        max_query_length: int,
        window_overlap: int,
        prompt: str,
        always_bos: bool = False,
    ) -> None:
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            msg = f"the LLM reranker needs a fast tokenizer, got {type(tokenizer).__name__}"
            raise TypeError(msg)
        self._backend = Tokenizer.from_str(backend.to_str())
        self._backend.no_truncation()
        self._backend.no_padding()
        # Not part of the tokenizer's JSON: tokenizer_kwargs={"split_special_tokens": True} sets it.
        self._backend.encode_special_tokens = backend.encode_special_tokens
        self._tokenizer = tokenizer
        # FlagEmbedding tokenizes with the transformers tokenizer; its backend is faster and clips long
        # texts, and is used when it gives the same ids on these probes (as for every BGE tokenizer).
        probes = [prompt, SEPARATOR, QUERY_PREFIX + "what is a panda?", PASSAGE_PREFIX + "The giant panda."]
        self._exact_backend = all(
            self._backend.encode(text, add_special_tokens=False).ids
            == list(tokenizer(text, add_special_tokens=False)["input_ids"])
            for text in probes
        )
        self._clips = splits_locally(self._backend) and self._exact_backend
        self.max_length = max_length
        self.max_query_length = max_query_length
        self.window_overlap = window_overlap
        self.prompt = prompt
        bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
        if always_bos and bos is None:
            msg = f"{type(tokenizer).__name__} has no <bos> token, which this LLM reranker needs"
            raise ValueError(msg)
        self._start = [bos] if bos is not None and (always_bos or bos != pad) else []
        self._sep = self._ids(SEPARATOR)
        self._prompt = self._ids(prompt)
        self._passage_prefix = self._ids(PASSAGE_PREFIX)
        self._limit = max_length + len(self._sep) + len(self._prompt)

    def encode(self, query: str, passages: list[str], *, windows: bool, max_windows: int | None = None) -> PairBatch:
        """Encode query with every passage; long passages become windows or are truncated.

        Rows also carry ``query_lengths`` (``<bos>``, query and separator) and ``prompt_lengths``
        (separator and prompt), which the lightweight reranker compresses between.
        """
        batch = PairBatch()
        query_ids = self._token_ids([QUERY_PREFIX + query], self.max_query_length)[0]
        if len(query_ids) > self.max_query_length:
            query_ids = query_ids[: self.max_query_length]
            batch.query_truncated = True
        head = [*self._start, *query_ids, *self._sep]
        tail = [*self._sep, *self._prompt]
        # FlagEmbedding cuts the passage to max_length, then the pair to encode_max_length.
        budget = min(self.max_length, self._limit - len(head))
        if budget <= len(self._passage_prefix):
            msg = (
                f"max_query_length={self.max_query_length} leaves no room for the passage in "
                f"max_length={self.max_length}"
            )
            raise ValueError(msg)
        later = budget - len(self._passage_prefix)  # the passage tokens of a window after the first
        stride = min(self.window_overlap, later // 2)
        limit = max_windows if windows else 1
        reach = None if limit is None else budget + (limit - 1) * (later - stride)
        texts = [PASSAGE_PREFIX + passage for passage in passages]
        for owner, ids in enumerate(self._token_ids(texts, reach)):
            if len(ids) > budget:
                batch.truncated_passages.append(owner)
            if reach is not None and len(ids) > reach:
                batch.cut_passages.append(owner)
            for piece in self._pieces(ids, budget, later, stride, limit):
                batch.input_ids.append([*head, *piece, *tail])
                batch.token_type_ids.append([])
                batch.owners.append(owner)
                batch.query_lengths.append(len(head))
                batch.prompt_lengths.append(len(tail))
        return batch

    def _pieces(self, ids: list[int], budget: int, later: int, stride: int, limit: int | None) -> list[list[int]]:
        """The first window (``"B: "`` and the passage's beginning), then ``"B: "`` + overlapping slices."""
        pieces = [ids[:budget]]
        start = budget
        while start < len(ids) and (limit is None or len(pieces) < limit):
            begin = start - stride
            pieces.append([*self._passage_prefix, *ids[begin : begin + later]])
            start = begin + later
        return pieces

    def _ids(self, text: str) -> list[int]:
        return self._token_ids([text])[0]

    def _token_ids(self, texts: list[str], window: int | None = None) -> list[list[int]]:
        """Each text's ids; with a window, only the first window ids need be exact (a prefix may do)."""
        if not self._exact_backend:
            return [list(row) for row in self._tokenizer(texts, add_special_tokens=False)["input_ids"]]
        if window is None:
            encodings = self._encode(texts)
        else:
            encodings = encode_beginnings(texts, window, self._encode, clips=self._clips)
        return [encoding.ids for encoding in encodings]

    def _encode(self, texts: list[str]) -> list[Encoding]:
        return self._backend.encode_batch(texts, add_special_tokens=False)


__all__ = ["PASSAGE_PREFIX", "QUERY_PREFIX", "LLMPairEncoder"]
