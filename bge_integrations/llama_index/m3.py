"""bge-m3 in LlamaIndex: sparse (lexical) embeddings, Qdrant hybrid-search functions, a reranker.

* :class:`BGEM3SparseEmbedding`: a ``BaseSparseEmbedding`` (``{token id: weight}`` dicts) on
  :class:`~bge_integrations.BGEM3Embedder`;
* :func:`bge_m3_sparse_fns`: the ``sparse_doc_fn``/``sparse_query_fn`` pair that
  ``QdrantVectorStore(enable_hybrid=True, ...)`` takes (it takes no ``BaseSparseEmbedding``);
* :class:`BGEM3Rerank`: a node postprocessor on :class:`~bge_integrations.BGEM3Reranker`
  (weighted dense + sparse + ColBERT score).

Dense bge-m3 vectors come from :class:`~bge_integrations.llama_index.BGEEmbedding`: a
``BGEEmbedding("BAAI/bge-m3")`` and a ``BGEM3SparseEmbedding("BAAI/bge-m3")`` with the same
device and precision share one copy of the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator
from llama_index.core.callbacks import CallbackManager
from llama_index.core.instrumentation.events.embedding import SparseEmbeddingEndEvent, SparseEmbeddingStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import VectorStoreQueryResult

from bge_integrations.core.loading import check_serialized_remote_code
from bge_integrations.core.m3_embedder import DEFAULT_M3, BGEM3Embedder
from bge_integrations.core.m3_reranker import BGEM3Reranker
from bge_integrations.core.m3_scoring import DEFAULT_WEIGHTS, check_weights
from bge_integrations.core.m3_types import M3RankedText
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.validation import check_text, check_texts
from bge_integrations.llama_index._events import dispatcher, rerank_events
from bge_integrations.llama_index._remote_code import RemoteCodeFromDataRefused
from bge_integrations.llama_index.postprocessors import RETRIEVAL_SCORE_KEY, _texts

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_BATCH_SIZE = 32

M3_SCORE_KEYS: dict[str, str] = {"dense": "dense_score", "sparse": "sparse_score", "colbert": "colbert_score"}
"""Metadata key of each component score :class:`BGEM3Rerank` puts on the nodes it returns."""

BatchSparseEncoding = tuple[list[list[int]], list[list[float]]]
"""What a Qdrant ``sparse_doc_fn``/``sparse_query_fn`` returns: (indices per text, values per text)."""

_SPARSE_SETTINGS = {
    "model_name": "model_name",
    "query_instruction": "query_instruction",
    "text_instruction": "document_instruction",
    "embed_batch_size": "batch_size",
    "max_length": "max_length",
    "device": "device",
    "use_fp16": "use_fp16",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
    "max_batch_tokens": "max_batch_tokens",
    "cache_dir": "cache_dir",
}
"""Field name -> :class:`BGEM3Embedder` argument."""

_RERANK_SETTINGS = {
    "model": "model_name",
    "weights": "weights",
    "max_length": "max_length",
    "device": "device",
    "use_fp16": "use_fp16",
    "batch_size": "batch_size",
    "max_batch_tokens": "max_batch_tokens",
    "cache_dir": "cache_dir",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
}
"""Field name -> :class:`BGEM3Reranker` argument."""


def _settings(model: Any, table: dict[str, str]) -> dict[str, Any]:
    settings = {core: getattr(model, name) for name, core in table.items()}
    settings["token"] = None if model.token is None else model.token.get_secret_value()
    return settings


class BGEM3SparseEmbedding(RemoteCodeFromDataRefused, BaseSparseEmbedding):
    """bge-m3's lexical weights of queries and texts, as LlamaIndex sparse embeddings (``{token id: weight}``).

    The weights are exactly :meth:`BGEM3Embedder.embed_sparse_queries
    <bge_integrations.BGEM3Embedder.embed_sparse_queries>`/``embed_sparse_documents``'s: each
    token id of the model's vocabulary once, with its largest weight (all > 0), special tokens
    left out. ``similarity()`` is LlamaIndex's (cosine); bge-m3's own lexical score is the dot
    product (:func:`~bge_integrations.core.m3_scoring.lexical_score`, Qdrant's sparse score).
    For ``QdrantVectorStore(enable_hybrid=True)`` pass :func:`bge_m3_sparse_fns` of this object.

    Settings follow :class:`~bge_integrations.llama_index.BGEEmbedding`; the model loads on first
    use, shared with every bge-m3 object of the same load settings (a ``BGEEmbedding`` of the same
    checkpoint included). Copies and pickles carry settings only. Unknown keyword arguments are
    refused. Emits LlamaIndex's ``SparseEmbeddingStartEvent``/``SparseEmbeddingEndEvent``.

    Args:
        model_name: Hub id or local path of a bge-m3 checkpoint with ``sparse_linear.pt``.
        query_instruction: Prefix for queries. None: the model's (none for bge-m3); ``""``: none.
        text_instruction: Prefix for texts; bge-m3 uses none.
        batch_size, embed_batch_size: One setting under two names: texts per batch and per forward pass.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        max_length: Tokens read per text. None: the model's (8192 for bge-m3).
        revision: Hub revision.
        trust_remote_code: Run code shipped with the checkpoint (data cannot switch it on).
        token: Hugging Face token (None: ``HF_TOKEN``); kept out of ``model_dump`` and ``repr``.
        max_batch_tokens: Padded tokens per forward pass at most; None: 2,048 on the CPU (measured), else none.
        cache_dir: Folder of a persistent embedding cache; None: none.
        **kwargs: Other :class:`BaseSparseEmbedding` fields (``num_workers``).

    Raises:
        MissingHeadError: On first use, when the checkpoint has no ``sparse_linear.pt``.

    Example:
        >>> sparse = BGEM3SparseEmbedding("BAAI/bge-m3", device="cpu")
        >>> sparse.get_query_embedding("what is BGE M3?")  # doctest: +SKIP
        {4865: 0.08, 83: 0.09, 335: 0.07, ...}
        >>> sparse.embed_batch_size
        32

    """

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(default=DEFAULT_M3, description="Hub id or local path of a bge-m3 checkpoint.")
    embed_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, gt=0, le=2048, description="Texts per batch and per forward pass."
    )
    query_instruction: str | None = Field(default=None, description="Query prefix; None: the model's (none).")
    text_instruction: str = Field(default="", description="Prefix for texts (documents); bge-m3 uses none.")
    max_length: int | None = Field(default=None, gt=0, description="Tokens read per text; None: the model's.")
    device: str | None = Field(default=None, description="Device; None picks CUDA, then MPS, then CPU.")
    use_fp16: bool | None = Field(default=None, description="Half precision; None: on for CUDA only.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    token: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="Hugging Face token; never in model_dump or repr."
    )
    max_batch_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Padded tokens per forward pass at most; None: 2,048 on the CPU (measured), else none.",
    )
    cache_dir: str | None = Field(default=None, description="Folder of a persistent embedding cache; None: none.")

    _slot: CoreSlot[BGEM3Embedder] = PrivateAttr(default_factory=CoreSlot)
    _progress_slot: CoreSlot[BGEM3Embedder] = PrivateAttr(default_factory=CoreSlot)

    def __init__(
        self,
        model_name: str = DEFAULT_M3,
        *,
        batch_size: int | None = None,
        embed_batch_size: int | None = None,
        **data: Any,
    ) -> None:
        if batch_size is not None and embed_batch_size is not None and batch_size != embed_batch_size:
            msg = f"batch_size and embed_batch_size are one setting, got {batch_size!r} and {embed_batch_size!r}"
            raise ValueError(msg)
        if embed_batch_size is None:
            embed_batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **data)
        _ = self.core  # built now, so bad settings fail here, naming the value

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "BGEM3SparseEmbedding"

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """The settings (and ``class_name``) as a dict, as LlamaIndex components' ``to_dict``; no token."""
        return self.model_dump(**kwargs)

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> Self:
        """Rebuild from :meth:`to_dict`; the data cannot switch ``trust_remote_code`` on.

        Keyword arguments are code, not data: ``from_dict(data, trust_remote_code=True)`` is an
        explicit opt-in, as is :func:`~bge_integrations.core.loading.allow_remote_code`.

        Raises:
            ValueError: If data asks for ``trust_remote_code`` without such an opt-in.

        """
        data = {key: value for key, value in data.items() if key != "class_name"}
        check_serialized_remote_code(cls.class_name(), {k: v for k, v in data.items() if k not in kwargs})
        return cls(**{**data, **kwargs})

    @property
    def batch_size(self) -> int:
        """The constructor's other name for ``embed_batch_size``."""
        return self.embed_batch_size

    @property
    def core(self) -> BGEM3Embedder:
        """The :class:`BGEM3Embedder` doing the work, built from the current fields (no weights)."""
        return self._slot.get(_settings(self, _SPARSE_SETTINGS), BGEM3Embedder)

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        return self.core.embed_sparse_query(check_text(query, name="query")).as_dict()

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return (await self.core.aembed_sparse_query(check_text(query, name="query"))).as_dict()

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        return self.core.embed_sparse_documents([check_text(text)])[0].as_dict()

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        return (await self.core.aembed_sparse_documents([check_text(text)]))[0].as_dict()

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [sparse.as_dict() for sparse in self.core.embed_sparse_documents(texts)]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [sparse.as_dict() for sparse in await self.core.aembed_sparse_documents(texts)]

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[SparseEmbedding]:
        """Embed texts in one engine call (sorted by length, de-duplicated across the whole list).

        The events are LlamaIndex's, one start/end pair per ``embed_batch_size`` chunk. Texts
        are checked first, so an error names a text by its position in the whole list.
        """
        texts = check_texts(texts)
        core = self.core
        if show_progress:
            core = self._progress_slot.get(
                {**_settings(self, _SPARSE_SETTINGS), "show_progress_bar": True}, BGEM3Embedder
            )
        payload = self.to_payload()
        size = self.embed_batch_size
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        for _ in chunks:
            dispatcher.event(SparseEmbeddingStartEvent(model_dict=payload))
        embeddings = [sparse.as_dict() for sparse in core.embed_sparse_documents(texts)]
        for start, chunk in zip(range(0, len(texts), size), chunks, strict=True):
            dispatcher.event(SparseEmbeddingEndEvent(chunks=chunk, embeddings=embeddings[start : start + size]))
        return embeddings

    async def aget_text_embedding_batch(self, texts: list[str], show_progress: bool = False) -> list[SparseEmbedding]:
        """Async batch embedding (LlamaIndex's own loop: chunks run concurrently), texts checked first."""
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress=show_progress)


class _SparseEncoder:
    """One of the two functions :func:`bge_m3_sparse_fns` returns: texts to (indices, values) lists.

    A small class rather than a closure, so a store holding it pickles (it carries settings only).
    """

    def __init__(self, model: BGEM3SparseEmbedding | BGEM3Embedder, *, query: bool) -> None:
        self.model = model
        self.query = query

    def __call__(self, texts: list[str]) -> BatchSparseEncoding:
        texts = check_texts(texts)
        model = self.model
        weights: list[dict[int, float]]
        if isinstance(model, BGEM3SparseEmbedding):
            if self.query:
                weights = [model.get_query_embedding(text) for text in texts]
            else:
                weights = model.get_text_embedding_batch(texts)
        else:
            found = model.embed_sparse_queries(texts) if self.query else model.embed_sparse_documents(texts)
            weights = [sparse.as_dict() for sparse in found]
        return [list(w) for w in weights], [list(w.values()) for w in weights]

    def __repr__(self) -> str:
        role = "query" if self.query else "doc"
        return f"bge_m3_sparse_{role}_fn({self.model!r})"


def bge_m3_sparse_fns(
    model: BGEM3SparseEmbedding | BGEM3Embedder,
) -> tuple[Callable[[list[str]], BatchSparseEncoding], Callable[[list[str]], BatchSparseEncoding]]:
    """``(sparse_doc_fn, sparse_query_fn)`` for ``QdrantVectorStore(enable_hybrid=True, ...)``.

    Each takes a list of texts and returns ``(indices, values)``: one list of token ids and one
    list of their weights per text, bge-m3's lexical weights (documents without, queries with the
    query instruction, none for bge-m3). Qdrant scores sparse vectors by dot product, which is
    bge-m3's lexical matching score. The functions hold ``model`` (settings only, the weights live
    in the shared registry) and pickle. Qdrant calls them synchronously, also from
    ``aquery``/``async_add``.

    Args:
        model: A :class:`BGEM3SparseEmbedding` (its events are emitted) or a core
            :class:`~bge_integrations.BGEM3Embedder`.

    Raises:
        TypeError: If model is neither.

    Example:
        >>> doc_fn, query_fn = bge_m3_sparse_fns(BGEM3SparseEmbedding("BAAI/bge-m3", device="cpu"))
        >>> store = QdrantVectorStore(  # doctest: +SKIP
        ...     "docs", client=client, enable_hybrid=True, sparse_doc_fn=doc_fn, sparse_query_fn=query_fn
        ... )
        >>> query_fn(["what is BGE M3?"])  # doctest: +SKIP
        ([[4865, 83, 335, ...]], [[0.08, 0.09, 0.07, ...]])

    """
    if not isinstance(model, (BGEM3SparseEmbedding, BGEM3Embedder)):
        msg = f"model must be a BGEM3SparseEmbedding or a BGEM3Embedder, got {type(model).__name__}: {model!r:.80}"
        raise TypeError(msg)
    return _SparseEncoder(model, query=False), _SparseEncoder(model, query=True)


class BGEM3Rerank(RemoteCodeFromDataRefused, BaseNodePostprocessor):
    """Reranks nodes by bge-m3's combined dense + sparse + ColBERT score; returns copies, best first.

    A node's score is :class:`~bge_integrations.BGEM3Reranker`'s: ``(w0 * dense + w1 * sparse +
    w2 * colbert) / (w0 + w1 + w2)`` with ``weights=(w0, w1, w2)``. Query and nodes are each
    encoded once (no cross-encoder), so scores are not probabilities: compare them within a
    query. Text, copies, ``retrieval_score`` and events are as :class:`~bge_integrations.llama_index.BGERerank`'s:
    input nodes are never changed; each returned node is a shallow copy whose metadata also holds
    the three component scores under ``"dense_score"``, ``"sparse_score"`` and ``"colbert_score"``
    (:data:`M3_SCORE_KEYS`, excluded from LLM and embedding text) with ``keep_component_scores``.

    Args:
        model: Hub id or local path of a bge-m3 checkpoint with both heads.
        top_n: Nodes kept, best first; None keeps all.
        score_threshold: Drop nodes whose combined score is below it.
        weights: Weights of (dense, sparse, colbert); default ``(0.4, 0.2, 0.4)`` (bge-m3's model card).
        keep_retrieval_score: Put the incoming score in ``metadata["retrieval_score"]``.
        keep_component_scores: Put the dense, sparse and ColBERT scores in the metadata.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        batch_size: Texts per forward pass.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        max_length: Tokens read per query and per node. None: 8192 for bge-m3.
        max_batch_tokens: Padded tokens per forward pass at most; None: 2,048 on the CPU (measured), else none.
        cache_dir: Folder of a persistent embedding cache (nodes scored before are not encoded again).
        revision: Hub revision.
        trust_remote_code: Run code shipped with the checkpoint (data cannot switch it on).
        token: Hugging Face token (None: ``HF_TOKEN``); kept out of ``to_dict`` and ``repr``.
        callback_manager: LlamaIndex's legacy callback manager.

    Raises:
        MissingHeadError: On first use, when the checkpoint lacks ``sparse_linear.pt`` or ``colbert_linear.pt``.

    Example:
        >>> reranker = BGEM3Rerank(model="BAAI/bge-m3", top_n=3, device="cpu")
        >>> engine = index.as_query_engine(similarity_top_k=10, node_postprocessors=[reranker])  # doctest: +SKIP
        >>> engine.query("Where do pandas live?").source_nodes[0].node.metadata["sparse_score"]  # doctest: +SKIP
        0.21...
        >>> reranker.weights
        (0.4, 0.2, 0.4)

    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default=DEFAULT_M3, description="Hub id or local path of a bge-m3 checkpoint.")
    top_n: int | None = Field(default=2, gt=0, description="Nodes kept, best first; None keeps all.")
    score_threshold: float | None = Field(default=None, allow_inf_nan=False, description="Drop nodes scoring below it.")
    weights: tuple[float, float, float] = Field(
        default=DEFAULT_WEIGHTS, description="Weights of (dense, sparse, colbert) in the combined score."
    )
    keep_retrieval_score: bool = Field(default=True, description="Keep the incoming score in metadata.")
    keep_component_scores: bool = Field(default=True, description="Put the three component scores in metadata.")
    device: str | None = Field(default=None, description="Device; None picks CUDA, then MPS, then CPU.")
    batch_size: int = Field(default=32, gt=0, description="Texts per forward pass.")
    use_fp16: bool | None = Field(default=None, description="Half precision; None: on for CUDA only.")
    max_length: int | None = Field(default=None, gt=0, description="Tokens per text; None: the model's.")
    max_batch_tokens: int | None = Field(
        default=None,
        gt=0,
        description="Padded tokens per forward pass at most; None: 2,048 on the CPU (measured), else none.",
    )
    cache_dir: str | None = Field(default=None, description="Folder of a persistent embedding cache; None: none.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    token: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="Hugging Face token; never in to_dict or repr."
    )

    _slot: CoreSlot[BGEM3Reranker] = PrivateAttr(default_factory=CoreSlot)

    def __init__(self, model: str = DEFAULT_M3, **data: Any) -> None:
        """Take the model positionally too, as :class:`BGEM3SparseEmbedding` and the core reranker do."""
        super().__init__(**{"model": model, **data})

    @field_validator("model")
    @classmethod
    def _check_model(cls, model: str) -> str:
        if not model.strip():
            msg = f"model must be a hub id or a local path, got {model!r}"
            raise ValueError(msg)
        return model

    @field_validator("weights", mode="before")
    @classmethod
    def _check_weights(cls, weights: Any) -> tuple[float, float, float]:
        return check_weights(weights)

    def model_post_init(self, context: Any, /) -> None:
        """Build the core now, so bad settings fail at construction, naming the value."""
        if self.callback_manager is None:  # LlamaIndex code passes None for "no callbacks"
            self.callback_manager = CallbackManager([])
        _ = self.core

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "BGEM3Rerank"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> Self:
        """Rebuild from :meth:`to_dict` (or ``to_json``); the data cannot switch ``trust_remote_code`` on.

        Raises:
            ValueError: If data asks for ``trust_remote_code`` without an explicit opt-in.

        """
        check_serialized_remote_code(cls.class_name(), {k: v for k, v in data.items() if k not in kwargs})
        return super().from_dict(data, **kwargs)

    @property
    def core(self) -> BGEM3Reranker:
        """The :class:`BGEM3Reranker` doing the work, built from the current fields (no weights)."""
        return self._slot.get(_settings(self, _RERANK_SETTINGS), BGEM3Reranker)

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        bundle = _require_query(query_bundle)
        texts = _texts(nodes)
        with rerank_events(self.callback_manager, self.model, nodes, bundle, self._event_top_n(nodes)) as out:
            ranked = self.core.rank(bundle.query_str, texts, self.top_n, self.score_threshold)
            out.extend(self._results(nodes, ranked))
        return out

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        bundle = _require_query(query_bundle)
        texts = _texts(nodes)
        with rerank_events(self.callback_manager, self.model, nodes, bundle, self._event_top_n(nodes)) as out:
            ranked = await self.core.arank(bundle.query_str, texts, self.top_n, self.score_threshold)
            out.extend(self._results(nodes, ranked))
        return out

    def _event_top_n(self, nodes: list[NodeWithScore]) -> int:
        return len(nodes) if self.top_n is None else self.top_n

    def _results(self, nodes: list[NodeWithScore], ranked: list[M3RankedText]) -> list[NodeWithScore]:
        return [NodeWithScore(node=self._node_copy(nodes[item.index], item), score=item.score) for item in ranked]

    def _node_copy(self, scored: NodeWithScore, item: M3RankedText) -> BaseNode:
        node = scored.node
        added: dict[str, Any] = {}
        if self.keep_retrieval_score:
            added[RETRIEVAL_SCORE_KEY] = scored.score
        if self.keep_component_scores:
            added.update({M3_SCORE_KEYS[name]: value for name, value in item.components().items()})
        if not added:
            return node
        return node.model_copy(
            update={
                "metadata": {**node.metadata, **added},
                "excluded_llm_metadata_keys": _with_keys(node.excluded_llm_metadata_keys, added),
                "excluded_embed_metadata_keys": _with_keys(node.excluded_embed_metadata_keys, added),
            }
        )


def reciprocal_rank_fusion(
    dense_result: VectorStoreQueryResult,
    sparse_result: VectorStoreQueryResult,
    alpha: float = 0.5,
    top_k: int = 2,
) -> VectorStoreQueryResult:
    """Qdrant's reciprocal rank fusion, as a ``hybrid_fusion_fn`` for ``QdrantVectorStore``.

    LangChain's ``QdrantVectorStore`` (hybrid mode) and Haystack's ``QdrantHybridRetriever`` fuse
    the dense and the sparse hits in Qdrant with RRF: each hit scores ``1 / (rank + 2)`` per list
    (rank from 0, Qdrant's constant 2), summed, ties in first-seen order (dense hits first).
    LlamaIndex's store fuses in Python, by default with relative score fusion; passing this
    function gives the same hits as those two for the same inputs. ``alpha`` is ignored (RRF
    weighs both lists alike), as in Qdrant.

    Example:
        >>> from llama_index.core.schema import TextNode
        >>> a, b, c = (TextNode(id_=i, text=i) for i in "abc")
        >>> dense = VectorStoreQueryResult(nodes=[a, b], similarities=[0.9, 0.5], ids=["a", "b"])
        >>> sparse = VectorStoreQueryResult(nodes=[c, b], similarities=[3.0, 1.0], ids=["c", "b"])
        >>> fused = reciprocal_rank_fusion(dense, sparse, top_k=2)
        >>> fused.ids, [round(s, 4) for s in fused.similarities]
        (['b', 'a'], [0.6667, 0.5])

    """
    del alpha
    scores: dict[str, float] = {}
    nodes: dict[str, BaseNode] = {}
    for result in (dense_result, sparse_result):
        pairs = list(zip(result.similarities or [], result.nodes or [], strict=False))
        pairs.sort(key=lambda pair: pair[0], reverse=True)  # stable: the store's own order among equals
        for rank, (_, node) in enumerate(pairs):
            nodes.setdefault(node.node_id, node)
            scores[node.node_id] = scores.get(node.node_id, 0.0) + 1.0 / (rank + 2)
    fused = sorted(scores.items(), key=lambda item: item[1], reverse=True)[:top_k]
    return VectorStoreQueryResult(
        nodes=[nodes[node_id] for node_id, _ in fused],
        similarities=[score for _, score in fused],
        ids=[node_id for node_id, _ in fused],
    )


def _require_query(bundle: QueryBundle | None) -> QueryBundle:
    if bundle is None:
        msg = "BGEM3Rerank needs a query: pass query_str= or query_bundle= to postprocess_nodes, got query_bundle=None"
        raise ValueError(msg)
    check_text(bundle.query_str, name="query")  # before LlamaIndex's events validate it
    return bundle


def _with_keys(keys: list[str], added: dict[str, Any]) -> list[str]:
    """keys, then each added key not already in them (so reranking twice adds none twice)."""
    return [*keys, *(key for key in added if key not in keys)]


__all__ = ["M3_SCORE_KEYS", "BGEM3Rerank", "BGEM3SparseEmbedding", "bge_m3_sparse_fns", "reciprocal_rank_fusion"]
