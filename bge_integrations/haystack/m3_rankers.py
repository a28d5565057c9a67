"""BGEM3Ranker: ranks Documents by bge-m3's weighted dense + sparse + ColBERT score.

Wraps :class:`~bge_integrations.core.m3_reranker.BGEM3Reranker`; parameter names follow
:class:`~bge_integrations.haystack.BGERanker`. Configured as the bge-m3 embedders of
:mod:`bge_integrations.haystack.m3`, it shares their model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from haystack import Document, component
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.m3_embedder import DEFAULT_M3, BGEM3Embedder
from bge_integrations.core.m3_reranker import BGEM3Reranker
from bge_integrations.core.m3_scoring import DEFAULT_WEIGHTS, check_weights
from bge_integrations.core.m3_types import M3RankedText
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.validation import check_optional_float, check_positive_int
from bge_integrations.haystack._common import (
    check_documents,
    check_fields,
    copy_document,
    default_token,
    document_texts,
    plain,
    serializable,
)
from bge_integrations.haystack.m3 import _M3Base

SCORE_META_KEYS: dict[str, str] = {"dense": "dense_score", "sparse": "sparse_score", "colbert": "colbert_score"}
"""The ``meta`` key under which :class:`BGEM3Ranker` puts each component score."""


@component
class BGEM3Ranker(_M3Base):
    """Ranks Documents by bge-m3's combined dense + sparse + ColBERT score; returns scored copies, best first.

    Each copy's ``score`` is the combined score ``(w0 * dense + w1 * sparse + w2 * colbert) /
    (w0 + w1 + w2)`` of :class:`~bge_integrations.core.m3_reranker.BGEM3Reranker`; the three
    component scores go to its ``meta`` as ``dense_score``, ``sparse_score`` and
    ``colbert_score`` (:data:`SCORE_META_KEYS`), next to the input's meta (a copy: inputs are
    untouched). As :class:`~bge_integrations.haystack.BGERanker`, every input document gets one
    scored copy (no deduplication) and one without content is scored as the empty text. Scores
    are not probabilities: compare them within a query.

    Args:
        model: Hub id or local path of a bge-m3 checkpoint with both heads.
        device: ``"cpu"``, ``"cuda:1"``... or a ``ComponentDevice``. None: chosen when the model loads.
        top_k: Documents returned at most (overridable per run).
        score_threshold: Drop documents whose combined score is below it. None keeps all.
        weights: Weights of (dense, sparse, colbert); default ``[0.4, 0.2, 0.4]``, the model card's.
        meta_fields_to_embed: Meta fields read before the content (those set on a document).
        embedding_separator: Joins those meta values and the content.
        batch_size, use_fp16, max_length, revision, trust_remote_code, token, max_batch_tokens,
            cache_dir, local_files_only, model_kwargs, tokenizer_kwargs, config_kwargs: As in
            :class:`~bge_integrations.haystack.m3.BGEM3TextEmbedder`; configured alike, it shares their model.

    Raises:
        ValueError: If a setting is invalid (e.g. top_k is not an int > 0), naming the value.

    Example:
        >>> ranker = BGEM3Ranker(model="BAAI/bge-m3", top_k=1)
        >>> docs = [Document(content="Paris is in France."), Document(content="Pandas live in China.")]
        >>> best = ranker.run(query="Where do pandas live?", documents=docs)["documents"][0]  # doctest: +SKIP
        >>> best.content, sorted(best.meta)  # doctest: +SKIP
        ('Pandas live in China.', ['colbert_score', 'dense_score', 'sparse_score'])

    """

    progress_bar: ClassVar[bool] = False  # type: ignore[misc]
    prefix: ClassVar[str] = ""  # type: ignore[misc]
    suffix: ClassVar[str] = ""  # type: ignore[misc]

    def __init__(
        self,
        *,
        model: str = DEFAULT_M3,
        device: str | ComponentDevice | None = None,
        top_k: int = 10,
        score_threshold: float | None = None,
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        batch_size: int = 32,
        use_fp16: bool | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        top_k = plain(top_k)
        check_positive_int(top_k, name="top_k")
        self.top_k = top_k
        self.score_threshold = check_optional_float(plain(score_threshold), name="score_threshold")
        self.weights = list(check_weights(serializable(weights)))
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self.batch_size = plain(batch_size)
        self.use_fp16 = use_fp16
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self._store(model=model, device=device, token=token)
        self._reranker_slot: CoreSlot[BGEM3Reranker] = CoreSlot()
        _ = self.reranker  # built now, so bad settings fail here, naming the value

    @property
    def reranker(self) -> BGEM3Reranker:
        """The core bge-m3 reranker doing the work, built from the current settings (shares the model)."""
        settings = self._core_settings()
        settings["weights"] = check_weights(serializable(self.weights))
        return self._reranker_slot.get(settings, BGEM3Reranker)

    @property
    def embedder(self) -> BGEM3Embedder:
        """The reranker's bge-m3 embedder."""
        return self.reranker.embedder

    def warm_up(self) -> None:
        """Load the encoder and both heads unless they are in memory already."""
        self.reranker.warm_up()

    @component.output_types(documents=list[Document])
    def run(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Score every document against query; inputs are not modified.

        Args:
            query: The query.
            documents: Documents to rank (duplicates are kept and scored alike).
            top_k: Overrides the init ``top_k`` for this run.
            score_threshold: Overrides the init ``score_threshold`` for this run.

        Returns:
            ``{"documents": [...]}``: copies with ``score`` and the component scores in ``meta``,
            best first (ties keep input order).

        Raises:
            TypeError: If query is not a string or documents is not a list of Documents.
            ValueError: If top_k is not an int > 0 or score_threshold is not a number.

        """
        query, top_k, threshold, texts = self._prepare(query, documents, top_k, score_threshold)
        return {"documents": _scored(documents, self.reranker.rank(query, texts, top_k, threshold))}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        *,
        query: str,
        documents: list[Document],
        top_k: int | None = None,
        score_threshold: float | None = None,
    ) -> dict[str, list[Document]]:
        """Async :meth:`run`: scores in a worker thread."""
        query, top_k, threshold, texts = self._prepare(query, documents, top_k, score_threshold)
        return {"documents": _scored(documents, await self.reranker.arank(query, texts, top_k, threshold))}

    def _prepare(
        self, query: Any, documents: Any, top_k: int | None, score_threshold: float | None
    ) -> tuple[Any, int, float | None, list[str]]:
        checked = check_documents(documents, "BGEM3Ranker", "Pass Documents, e.g. a retriever's output.")
        top_k = plain(self.top_k if top_k is None else top_k)
        check_positive_int(top_k, name="top_k")
        threshold = check_optional_float(
            plain(self.score_threshold if score_threshold is None else score_threshold), name="score_threshold"
        )
        fields = check_fields(self.meta_fields_to_embed, self.embedding_separator)
        return query, top_k, threshold, document_texts(checked, fields, self.embedding_separator)


def _scored(documents: list[Document], ranked: list[M3RankedText]) -> list[Document]:
    scored = []
    for item in ranked:
        doc = copy_document(documents[item.index], score=item.score)
        doc.meta.update({SCORE_META_KEYS[name]: value for name, value in item.components().items()})
        scored.append(doc)
    return scored


__all__ = ["SCORE_META_KEYS", "BGEM3Ranker"]
