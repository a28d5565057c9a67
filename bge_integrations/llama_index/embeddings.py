"""BGEEmbedding: a LlamaIndex embed model on :class:`~bge_integrations.BGEEmbedder`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr, SecretStr
from llama_index.core.schema import BaseNode

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.configs import EMBEDDER_SETTINGS, passed_through
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import check_serialized_remote_code
from bge_integrations.core.presets import DEFAULT_EMBEDDER, Pooling
from bge_integrations.core.remote import RemoteEmbedder, remote_arguments
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.validation import check_items, check_text, check_texts
from bge_integrations.llama_index._events import batch_embedding_events, dispatcher
from bge_integrations.llama_index._query_cache import (
    QUERY_CACHE_COLLECTION,
    acached_query_embedding,
    cached_query_embedding,
)
from bge_integrations.llama_index._remote_code import RemoteCodeFromDataRefused

if TYPE_CHECKING:
    from typing_extensions import Self

DEFAULT_BATCH_SIZE = 32
_SETTINGS = passed_through(EMBEDDER_SETTINGS, "llama_index")
"""Field name -> :class:`BGEEmbedder` argument, for the fields given to the core as they are."""


class BGEEmbedding(RemoteCodeFromDataRefused, BaseEmbedding):
    """Embeds queries and nodes with a BGE model, the instruction going on queries only.

    Parameters follow LlamaIndex's ``HuggingFaceEmbedding``; each is a public field, so
    ``IngestionPipeline``'s cache (which hashes ``to_dict()``) sees every setting that changes
    vectors. The model loads on first use and is shared by every object with the same load
    settings (copies and unpickled objects included). Unknown keyword arguments are refused.

    With ``embeddings_cache`` set, texts are cached as LlamaIndex does (raw text as key, in the
    ``"embeddings"`` collection) and queries in the ``"bge_query_embeddings"`` collection, so a
    query never gets a text's vector. Keys carry no model name: use one store per model.

    Args:
        model_name: Hub id or local path of a BGE embedding model.
        query_instruction: Prefix for queries. None: the model's official one; ``""``: none.
        text_instruction: Prefix for texts (documents, nodes); BGE uses none.
        batch_size, embed_batch_size: One setting under two names: texts per LlamaIndex batch and
            per forward pass. Default 32 (LlamaIndex's default is 10).
        device: ``"cuda"``, ``"mps"``, ``"cpu"``... None picks CUDA, then MPS, then CPU.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        pooling: ``"cls"``, ``"mean"`` or ``"lasttoken"``. None: the checkpoint's (CLS for BGE).
        normalize: L2-normalise vectors. None: True for BGE.
        max_length: Tokens read per text. None: the model's (512 for BGE v1.5).
        revision: Hub revision.
        trust_remote_code: Run code shipped with the checkpoint. Data cannot switch it on:
            ``from_dict``/``from_json`` (see :meth:`from_dict`), ``model_validate``,
            ``model_validate_json`` and ``model_construct`` refuse it outside
            :func:`~bge_integrations.core.loading.allow_remote_code`.
        token: Hugging Face token for private or gated models (None: ``HF_TOKEN``); kept out of
            ``to_dict``, ``to_json`` and ``repr``.
        max_batch_tokens: Padded tokens (texts x longest text) per forward pass at most; None:
            2,048 on the CPU (measured: docs/performance.md), else none.
        cache_dir: Folder of a persistent embedding cache (keyed by model, settings, role,
            instruction and text, unlike ``embeddings_cache``); None: none.
        backend: What runs the model: ``"torch"``, or on the CPU ``"onnx"`` (ONNX Runtime) or
            ``"openvino"``, on a graph exported once and kept in ``backend_dir``; ``"auto"``: the
            fastest exact one here (OpenVINO on the CPU when installed, else torch).
        backend_precision: ``"fp32"`` (None), ``"int8"`` with ``"onnx"``, ``"bf16"`` with
            ``"openvino"``; None with torch.
        backend_dir: Folder of the exported graphs. None: ``~/.cache/bge_integrations/backends``.
        base_url: A BGE server (``bge-integrations serve``) that embeds instead of a local model,
            queries and texts in their roles; no model loads here, ``core`` is a
            :class:`~bge_integrations.core.remote.RemoteEmbedder`, the batch size is texts per
            request, and a setting the server owns (``device``, ``query_instruction``...) is
            refused by name. None: a local model.
        api_key: The server's API key (``base_url`` only); kept out of ``to_dict`` and ``repr``.
        **kwargs: Other :class:`BaseEmbedding` fields (``callback_manager``, ``num_workers``,
            ``embeddings_cache``, ``rate_limiter``).

    Example:
        >>> from llama_index.core import VectorStoreIndex, Document
        >>> embed_model = BGEEmbedding("BAAI/bge-small-en-v1.5", device="cpu")
        >>> index = VectorStoreIndex.from_documents([Document(text="BGE")], embed_model=embed_model)  # doctest: +SKIP
        >>> len(embed_model.get_query_embedding("what is BGE?"))  # doctest: +SKIP
        384

    """

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(default=DEFAULT_EMBEDDER, description="Hub id or local path of a BGE embedding model.")
    embed_batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, gt=0, le=2048, description="Texts per batch and per forward pass."
    )
    query_instruction: str | None = Field(default=None, description="Query prefix; None: the model's official one.")
    text_instruction: str = Field(default="", description="Prefix for texts (documents); BGE uses none.")
    pooling: Pooling | None = Field(default=None, description="cls, mean or lasttoken; None: the checkpoint's.")
    normalize: bool | None = Field(default=None, description="L2-normalise vectors; None: the model's default.")
    max_length: int | None = Field(default=None, gt=0, description="Tokens read per text; None: the model's.")
    device: str | None = Field(default=None, description="Device; None picks CUDA, then MPS, then CPU.")
    use_fp16: bool | None = Field(default=None, description="Half precision; None: on for CUDA only.")
    revision: str | None = Field(default=None, description="Hub revision (branch, tag or commit).")
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the checkpoint.")
    token: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="Hugging Face token; never in to_dict or repr."
    )
    max_batch_tokens: int | None = Field(
        default=None, gt=0, description="Padded tokens per forward pass at most; None: 2,048 on the CPU, else none."
    )
    cache_dir: str | None = Field(default=None, description="Folder of a persistent embedding cache; None: none.")
    backend: Backend = Field(default="torch", description="torch, auto, or on the CPU onnx or openvino.")
    backend_precision: BackendPrecision | None = Field(
        default=None, description="fp32 (None), int8 (onnx) or bf16 (openvino); None with torch."
    )
    backend_dir: str | None = Field(default=None, description="Folder of exported graphs; None: the user cache.")
    base_url: str | None = Field(default=None, description="A BGE server that embeds instead; None: a local model.")
    api_key: SecretStr | None = Field(
        default=None, exclude=True, repr=False, description="The server's API key; never in to_dict or repr."
    )

    _slot: CoreSlot[BGEEmbedder | RemoteEmbedder] = PrivateAttr(default_factory=CoreSlot)
    _progress_slot: CoreSlot[BGEEmbedder] = PrivateAttr(default_factory=CoreSlot)

    def __init__(
        self,
        model_name: str = DEFAULT_EMBEDDER,
        *,
        query_instruction: str | None = None,
        text_instruction: str = "",
        batch_size: int | None = None,
        embed_batch_size: int | None = None,
        device: str | None = None,
        use_fp16: bool | None = None,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: str | SecretStr | None = None,
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        backend: Backend = "torch",
        backend_precision: BackendPrecision | None = None,
        backend_dir: str | None = None,
        base_url: str | None = None,
        api_key: str | SecretStr | None = None,
        **kwargs: Any,
    ) -> None:
        if batch_size is not None and embed_batch_size is not None and batch_size != embed_batch_size:
            msg = f"batch_size and embed_batch_size are one setting, got {batch_size!r} and {embed_batch_size!r}"
            raise ValueError(msg)
        if embed_batch_size is None:
            embed_batch_size = DEFAULT_BATCH_SIZE if batch_size is None else batch_size
        fields: dict[str, Any] = {
            "model_name": model_name,
            "embed_batch_size": embed_batch_size,
            "query_instruction": query_instruction,
            "text_instruction": text_instruction,
            "device": device,
            "use_fp16": use_fp16,
            "pooling": pooling,
            "normalize": normalize,
            "max_length": max_length,
            "revision": revision,
            "trust_remote_code": trust_remote_code,
            "token": token,
            "max_batch_tokens": max_batch_tokens,
            "cache_dir": cache_dir,
            "backend": backend,
            "backend_precision": backend_precision,
            "backend_dir": backend_dir,
            "base_url": base_url,
            "api_key": api_key,
        }
        super().__init__(**fields, **kwargs)
        _ = self.core  # built now, so bad settings fail here, naming the value

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "BGEEmbedding"

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> Self:
        """Rebuild from :meth:`to_dict` (or ``to_json``); the data cannot switch ``trust_remote_code`` on.

        Keyword arguments are code, not data: ``from_dict(data, trust_remote_code=True)`` is an
        explicit opt-in, as is :func:`~bge_integrations.core.loading.allow_remote_code`.

        Raises:
            ValueError: If data asks for ``trust_remote_code`` without such an opt-in.

        """
        check_serialized_remote_code(cls.class_name(), {k: v for k, v in data.items() if k not in kwargs})
        return super().from_dict(data, **kwargs)

    @property
    def batch_size(self) -> int:
        """The constructor's other name for ``embed_batch_size``; set ``embed_batch_size`` to change it."""
        return self.embed_batch_size

    @property
    def core(self) -> BGEEmbedder | RemoteEmbedder:
        """The :class:`BGEEmbedder` doing the work, built from the current fields (no weights).

        With ``base_url``, a :class:`~bge_integrations.core.remote.RemoteEmbedder`.
        """
        if self.base_url is not None:
            return self._slot.get(self._remote_settings(), RemoteEmbedder)
        return self._slot.get(self._core_settings(), BGEEmbedder)

    def _remote_settings(self) -> dict[str, Any]:
        return remote_arguments(
            "BGEEmbedding",
            self.base_url,
            None if self.api_key is None else self.api_key.get_secret_value(),
            self._core_settings(),
            BGEEmbedder,
            default_model=DEFAULT_EMBEDDER,
            client_side={"batch_size"},
            names=_NAMES,
        )

    def _core_settings(self) -> dict[str, Any]:
        settings = {core: getattr(self, name) for name, core in _SETTINGS.items()}
        settings["token"] = None if self.token is None else self.token.get_secret_value()
        return settings

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.core.embed_query(check_text(query, name="query"))

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await self.core.aembed_query(check_text(query, name="query"))

    def _get_text_embedding(self, text: str) -> Embedding:
        return self.core.embed_documents([check_text(text)])[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return (await self.core.aembed_documents([check_text(text)]))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.core.embed_documents(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self.core.aembed_documents(texts)

    @dispatcher.span
    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        """Embed texts in one engine call: sorted by length and de-duplicated across the whole list.

        LlamaIndex's own loop sends ``embed_batch_size`` texts at a time, so each chunk is
        padded to its own longest text. The events and callbacks are LlamaIndex's, one pair per
        chunk. With ``embeddings_cache`` or ``rate_limiter`` set, LlamaIndex's loop runs as is.
        Texts are checked first, so an error names a text by its position in the whole list.
        """
        texts = check_texts(texts)
        if self.embeddings_cache is not None or self.rate_limiter is not None:
            return super().get_text_embedding_batch(texts, show_progress=show_progress, **kwargs)
        core = self.core
        if show_progress and isinstance(core, BGEEmbedder):
            core = self._progress_slot.get({**self._core_settings(), "show_progress_bar": True}, BGEEmbedder)
        return batch_embedding_events(self, texts, self.embed_batch_size, core.embed_documents)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Async batch embedding (LlamaIndex's own loop), texts checked first as in the sync method."""
        return await super().aget_text_embedding_batch(check_texts(texts), show_progress=show_progress, **kwargs)

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Set each node's embedding (LlamaIndex's transform); errors name a bad node by position."""
        return super().__call__(_check_nodes(nodes), **kwargs)

    async def acall(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        """Async :meth:`__call__`."""
        return await super().acall(_check_nodes(nodes), **kwargs)

    def get_query_embedding(self, query: str) -> Embedding:
        """Embed a query; a cache keeps it apart from texts (see the class docstring)."""
        cache = self.embeddings_cache
        if not cache:
            return super().get_query_embedding(query)
        return cached_query_embedding(self, cache, query, self._get_query_embedding)

    async def aget_query_embedding(self, query: str) -> Embedding:
        """Async :meth:`get_query_embedding`: the model runs in a worker thread."""
        cache = self.embeddings_cache
        if not cache:
            return await super().aget_query_embedding(query)
        return await acached_query_embedding(self, cache, query, self._aget_query_embedding)


_NAMES = {core: name for name, core in _SETTINGS.items()}
"""Core argument -> field name, for errors."""


def _check_nodes(nodes: Any) -> Sequence[BaseNode]:
    return check_items(nodes, BaseNode, name="nodes", sequence="a sequence of nodes", item="a node (BaseNode)")


__all__ = ["QUERY_CACHE_COLLECTION", "BGEEmbedding"]
