"""FlagReranker: FlagEmbedding's encoder reranker (``compute_score``), on the core engine.

Truncation is FlagEmbedding's: the query is cut to ``query_max_length`` tokens (default three
quarters of ``max_length``), then the passage so that the pair fits ``max_length``
(``truncation="only_second"``). That is the core's first window: ``BGEReranker(windows=False)``'s
``score_pairs`` does the work, so long passages are truncated (and counted, with one
TruncationWarning per model), never read as several windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bge_integrations.compat._checks import (
    Pair,
    check_formats,
    check_instructions,
    check_lengths,
    check_no_extra_kwargs,
    check_pairs,
    ignore_extra_kwargs,
)
from bge_integrations.compat._compute import sigmoid, with_instruction
from bge_integrations.compat._devices import DeviceSpec, Handles, run_on_devices, target_devices
from bge_integrations.compat._hub import resolve_model
from bge_integrations.core.reranker import BGEReranker


class FlagReranker:
    """FlagEmbedding's ``FlagReranker`` on this package's engine: change the import line only.

    Arguments mean what they mean in FlagEmbedding 1.4 (docs/compat.md lists the differences).
    :meth:`compute_score` returns a list of floats, one per pair, even for a single pair: raw
    logits, or their sigmoid with ``normalize=True``. The model loads in the constructor.

    Example:
        >>> from bge_integrations.compat import FlagReranker
        >>> reranker = FlagReranker("BAAI/bge-reranker-v2-m3", use_fp16=True)  # doctest: +SKIP
        >>> reranker.compute_score(["query", "passage"])  # doctest: +SKIP
        [-5.65234375]
        >>> reranker.compute_score([["what is panda?", "hi"], ["what is panda?", "The giant panda ..."]],
        ...                        normalize=True)  # doctest: +SKIP
        [0.00027803096387751553, 0.9948403768236574]

    """

    def __init__(
        self,
        model_name_or_path: str,
        use_fp16: bool = False,
        query_instruction_for_rerank: str | None = None,
        query_instruction_format: str = "{}{}",
        passage_instruction_for_rerank: str | None = None,
        passage_instruction_format: str = "{}{}",
        trust_remote_code: bool = False,
        cache_dir: str | None = None,
        devices: DeviceSpec = None,
        batch_size: int = 128,
        query_max_length: int | None = None,
        max_length: int = 512,
        normalize: bool = False,
        passage_max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        ignore_extra_kwargs("FlagReranker", kwargs)
        check_instructions(
            query_instruction_for_rerank=query_instruction_for_rerank,
            passage_instruction_for_rerank=passage_instruction_for_rerank,
        )
        check_formats(
            query_instruction_format=query_instruction_format, passage_instruction_format=passage_instruction_format
        )
        check_lengths(batch_size=batch_size)
        self.model_name_or_path = model_name_or_path
        self.use_fp16 = use_fp16
        self.query_instruction_for_rerank = query_instruction_for_rerank
        self.query_instruction_format = query_instruction_format
        self.passage_instruction_for_rerank = passage_instruction_for_rerank
        self.passage_instruction_format = passage_instruction_format
        self.trust_remote_code = trust_remote_code
        self.cache_dir = cache_dir
        self.target_devices = target_devices(devices)
        self._model = resolve_model(model_name_or_path, cache_dir)
        self.batch_size = batch_size
        self.query_max_length = query_max_length
        self.max_length = max_length
        self.normalize = normalize
        self.passage_max_length = passage_max_length  # FlagEmbedding's docs pass it; it has no effect there either
        self._handles = Handles(BGEReranker)
        self._rerankers(max_length, query_max_length, batch_size)  # FlagEmbedding loads in the constructor

    def compute_score(
        self,
        sentence_pairs: Sequence[str] | Sequence[Sequence[str]],
        batch_size: int | None = None,
        query_max_length: int | None = None,
        max_length: int | None = None,
        normalize: bool | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """Score (query, passage) pairs: one float per pair, in input order, all pairs batched together.

        Args:
            sentence_pairs: One ``[query, passage]`` pair, or a list of pairs (lists or tuples).
            batch_size: Pairs per forward pass; None: ``self.batch_size``.
            query_max_length: Query tokens kept; None: ``self.query_max_length``, else 3/4 of max_length.
            max_length: Tokens per pair; None: ``self.max_length``.
            normalize: Sigmoid of the logits (True) or raw logits (False); None: ``self.normalize``.
            kwargs: None accepted (FlagEmbedding passes them to the tokenizer).

        Raises:
            TypeError: If a pair is not two strings (naming its index), or for any keyword
                argument not listed here.

        """
        check_no_extra_kwargs("compute_score", kwargs)
        pairs = check_pairs(sentence_pairs)
        queries = with_instruction(
            [q for q, _ in pairs], self.query_instruction_for_rerank, self.query_instruction_format
        )
        passages = with_instruction(
            [p for _, p in pairs], self.passage_instruction_for_rerank, self.passage_instruction_format
        )
        size = self.batch_size if batch_size is None else batch_size
        check_lengths(batch_size=size)
        handles = self._rerankers(
            self.max_length if max_length is None else max_length,
            self.query_max_length if query_max_length is None else query_max_length,
            size,
        )

        def work(handle: BGEReranker, chunk: list[Pair]) -> list[float]:
            return handle.score_pairs(chunk, normalize=False)

        formatted = list(zip(queries, passages, strict=True))
        scores = [score for part in run_on_devices(handles, formatted, work) for score in part] if pairs else []
        return [sigmoid(s) for s in scores] if (self.normalize if normalize is None else normalize) else scores

    def stop_self_pool(self) -> None:
        """Free this reranker's weights on every device (FlagEmbedding's clean-up call)."""
        self._handles.release()

    def _rerankers(self, max_length: int, query_max_length: int | None, batch_size: int) -> list[BGEReranker]:
        check_lengths(max_length=max_length)
        if query_max_length is not None:
            check_lengths(query_max_length=query_max_length)
        query_length = max_length * 3 // 4 if query_max_length is None else query_max_length
        if query_length >= max_length:
            msg = f"query_max_length must be < max_length={max_length}, got {query_length}"
            raise ValueError(msg)
        return self._handles.get(
            self.target_devices,
            use_fp16=self.use_fp16,
            model_name=self._model,
            max_length=max_length,
            max_query_length=query_length,
            windows=False,  # FlagEmbedding truncates: the core's first window only
            normalize=False,
            batch_size=batch_size,
            trust_remote_code=self.trust_remote_code,
        )


__all__ = ["FlagReranker"]
