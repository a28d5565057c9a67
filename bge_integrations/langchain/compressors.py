"""BGERerank: a LangChain document compressor that reranks with a BGE reranker (cross-encoder or LLM)."""

from __future__ import annotations

from collections.abc import Sequence
from copy import Error as CopyError
from copy import deepcopy
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field
from typing_extensions import override

from bge_integrations.core.reranker import BGEReranker
from bge_integrations.core.types import RankedText
from bge_integrations.core.validation import check_items
from bge_integrations.langchain._settings import RerankerSettings
from bge_integrations.langchain.retrievers import BGERerankRetriever, with_k

_COPY_ERRORS = (TypeError, ValueError, AttributeError, RuntimeError, CopyError)
"""What ``deepcopy`` raises for an object it cannot copy (pickling refused, recursion too deep)."""

if TYPE_CHECKING:
    from langchain_core.retrievers import RetrieverLike
    from langchain_core.vectorstores import VectorStore


class BGERerank(RerankerSettings, BaseDocumentCompressor):
    """Reranks documents with a BGE reranker and keeps the best ``top_n``, scores included.

    Returns copies of the documents, best first, each with its score in
    ``metadata["relevance_score"]`` (as LangChain's Cohere reranker does) and every other field
    and metadata key kept (deep-copied; a value that cannot be copied, such as a lock, is shared);
    the input documents are never changed. Duplicates are all kept and scored alike; an empty
    ``page_content`` is scored as the empty text. Long passages are read as
    overlapping windows (``windows``). ``as_retriever()`` wraps a retriever or vector store in
    a :class:`BGERerankRetriever`.

    BGE's LLM rerankers (bge-reranker-v2-gemma, v2-minicpm-layerwise, v2.5-gemma2-lightweight)
    rerank too, tuned by ``prompt``, ``cutoff_layers``, ``compress_ratio`` and ``compress_layers``
    (FlagEmbedding's names; a setting the model's family does not read is a ValueError at first
    use). With several ``cutoff_layers``, the deepest layer's score is ``relevance_score`` and
    ``metadata["layer_scores"]`` holds every layer's (``{layer: score}``, one forward pass).

    Example:
        >>> from langchain_core.documents import Document
        >>> from bge_integrations.langchain import BGERerank
        >>> rerank = BGERerank(model_name="BAAI/bge-reranker-base", top_n=1, device="cpu")
        >>> docs = [Document("Paris is in France."), Document("Pandas eat bamboo.")]
        >>> best = rerank.compress_documents(docs, "what do pandas eat?")  # doctest: +SKIP
        >>> best[0].page_content, round(best[0].metadata["relevance_score"], 2)  # doctest: +SKIP
        ('Pandas eat bamboo.', 0.99)
        >>> layerwise = BGERerank(model_name="BAAI/bge-reranker-v2-minicpm-layerwise", cutoff_layers=[28, 40])
        >>> layerwise.compress_documents(docs, "what do pandas eat?")[0].metadata  # doctest: +SKIP
        {'relevance_score': 0.99..., 'layer_scores': {28: 0.98..., 40: 0.99...}}

    """

    top_n: int | None = Field(default=3, gt=0)
    """How many documents to return, best first; None returns all."""
    score_threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Drop documents scoring below it (on the ``normalize`` scale); None keeps all."""

    @override
    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank documents for query: copies of the best ``top_n``, best first, with scores.

        Args:
            documents: Documents to rerank (left unchanged).
            query: The query.
            callbacks: Accepted for the interface; scoring reports no events.

        Returns:
            Copies of the kept documents with ``metadata["relevance_score"]`` set (and
            ``metadata["layer_scores"]`` with several ``cutoff_layers``).

        """
        texts = _texts(documents)
        client = self.client
        rank = client.rank_layers if isinstance(client, BGEReranker) and self._several_layers() else client.rank
        return _scored(documents, rank(query, texts, self.top_n, self.score_threshold))

    @override
    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: scores in a worker thread, never blocks the loop."""
        texts = _texts(documents)
        client = self.client
        arank = client.arank_layers if isinstance(client, BGEReranker) and self._several_layers() else client.arank
        return _scored(documents, await arank(query, texts, self.top_n, self.score_threshold))

    def _several_layers(self) -> bool:
        client = self.client
        return isinstance(client, BGEReranker) and len(client.cutoff_layers or ()) > 1

    def as_retriever(self, base_retriever: RetrieverLike | VectorStore, *, k: int | None = None) -> BGERerankRetriever:
        """A retriever that fetches candidates from base_retriever and reranks them with self.

        Args:
            base_retriever: Any retriever (or runnable returning documents), or a vector store.
            k: Candidates to fetch, set on a copy of base_retriever (a vector store, its
                retriever, or any retriever with a ``k`` field). None: as base_retriever is.

        Raises:
            ValueError: If k is given and cannot be set on base_retriever.

        """
        return BGERerankRetriever(base_retriever=with_k(base_retriever, k), reranker=self)


def _texts(documents: Any) -> list[str]:
    checked = check_items(documents, Document, name="documents", sequence="a sequence of Documents", item="a Document")
    return [doc.page_content for doc in checked]


def _scored(documents: Sequence[Document], ranked: list[RankedText]) -> list[Document]:
    return [_with_score(documents[item.index], item.score, item.layer_scores) for item in ranked]


def _with_score(doc: Document, score: float, layer_scores: dict[int, float] | None = None) -> Document:
    metadata: dict[str, Any] = {**_copied(doc.metadata), "relevance_score": score}
    if layer_scores is not None:
        metadata["layer_scores"] = layer_scores
    return doc.model_copy(update={"metadata": metadata})


def _copied(metadata: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of metadata, as LangChain's rerankers make, that never fails.

    A value that cannot be copied (a lock, an open file, a client) is shared with the input
    document instead of failing the whole call.
    """
    try:
        return deepcopy(metadata)
    except _COPY_ERRORS:
        return {key: _copied_value(value) for key, value in metadata.items()}


def _copied_value(value: Any) -> Any:
    try:
        return deepcopy(value)
    except _COPY_ERRORS:
        return value


__all__ = ["BGERerank"]
