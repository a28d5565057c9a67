"""bge-m3 for LangChain: the settings of every bge-m3 class, and BGEM3Compressor (dense + sparse + ColBERT reranking).

The sparse embeddings for vector stores live next to this module, each importing its store's
package only when used: ``m3_qdrant.py`` (:class:`BGEM3SparseEmbeddings`, langchain-qdrant) and
``m3_milvus.py`` (:class:`BGEM3MilvusSparseEmbeddings`, langchain-milvus). bge-m3's dense vectors
need no new class: ``BGEEmbeddings(model_name="BAAI/bge-m3")`` gives them, sharing the model with
every bge-m3 object configured alike (same ``model_name``, ``device``, ``use_fp16``,
``max_length``, ``revision``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self, override

from bge_integrations.core.m3_embedder import DEFAULT_M3, BGEM3Embedder
from bge_integrations.core.m3_reranker import BGEM3Reranker
from bge_integrations.core.m3_scoring import DEFAULT_WEIGHTS
from bge_integrations.core.m3_types import M3RankedText
from bge_integrations.core.slot import CoreSlot
from bge_integrations.langchain._settings import SettingsModel
from bge_integrations.langchain.compressors import _copied, _texts
from bge_integrations.langchain.retrievers import BGERerankRetriever, with_k

if TYPE_CHECKING:
    from langchain_core.retrievers import RetrieverLike
    from langchain_core.vectorstores import VectorStore

SCORE_KEYS = {"dense": "dense_score", "sparse": "sparse_score", "colbert": "colbert_score"}
"""Metadata key of each component score that :class:`BGEM3Compressor` sets next to ``relevance_score``."""


class M3Settings(SettingsModel):
    """The fields shared by the bge-m3 classes: which checkpoint, where and how it runs.

    Objects whose load settings match (``model_name``, ``device``, ``use_fp16``, ``max_length``,
    ``revision``, ``trust_remote_code``, ``cache_folder``) share one copy of the weights, with
    each other and with ``BGEEmbeddings``, ``BGEM3Embedder`` and ``BGEM3Reranker``.

    Example:
        >>> M3Settings(model_name="BAAI/bge-m3", device="cpu").embedder_settings()["device"]
        'cpu'

    """

    model_name: str = DEFAULT_M3
    """Hub id or local path of a bge-m3 checkpoint (with ``sparse_linear.pt`` and ``colbert_linear.pt``)."""
    max_length: int | None = Field(default=None, gt=0)
    """Tokens read per text; None: the model's (8192 for bge-m3)."""
    device: str | None = None
    """``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU."""
    use_fp16: bool | None = None
    """Half precision; None: on for CUDA, off elsewhere."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass."""
    max_batch_tokens: int | None = Field(default=None, gt=0)
    """Padded tokens (texts x longest text) per forward pass at most; None: 2,048 on the CPU (measured), else none."""
    cache_dir: str | None = None
    """Folder of a persistent embedding cache (texts encoded before are read back); None: none."""
    cache_folder: str | None = None
    """Where hub models are downloaded; None: the hub library's cache."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    trust_remote_code: bool = False
    """Run code shipped with the checkpoint."""
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """Hugging Face token for private or gated models (None: ``HF_TOKEN``); never dumped nor shown."""
    show_progress: bool = False
    """Show a progress bar while encoding."""

    def embedder_settings(self) -> dict[str, Any]:
        """The keyword arguments of the core :class:`BGEM3Embedder` these fields make."""
        return {
            "model_name": self.model_name,
            "max_length": self.max_length,
            "device": self.device,
            "use_fp16": self.use_fp16,
            "batch_size": self.batch_size,
            "max_batch_tokens": self.max_batch_tokens,
            "cache_dir": self.cache_dir,
            "cache_folder": self.cache_folder,
            "revision": self.revision,
            "trust_remote_code": self.trust_remote_code,
            "token": None if self.token is None else self.token.get_secret_value(),
            "show_progress_bar": self.show_progress,
        }


class M3EmbedderSettings(M3Settings):
    """:class:`M3Settings` whose ``client`` is the core :class:`BGEM3Embedder` (the sparse embeddings' base).

    Example:
        >>> M3EmbedderSettings(device="cpu").client.config.query_instruction
        ''

    """

    _slot: CoreSlot[BGEM3Embedder] = PrivateAttr(default_factory=CoreSlot)

    @model_validator(mode="after")
    def _check_m3_settings(self) -> Self:
        _ = self.client  # builds the core embedder, which checks the settings together
        return self

    @property
    def client(self) -> BGEM3Embedder:
        """The core :class:`BGEM3Embedder` with these settings (``config``, ``warm_up()``, ``lexical_tokens()``)."""
        return self._slot.get(self.embedder_settings(), BGEM3Embedder)


class BGEM3Compressor(M3Settings, BaseDocumentCompressor):
    """Reranks documents by bge-m3's combined dense + sparse + ColBERT score and keeps the best ``top_n``.

    Returns copies of the documents, best first, as :class:`BGERerank` does: the combined score
    ``(w0 * dense + w1 * sparse + w2 * colbert) / (w0 + w1 + w2)`` in
    ``metadata["relevance_score"]`` and each component in ``metadata["dense_score"]``,
    ``["sparse_score"]`` and ``["colbert_score"]``; every other field and metadata key is kept
    (deep-copied) and the input documents are never changed. Query and documents are each
    encoded once (all three outputs from one pass). Scores are not probabilities: compare them
    within a query. The model is shared with bge-m3 embeddings configured alike.

    Example:
        >>> from langchain_core.documents import Document
        >>> from bge_integrations.langchain import BGEM3Compressor
        >>> rerank = BGEM3Compressor(model_name="BAAI/bge-m3", top_n=1, device="cpu")
        >>> docs = [Document("Paris is in France."), Document("Pandas eat bamboo.")]
        >>> best = rerank.compress_documents(docs, "what do pandas eat?")  # doctest: +SKIP
        >>> best[0].page_content, sorted(best[0].metadata)  # doctest: +SKIP
        ('Pandas eat bamboo.', ['colbert_score', 'dense_score', 'relevance_score', 'sparse_score'])
        >>> rerank.weights
        (0.4, 0.2, 0.4)

    """

    weights: tuple[float, float, float] = DEFAULT_WEIGHTS
    """Weights of the (dense, sparse, colbert) scores in the combined score (the bge-m3 model card's)."""
    top_n: int | None = Field(default=3, gt=0)
    """How many documents to return, best first; None returns all."""
    score_threshold: float | None = Field(default=None, allow_inf_nan=False)
    """Drop documents whose combined score is below it; None keeps all."""

    _slot: CoreSlot[BGEM3Reranker] = PrivateAttr(default_factory=CoreSlot)

    @model_validator(mode="after")
    def _check_m3_settings(self) -> Self:
        _ = self.client  # builds the core reranker, which checks the weights and settings
        return self

    @property
    def client(self) -> BGEM3Reranker:
        """The core :class:`BGEM3Reranker` with these settings (``embedder``, ``warm_up()``, ``score_components()``)."""
        return self._slot.get({**self.embedder_settings(), "weights": self.weights}, BGEM3Reranker)

    @override
    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Rerank documents for query: copies of the best ``top_n``, best first, with their scores.

        Args:
            documents: Documents to rerank (left unchanged).
            query: The query.
            callbacks: Accepted for the interface; scoring reports no events.

        Returns:
            Copies of the kept documents with ``relevance_score`` and the three component scores in their metadata.

        """
        texts = _texts(documents)
        ranked = self.client.rank(query, texts, self.top_n, self.score_threshold)
        return _scored(documents, ranked)

    @override
    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`: the model runs in a worker thread, never blocking the loop."""
        texts = _texts(documents)
        ranked = await self.client.arank(query, texts, self.top_n, self.score_threshold)
        return _scored(documents, ranked)

    def as_retriever(self, base_retriever: RetrieverLike | VectorStore, *, k: int | None = None) -> BGERerankRetriever:
        """A retriever that fetches candidates from base_retriever and reranks them with self.

        Args:
            base_retriever: Any retriever (or runnable returning documents), or a vector store.
            k: Candidates to fetch, set on a copy of base_retriever (see ``BGERerank.as_retriever``).
                None: as base_retriever is.

        Raises:
            ValueError: If k is given and cannot be set on base_retriever.

        """
        return BGERerankRetriever(base_retriever=with_k(base_retriever, k), reranker=self)


def _scored(documents: Sequence[Document], ranked: list[M3RankedText]) -> list[Document]:
    return [_with_scores(documents[item.index], item) for item in ranked]


def _with_scores(doc: Document, item: M3RankedText) -> Document:
    scores = {SCORE_KEYS[name]: value for name, value in item.components().items()}
    metadata: dict[str, Any] = {**_copied(doc.metadata), "relevance_score": item.score, **scores}
    return doc.model_copy(update={"metadata": metadata})


__all__ = ["SCORE_KEYS", "BGEM3Compressor", "M3EmbedderSettings", "M3Settings"]
