"""bge-m3 embedders: dense + sparse, from one forward pass, for sparse and hybrid retrieval.

* :class:`BGEM3DocumentEmbedder` fills each Document's ``embedding`` and ``sparse_embedding``
  from one forward pass; :class:`BGEM3SparseDocumentEmbedder` only ``sparse_embedding``.
* :class:`BGEM3TextEmbedder` gives a query's ``embedding`` and ``sparse_embedding`` from one pass
  (a ``QdrantHybridRetriever``'s two inputs); :class:`BGEM3SparseTextEmbedder` only
  ``sparse_embedding`` (a ``QdrantSparseEmbeddingRetriever``'s), as fastembed-haystack's
  ``FastembedSparseTextEmbedder`` names it.

All wrap :class:`~bge_integrations.core.m3_embedder.BGEM3Embedder`; components configured alike
share one model, also with ``BGETextEmbedder(model="BAAI/bge-m3")`` and
:class:`~bge_integrations.haystack.m3_rankers.BGEM3Ranker` (bge-m3's all-in-one ranker).
Sparse embeddings are Haystack ``SparseEmbedding`` objects: token ids of the model's vocabulary
and their lexical weights, in the core's order (first weighted first), all weights > 0.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar, Literal

from haystack import Document, component
from haystack.dataclasses import SparseEmbedding
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.backends import Backend
from bge_integrations.core.configs import EMBEDDER_SETTINGS
from bge_integrations.core.m3_embedder import DEFAULT_M3, BGEM3Embedder
from bge_integrations.core.m3_types import M3Embeddings, check_outputs
from bge_integrations.core.m3_types import SparseEmbedding as CoreSparse
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.validation import check_text
from bge_integrations.core.vector_output import Precision
from bge_integrations.haystack._common import (
    check_documents,
    check_fields,
    check_model,
    check_token,
    component_device,
    copy_document,
    default_token,
    document_texts,
    plain,
    serializable,
)
from bge_integrations.haystack._component import CoreComponent

DocumentOutput = Literal["dense", "sparse"]
"""What :class:`BGEM3DocumentEmbedder` fills: ``"dense"`` (``embedding``), ``"sparse"`` (``sparse_embedding``)."""


def to_haystack_sparse(sparse: CoreSparse) -> SparseEmbedding:
    """The core's lexical weights as a Haystack ``SparseEmbedding`` (same ids, same order, same values)."""
    return SparseEmbedding(indices=list(sparse.indices), values=list(sparse.values))


def check_document_outputs(outputs: Any) -> list[DocumentOutput]:
    """Return outputs as a list of ``"dense"``/``"sparse"`` (None: both) after checking it.

    Raises:
        ValueError: If outputs is empty, names something else, or asks for ``"colbert"`` (a
            Document has no field for token vectors: rank with
            :class:`~bge_integrations.haystack.m3_rankers.BGEM3Ranker` instead).

    """
    if outputs is None:
        return ["dense", "sparse"]
    chosen = check_outputs(outputs)  # names an unknown output or an empty choice
    if "colbert" in chosen:
        msg = (
            f"outputs must be 'dense' and/or 'sparse', got {outputs!r}: a Document has no field for "
            "ColBERT vectors (BGEM3Ranker scores with them)"
        )
        raise ValueError(msg)
    return [output for output in ("dense", "sparse") if output in chosen]


class _M3Base(CoreComponent):
    """The core bge-m3 embedder behind the components, built from their current settings."""

    SETTINGS = EMBEDDER_SETTINGS
    # The core runs bge-m3 in torch only, and truncate_dim/precision would shape only the dense
    # vectors: fixed here, not settings.
    backend: ClassVar[Backend] = "torch"
    backend_precision: ClassVar[None] = None
    backend_dir: ClassVar[None] = None
    truncate_dim: ClassVar[None] = None
    precision: ClassVar[Precision] = "float32"
    _instruction: ClassVar[str] = "document_instruction"
    """The core setting that ``prefix`` is: documents' instruction here, the query instruction for text embedders."""
    _default_prefix: ClassVar[str | None] = ""
    """The core value for ``prefix=""``: none for documents, the model's own (none for bge-m3) for queries."""

    progress_bar: bool
    max_batch_tokens: int | None
    cache_dir: str | None
    local_files_only: bool
    prefix: str
    suffix: str
    _slot: CoreSlot[BGEM3Embedder]

    def _store(self, *, model: str | Path, device: str | ComponentDevice | None, token: Secret | None) -> None:
        self.model = check_model(model)
        self.device = component_device(device)
        self.token = check_token(token)
        self._slot = CoreSlot()

    @property
    def embedder(self) -> BGEM3Embedder:
        """The core bge-m3 embedder doing the work, built from the current settings (shares the model)."""
        return self._slot.get(self._core_settings(), BGEM3Embedder)

    def _core(self) -> BGEM3Embedder:
        return self.embedder

    def warm_up(self) -> None:
        """Load the encoder and bge-m3's heads unless they are in memory already (cheap to call on every run)."""
        self.embedder.warm_up()  # the encoder and the heads, so that the first run loads nothing

    async def warm_up_async(self) -> None:
        """Async :meth:`warm_up` (used by ``Pipeline.run_async``): loads in a worker thread."""
        await asyncio.to_thread(self.warm_up)

    def _core_settings(self) -> dict[str, Any]:
        settings = CoreComponent._core_settings(self)
        check_text(self.suffix, name="suffix")  # here too, so that a bad one fails in __init__
        settings[self._instruction] = check_text(self.prefix, name="prefix") or self._default_prefix
        return settings


class _M3Text(_M3Base):
    _instruction = "query_instruction"
    _default_prefix = None  # the model's own: none for bge-m3

    def _text(self, text: Any) -> str:
        if not isinstance(text, str):
            name = type(self).__name__
            msg = (
                f"{name} expects a string as text, got {type(text).__name__}: {text!r:.80}. "
                "To embed Documents, use BGEM3DocumentEmbedder."
            )
            raise TypeError(msg)
        return text + check_text(self.suffix, name="suffix")


@component
class BGEM3TextEmbedder(_M3Text):
    """Embeds a query into bge-m3's dense vector and sparse (lexical) weights, from one forward pass.

    Connect ``embedding`` to a retriever's ``query_embedding`` and ``sparse_embedding`` to its
    ``query_sparse_embedding`` (``QdrantHybridRetriever`` takes both).

    Args:
        model: Hub id or local path of a bge-m3 checkpoint (with ``sparse_linear.pt``).
        device: ``"cpu"``, ``"cuda:1"``... or a ``ComponentDevice``. None: CUDA, then MPS, then CPU,
            chosen when the model loads.
        batch_size: Texts per forward pass.
        progress_bar: Show a progress bar while embedding.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        max_length: Tokens read per text. None: the model's (8192 for bge-m3).
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: Run code shipped with the checkpoint (a saved pipeline cannot switch it on).
        token: Hugging Face token, a ``Secret``; default: ``HF_API_TOKEN`` or ``HF_TOKEN``, saved by name.
        max_batch_tokens: Padded tokens per forward pass at most; None: 2,048 on the CPU (measured), else none.
        cache_dir: Folder of a persistent embedding cache; None: no cache.
        prefix: The query instruction (bge-m3 takes none: leave it ``""``).
        suffix: Appended to the query.
        local_files_only: Never reach the hub.
        model_kwargs, tokenizer_kwargs, config_kwargs: As in :class:`~bge_integrations.haystack.BGETextEmbedder`.

    Example:
        >>> embedder = BGEM3TextEmbedder(model="BAAI/bge-m3", device="cpu")
        >>> out = embedder.run(text="what is BGE M3?")  # doctest: +SKIP
        >>> len(out["embedding"]), out["sparse_embedding"].indices[:3]  # doctest: +SKIP
        (1024, [2367, 83, 335])

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_M3,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = False,
        use_fp16: bool | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self._store(model=model, device=device, token=token)
        _ = self.embedder  # built now, so bad settings fail here, naming the value

    @component.output_types(embedding=list[float], sparse_embedding=SparseEmbedding)
    def run(self, text: str) -> dict[str, Any]:
        """Embed one query.

        Returns:
            ``{"embedding": [...], "sparse_embedding": SparseEmbedding(...)}``.

        Raises:
            TypeError: If text is not a string (use BGEM3DocumentEmbedder for Documents).

        """
        return _query_outputs(self.embedder.encode_queries([self._text(text)], outputs=("dense", "sparse")))

    @component.output_types(embedding=list[float], sparse_embedding=SparseEmbedding)
    async def run_async(self, text: str) -> dict[str, Any]:
        """Async :meth:`run`: off the event loop; concurrent runs share model batches."""
        return _query_outputs(await self.embedder.aencode_queries([self._text(text)], outputs=("dense", "sparse")))


@component
class BGEM3SparseTextEmbedder(_M3Text):
    """Embeds a query into bge-m3's sparse (lexical) weights, for a sparse or hybrid retriever.

    The output is named ``sparse_embedding`` as fastembed-haystack's ``FastembedSparseTextEmbedder``
    names it: connect it to ``QdrantSparseEmbeddingRetriever.query_sparse_embedding`` (or a
    hybrid retriever's, next to a ``BGETextEmbedder(model="BAAI/bge-m3")``, which shares the model).

    Args:
        model, device, batch_size, progress_bar, use_fp16, max_length, revision, trust_remote_code,
            token, max_batch_tokens, cache_dir, prefix, suffix, local_files_only, model_kwargs,
            tokenizer_kwargs, config_kwargs: As in :class:`BGEM3TextEmbedder`.

    Example:
        >>> embedder = BGEM3SparseTextEmbedder(model="BAAI/bge-m3", device="cpu")
        >>> embedder.run(text="what is BGE M3?")["sparse_embedding"]  # doctest: +SKIP
        SparseEmbedding(indices=[2367, 83, 335, ...], values=[0.19..., 0.08..., ...])

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_M3,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = False,
        use_fp16: bool | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self._store(model=model, device=device, token=token)
        _ = self.embedder  # built now, so bad settings fail here, naming the value

    @component.output_types(sparse_embedding=SparseEmbedding)
    def run(self, text: str) -> dict[str, SparseEmbedding]:
        """Embed one query.

        Returns:
            ``{"sparse_embedding": SparseEmbedding(indices=[...], values=[...])}``.

        Raises:
            TypeError: If text is not a string (use BGEM3SparseDocumentEmbedder for Documents).

        """
        return {"sparse_embedding": to_haystack_sparse(self.embedder.embed_sparse_query(self._text(text)))}

    @component.output_types(sparse_embedding=SparseEmbedding)
    async def run_async(self, text: str) -> dict[str, SparseEmbedding]:
        """Async :meth:`run`: off the event loop; concurrent runs share model batches."""
        return {"sparse_embedding": to_haystack_sparse(await self.embedder.aembed_sparse_query(self._text(text)))}


class _M3Documents(_M3Base):
    meta_fields_to_embed: list[str]
    embedding_separator: str
    outputs: list[DocumentOutput] | None

    def _texts(self, documents: Any) -> list[str]:
        name = type(self).__name__
        checked = check_documents(documents, name, "To embed a string, use BGEM3TextEmbedder.")
        fields = check_fields(self.meta_fields_to_embed, self.embedding_separator)  # may have been set since __init__
        texts = document_texts(checked, fields, self.embedding_separator)
        suffix = check_text(self.suffix, name="suffix")
        return [text + suffix for text in texts] if suffix else texts

    def _filled(self, documents: list[Document], out: M3Embeddings) -> dict[str, list[Document]]:
        changes: list[dict[str, Any]] = [{} for _ in documents]
        if out.dense is not None:
            for change, vector in zip(changes, serializable(out.dense), strict=True):
                change["embedding"] = vector
        if out.sparse is not None:
            for change, sparse in zip(changes, out.sparse, strict=True):
                change["sparse_embedding"] = to_haystack_sparse(sparse)
        return {"documents": [copy_document(doc, **change) for doc, change in zip(documents, changes, strict=True)]}

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embed documents in one forward pass per batch; the inputs are not modified.

        Returns:
            ``{"documents": [...]}``: one copy per input, in input order, with the asked fields set
            (a field not asked for keeps the input's value).

        Raises:
            TypeError: If documents is not a list of Documents (use a text embedder for a string).

        """
        texts = self._texts(documents)
        return self._filled(documents, self.embedder.encode_documents(texts, outputs=self._outputs()))

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Async :meth:`run`: off the event loop; concurrent runs share model batches."""
        texts = self._texts(documents)
        return self._filled(documents, await self.embedder.aencode_documents(texts, outputs=self._outputs()))

    def _outputs(self) -> list[DocumentOutput]:
        return check_document_outputs(self.outputs)


@component
class BGEM3DocumentEmbedder(_M3Documents):
    """Fills each Document's ``embedding`` and ``sparse_embedding`` with bge-m3, from one forward pass.

    Returns copies, in input order. As :class:`~bge_integrations.haystack.BGEDocumentEmbedder`, a
    document without content is embedded as the empty text (with its ``meta_fields_to_embed``),
    and meta values of any type are read with ``str()``. Write the documents to a store that keeps
    both (``QdrantDocumentStore(use_sparse_embeddings=True)``) for hybrid retrieval.

    Args:
        model, device, batch_size, use_fp16, max_length, revision, trust_remote_code, token,
            max_batch_tokens, cache_dir, local_files_only, model_kwargs, tokenizer_kwargs,
            config_kwargs: As in :class:`BGEM3TextEmbedder`; keep the model settings equal to
            the text embedder's.
        progress_bar: Show a progress bar while embedding.
        meta_fields_to_embed: Meta fields read before the content (those set on a document).
        embedding_separator: Joins those meta values and the content.
        prefix: Put before each document's text (bge-m3 takes none: leave it ``""``).
        suffix: Appended to each document's text.
        outputs: What to fill: ``["dense", "sparse"]`` (None, the default), ``["dense"]``
            (``embedding`` only) or ``["sparse"]`` (``sparse_embedding`` only).

    Example:
        >>> embedder = BGEM3DocumentEmbedder(model="BAAI/bge-m3", meta_fields_to_embed=["title"])
        >>> docs = [Document(content="Pandas eat bamboo.", meta={"title": "Pandas"})]
        >>> doc = embedder.run(documents=docs)["documents"][0]  # doctest: +SKIP
        >>> len(doc.embedding), len(doc.sparse_embedding.indices)  # doctest: +SKIP
        (1024, 7)

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_M3,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = True,
        use_fp16: bool | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        outputs: list[DocumentOutput] | None = None,
    ) -> None:
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.outputs = None if outputs is None else check_document_outputs(outputs)
        self._store(model=model, device=device, token=token)
        _ = self.embedder  # built now, so bad settings fail here, naming the value


@component
class BGEM3SparseDocumentEmbedder(_M3Documents):
    """Fills each Document's ``sparse_embedding`` with bge-m3's lexical weights (``embedding`` is kept).

    :class:`BGEM3DocumentEmbedder` with ``outputs=["sparse"]``, named as fastembed-haystack's
    ``FastembedSparseDocumentEmbedder``.

    Args:
        model, device, batch_size, progress_bar, use_fp16, meta_fields_to_embed,
            embedding_separator, max_length, revision, trust_remote_code, token,
            max_batch_tokens, cache_dir, prefix, suffix, local_files_only, model_kwargs,
            tokenizer_kwargs, config_kwargs: As in :class:`BGEM3DocumentEmbedder`.

    Example:
        >>> embedder = BGEM3SparseDocumentEmbedder(model="BAAI/bge-m3")
        >>> docs = embedder.run(documents=[Document(content="Pandas eat bamboo.")])["documents"]  # doctest: +SKIP
        >>> docs[0].sparse_embedding.indices[:3]  # doctest: +SKIP
        [123, 6, 75]

    """

    outputs = None  # not a setting here: always sparse (see _outputs)

    def __init__(
        self,
        *,
        model: str = DEFAULT_M3,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = True,
        use_fp16: bool | None = None,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        local_files_only: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.local_files_only = local_files_only
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self._store(model=model, device=device, token=token)
        _ = self.embedder  # built now, so bad settings fail here, naming the value

    def _outputs(self) -> list[DocumentOutput]:
        return ["sparse"]


def _query_outputs(out: M3Embeddings) -> dict[str, Any]:
    if out.dense is None or out.sparse is None:
        msg = "bge-m3 query outputs missing"
        raise RuntimeError(msg)
    return {"embedding": serializable(out.dense[0]), "sparse_embedding": to_haystack_sparse(out.sparse[0])}


__all__ = [
    "BGEM3DocumentEmbedder",
    "BGEM3SparseDocumentEmbedder",
    "BGEM3SparseTextEmbedder",
    "BGEM3TextEmbedder",
    "check_document_outputs",
    "to_haystack_sparse",
]
