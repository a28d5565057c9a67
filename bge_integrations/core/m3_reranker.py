"""BGEM3Reranker: bge-m3's "all-in-one" reranking, by the weighted dense + sparse + ColBERT score."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from bge_integrations.core.configs import EmbedderConfig
from bge_integrations.core.loading import LoadKey
from bge_integrations.core.m3_embedder import DEFAULT_M3, BGEM3Embedder
from bge_integrations.core.m3_scoring import DEFAULT_WEIGHTS, check_weights, colbert_score, lexical_score
from bge_integrations.core.m3_types import M3Embeddings, M3RankedText
from bge_integrations.core.validation import (
    check_optional_float,
    check_pairs,
    check_positive_int,
    check_text,
    check_texts,
)

_ALL = ("dense", "sparse", "colbert")


class BGEM3Reranker:
    """Ranks passages for a query by bge-m3's combined score, as FlagEmbedding's ``compute_score``.

    Query and passages are each encoded once (dense, sparse and ColBERT from one pass); a
    passage's score is ``(w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)`` with
    ``weights=(w0, w1, w2)``, FlagEmbedding's ``"colbert+sparse+dense"``. The three component
    scores come with each :class:`~bge_integrations.core.m3_types.M3RankedText`. Unlike a
    cross-encoder, scores are not probabilities: compare them within a query.

    Args:
        model_name: Hub id or local path of a bge-m3 checkpoint with both heads.
        weights: Weights of (dense, sparse, colbert). Default ``(0.4, 0.2, 0.4)``, the bge-m3
            model card's (FlagEmbedding's ``compute_score`` weighs all three 1 when given none).
        max_length: Tokens read per query and per passage. None: 8192 for bge-m3.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        batch_size: Texts per forward pass.
        max_batch_tokens: Padded tokens per forward pass, at most (None: 2,048 on the CPU, measured; else none).
        cache_dir: A persistent embedding cache folder, as :class:`BGEEmbedder`'s: passages
            scored before are not encoded again.
        settings: Any other setting of :class:`~bge_integrations.BGEM3Embedder` (``revision``,
            ``token``, ``model_kwargs``, ``cache_folder``, ``local_files_only``...).

    Example:
        >>> reranker = BGEM3Reranker("BAAI/bge-m3", device="cpu")
        >>> reranker.rank("what is a panda?", ["hi", "The giant panda is a bear."], top_n=1)  # doctest: +SKIP
        [M3RankedText(index=1, score=0.52..., text='The giant panda is a bear.', dense=0.7..., ...)]
        >>> reranker.weights
        (0.4, 0.2, 0.4)

    """

    def __init__(
        self,
        model_name: str = DEFAULT_M3,
        *,
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        max_length: int | None = None,
        device: str | None = None,
        use_fp16: bool | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **settings: Any,
    ) -> None:
        self.weights = check_weights(weights)
        for name in ("truncate_dim", "precision", "quantization_ranges"):
            if settings.get(name, "float32" if name == "precision" else None) not in (None, "float32"):
                msg = f"BGEM3Reranker scores full float32 vectors; {name} does not apply to it, got {settings[name]!r}"
                raise ValueError(msg)
        self.embedder = BGEM3Embedder(
            model_name,
            max_length=max_length,
            device=device,
            use_fp16=use_fp16,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            cache_dir=cache_dir,
            **settings,
        )

    @property
    def model_name(self) -> str:
        """The checkpoint's hub id or path."""
        return self.embedder.model_name

    @property
    def config(self) -> EmbedderConfig:
        """The effective settings of the encoder (see :class:`BGEM3Embedder`)."""
        return self.embedder.config

    @property
    def load_key(self) -> LoadKey:
        """The registry key of the encoder: shared with embedders configured alike."""
        return self.embedder.load_key

    def warm_up(self) -> None:
        """Load the encoder and heads now instead of on first use."""
        self.embedder.warm_up()

    def release(self) -> bool:
        """Free the encoder and heads (shared with every object of the same load key)."""
        return self.embedder.release()

    def score(self, query: str, documents: list[str]) -> list[float]:
        """The combined score of each document for query: one float per document, in input order."""
        return [item.score for item in self._score(check_text(query, name="query"), documents)]

    def score_components(self, query: str, documents: list[str]) -> list[dict[str, float]]:
        """Each document's ``{"dense", "sparse", "colbert", "combined"}`` scores, in input order."""
        return [
            {**item.components(), "combined": item.score}
            for item in self._score(check_text(query, name="query"), documents)
        ]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The combined score of (query, passage) pairs: one float per pair, in input order.

        Every distinct query and every distinct passage is encoded once, all in two model runs.
        """
        checked = check_pairs(pairs)
        if not checked:
            return []
        queries = self.embedder.encode_queries([query for query, _ in checked], outputs=_ALL)
        passages = self.embedder.encode_documents([passage for _, passage in checked], outputs=_ALL)
        return [self._combine(queries, i, passages, i, checked[i][1]).score for i in range(len(checked))]

    def rank(
        self, query: str, documents: list[str], top_n: int | None = None, score_threshold: float | None = None
    ) -> list[M3RankedText]:
        """Documents sorted by combined score, best first (ties keep input order).

        Args:
            query: The query.
            documents: Texts to rank.
            top_n: Keep the best top_n; None keeps all.
            score_threshold: Drop documents whose combined score is below it.

        """
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        return _ranked(self._score(check_text(query, name="query"), documents), top_n, threshold)

    async def ascore(self, query: str, documents: list[str]) -> list[float]:
        """Async :meth:`score`: the model runs in a worker thread; concurrent calls share batches."""
        return [item.score for item in await self._ascore(check_text(query, name="query"), documents)]

    async def arank(
        self, query: str, documents: list[str], top_n: int | None = None, score_threshold: float | None = None
    ) -> list[M3RankedText]:
        """Async :meth:`rank`."""
        top_n = check_positive_int(top_n, name="top_n", allow_none=True)
        threshold = check_optional_float(score_threshold, name="score_threshold")
        return _ranked(await self._ascore(check_text(query, name="query"), documents), top_n, threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(weights={self.weights!r}, embedder={self.embedder!r})"

    def _score(self, query: str, documents: list[str]) -> list[M3RankedText]:
        documents = check_texts(documents, name="documents")
        if not documents:
            return []
        encoded_query = self.embedder.encode_queries([query], outputs=_ALL)
        passages = self.embedder.encode_documents(documents, outputs=_ALL)
        return [self._combine(encoded_query, 0, passages, i, documents[i]) for i in range(len(documents))]

    async def _ascore(self, query: str, documents: list[str]) -> list[M3RankedText]:
        documents = check_texts(documents, name="documents")
        if not documents:
            return []
        encoded_query = await self.embedder.aencode_queries([query], outputs=_ALL)
        passages = await self.embedder.aencode_documents(documents, outputs=_ALL)
        return [self._combine(encoded_query, 0, passages, i, documents[i]) for i in range(len(documents))]

    def _combine(self, queries: M3Embeddings, q: int, passages: M3Embeddings, p: int, text: str) -> M3RankedText:
        if queries.dense is None or queries.sparse is None or queries.colbert is None:
            raise RuntimeError("bge-m3 query outputs missing")
        if passages.dense is None or passages.sparse is None or passages.colbert is None:
            raise RuntimeError("bge-m3 passage outputs missing")
        dense = float(np.dot(queries.dense[q].astype(np.float64), passages.dense[p].astype(np.float64)))
        sparse = lexical_score(queries.sparse[q], passages.sparse[p])
        colbert = colbert_score(queries.colbert[q], passages.colbert[p])
        w0, w1, w2 = self.weights
        combined = (w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)
        return M3RankedText(index=p, score=combined, text=text, dense=dense, sparse=sparse, colbert=colbert)


def _ranked(items: list[M3RankedText], top_n: int | None, threshold: float | None) -> list[M3RankedText]:
    ranked = sorted(items, key=lambda item: -item.score)
    if threshold is not None:
        ranked = [item for item in ranked if item.score >= threshold]
    return ranked if top_n is None else ranked[:top_n]


__all__ = ["BGEM3Reranker"]
