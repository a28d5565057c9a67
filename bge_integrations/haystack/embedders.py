"""BGETextEmbedder (queries, with the instruction) and BGEDocumentEmbedder (documents, without).

Both wrap :class:`~bge_integrations.core.embedder.BGEEmbedder`; parameter names follow Haystack's
SentenceTransformers embedders. Embedders configured alike share one model (the core registry).
"""

from __future__ import annotations

from typing import Any

from haystack import Document, component
from haystack.utils import ComponentDevice, Secret

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.configs import EMBEDDER_SETTINGS
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import check_flag
from bge_integrations.core.presets import DEFAULT_EMBEDDER
from bge_integrations.core.remote import RemoteEmbedder
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.validation import check_text
from bge_integrations.core.vector_output import Precision
from bge_integrations.haystack._common import (
    check_documents,
    check_encode_kwargs,
    check_fields,
    check_model,
    check_query,
    check_token,
    component_device,
    copy_document,
    default_api_key,
    default_token,
    document_texts,
    merge_prompt,
    plain,
    query_instruction_setting,
    serializable,
)
from bge_integrations.haystack._component import CoreComponent


class _EmbedderBase(CoreComponent):
    """The core embedder behind both embedders, built from their current settings."""

    SETTINGS = EMBEDDER_SETTINGS

    progress_bar: bool
    max_batch_tokens: int | None
    cache_dir: str | None
    backend: Backend
    backend_precision: BackendPrecision | None
    backend_dir: str | None
    prefix: str
    suffix: str
    normalize_embeddings: bool
    local_files_only: bool
    truncate_dim: int | None
    precision: Precision
    encode_kwargs: dict[str, Any] | None
    quantization_ranges: list[list[float]] | None
    base_url: str | None
    api_key: Secret | None
    _slot: CoreSlot[BGEEmbedder | RemoteEmbedder]

    @property
    def embedder(self) -> BGEEmbedder | RemoteEmbedder:
        """The core embedder doing the work, built from the current settings (shares the model).

        With ``base_url``, a :class:`~bge_integrations.core.remote.RemoteEmbedder`.
        """
        if self.base_url is not None:
            client_side = {"show_progress_bar", "batch_size"}
            remote = self._remote_settings(BGEEmbedder, client_side=client_side, default_model=DEFAULT_EMBEDDER)
            return self._slot.get(remote, RemoteEmbedder)
        return self._slot.get(self._core_settings(), BGEEmbedder)

    def _core(self) -> BGEEmbedder | RemoteEmbedder:
        return self.embedder

    def _remote_names(self) -> dict[str, str]:
        return {
            "model_name": "model",
            "normalize": "normalize_embeddings",
            "query_instruction": "query_instruction (or prefix)",
            "document_instruction": "prefix",
        }

    def _overrides(self) -> dict[str, Any]:
        """``encode_kwargs``, by this component's names: each wins over the setting of the same meaning."""
        return check_encode_kwargs(self.encode_kwargs)

    def _core_settings(self) -> dict[str, Any]:
        # encode_kwargs overrides the settings of the same meaning; every value is checked here,
        # under the component's names, as it may have been set since __init__.
        overrides = self._overrides()
        normalize = check_flag(
            overrides.get("normalize_embeddings", self.normalize_embeddings), name="normalize_embeddings"
        )
        settings = CoreComponent._core_settings(self)
        self._suffix()  # checked here too, so that a bad one fails in __init__ (which builds the core)
        settings.update(
            # False: as the checkpoint says (BGE checkpoints normalise), as with sentence-transformers.
            normalize=True if normalize else None,
            quantization_ranges=serializable(self.quantization_ranges),
        )
        return settings

    def _prefix(self) -> str:
        """The prefix in use: ``prefix``, or ``encode_kwargs["prompt"]``."""
        return merge_prompt(self.prefix, check_encode_kwargs(self.encode_kwargs))

    def _suffix(self) -> str:
        return check_text(self.suffix, name="suffix")


@component
class BGETextEmbedder(_EmbedderBase):
    """Embeds a query string, with the model's query instruction, for an embedding retriever.

    Args:
        model: Hub id or local path of a BGE embedding model.
        device: ``"cpu"``, ``"cuda:1"``... or a ``ComponentDevice``. None: CUDA, then MPS, then CPU,
            chosen when the model loads.
        batch_size: Texts per forward pass.
        progress_bar: Show a progress bar while embedding (off: one query is one batch).
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        query_instruction: Prefix for queries. None: the model's official one; ``""``: none.
        max_length: Tokens read per text. None: the model's (512 for BGE v1.5).
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: Run code shipped with the checkpoint. A saved pipeline cannot switch it
            on by itself (see :func:`~bge_integrations.core.loading.allow_remote_code`).
        token: Hugging Face token for private or gated models, a ``Secret``. Default: the
            ``HF_API_TOKEN`` or ``HF_TOKEN`` environment variable, saved by name only.
        max_batch_tokens: Padded tokens (texts x longest text) per forward pass at most; None:
            2,048 on the CPU (measured: docs/performance.md), else none.
        cache_dir: Folder of a persistent embedding cache; None: no cache.
        backend: What runs the model: ``"torch"``, or on the CPU ``"onnx"`` (ONNX Runtime) or
            ``"openvino"``, on a graph exported once and kept in ``backend_dir``; ``"auto"``: the
            fastest exact one here (OpenVINO on the CPU when installed, else torch).
        backend_precision: ``"fp32"`` (None), ``"int8"`` with ``"onnx"``, ``"bf16"`` with
            ``"openvino"``; None with torch.
        backend_dir: Folder of the exported graphs. None: ``~/.cache/bge_integrations/backends``.
        prefix: The query instruction, under its SentenceTransformers name: a non-empty prefix
            replaces the model's instruction (it is never added on top of it); ``""`` (the
            default) leaves ``query_instruction`` in charge. Both set and different: ValueError.
        suffix: Appended to the query.
        normalize_embeddings: True: L2-normalise the vectors. False: as the checkpoint says
            (BGE checkpoints normalise).
        local_files_only: Never reach the hub: use files already in its cache.
        truncate_dim: Keep the first N dimensions of each vector (re-normalised when normalised).
        model_kwargs, tokenizer_kwargs, config_kwargs: Extra arguments for the model's,
            tokenizer's and config's ``from_pretrained`` (as sentence-transformers takes them);
            keys that are settings here (``device``, ``revision``...) are refused, ``dtype`` is
            read as ``use_fp16``. ``tokenizer_kwargs["model_max_length"]`` also sets ``max_length``.
        precision: ``"float32"``, or quantised vectors: ``"int8"``, ``"uint8"`` (both need
            ``quantization_ranges``), ``"binary"``, ``"ubinary"``.
        encode_kwargs: ``SentenceTransformer.encode`` arguments: ``batch_size``,
            ``show_progress_bar``, ``normalize_embeddings``, ``precision``, ``truncate_dim``,
            ``prompt`` (the prefix); each overrides that setting. Other keys: ValueError.
        quantization_ranges: Calibration ranges for ``"int8"``/``"uint8"``, shape (2, dimension):
            minimums, then maximums.
        base_url: A BGE server (``bge-integrations serve``) that embeds instead of a local
            model, this text as a query (the server's instruction on it); no model loads here,
            ``batch_size`` is texts per request, and a setting the server owns (``device``,
            ``query_instruction``...) is refused by name. None: a local model.
        api_key: The server's API key (``base_url`` only), a ``Secret``. Default: the
            ``BGE_API_KEY`` environment variable, saved by name only.

    Example:
        >>> embedder = BGETextEmbedder(model="BAAI/bge-small-en-v1.5", device="cpu")
        >>> embedder.run(text="what is BGE?")["embedding"][:2]  # doctest: +SKIP
        [0.012..., -0.034...]

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_EMBEDDER,
        device: str | ComponentDevice | None = None,
        batch_size: int = 32,
        progress_bar: bool = False,
        use_fp16: bool | None = None,
        query_instruction: str | None = None,
        max_length: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: Secret | None = default_token(),  # noqa: B008 - Haystack's convention; a Secret is immutable
        max_batch_tokens: int | None = None,
        cache_dir: str | None = None,
        backend: Backend = "torch",
        backend_precision: BackendPrecision | None = None,
        backend_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        normalize_embeddings: bool = False,
        local_files_only: bool = False,
        truncate_dim: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        precision: Precision = "float32",
        encode_kwargs: dict[str, Any] | None = None,
        quantization_ranges: list[list[float]] | None = None,
        base_url: str | None = None,
        api_key: Secret | None = default_api_key(),  # noqa: B008 - Haystack's convention; a Secret is immutable
    ) -> None:
        self.model = check_model(model)
        self.device = component_device(device)
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.query_instruction = query_instruction
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.token = check_token(token)
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.backend = backend
        self.backend_precision = backend_precision
        self.backend_dir = backend_dir
        self.prefix = prefix
        self.suffix = suffix
        self.normalize_embeddings = normalize_embeddings
        self.local_files_only = local_files_only
        self.truncate_dim = plain(truncate_dim)
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.precision: Precision = precision
        self.encode_kwargs = encode_kwargs
        self.quantization_ranges = quantization_ranges
        self.base_url = base_url
        self.api_key = check_token(api_key, name="api_key")
        self._slot = CoreSlot()
        _ = self.embedder  # built now, so bad settings fail here, naming the value

    def _core_settings(self) -> dict[str, Any]:
        settings = _EmbedderBase._core_settings(self)
        if settings["precision"] in ("int8", "uint8") and self.quantization_ranges is None:
            # As SentenceTransformersTextEmbedder: ranges from one query's own vector mean nothing.
            msg = (
                f"precision={settings['precision']!r} needs quantization_ranges computed from a "
                "representative sample of embeddings (shape (2, dimension)), got None"
            )
            raise ValueError(msg)
        settings["query_instruction"] = query_instruction_setting(self.query_instruction, self._prefix())
        return settings

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        """Embed one query, instruction first.

        Returns:
            ``{"embedding": [...]}``.

        Raises:
            TypeError: If text is not a string (use BGEDocumentEmbedder for Documents).

        """
        return {"embedding": self.embedder.embed_query(check_query(text) + self._suffix())}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, list[float]]:
        """Async :meth:`run`: off the event loop; concurrent runs share model batches."""
        return {"embedding": await self.embedder.aembed_query(check_query(text) + self._suffix())}


@component
class BGEDocumentEmbedder(_EmbedderBase):
    """Embeds Documents (no instruction) and returns copies with ``embedding`` set, in input order.

    As Haystack's ``SentenceTransformersDocumentEmbedder``, a document without content is
    embedded as the empty text (with its ``meta_fields_to_embed``, if set), keeping its place;
    meta values of any type are read with ``str()``. Duplicates each get their vector.

    Args:
        model, device, batch_size, use_fp16, max_length, revision, trust_remote_code, token,
            max_batch_tokens, cache_dir, backend, backend_precision, backend_dir,
            normalize_embeddings, local_files_only, truncate_dim, model_kwargs, tokenizer_kwargs,
            config_kwargs, precision, encode_kwargs, quantization_ranges, base_url, api_key: As in
            :class:`BGETextEmbedder`; keep the model settings (and ``truncate_dim``,
            ``precision``) equal to the text embedder's. Without ``quantization_ranges``,
            ``"int8"``/``"uint8"`` calibrate on each call's own vectors.
        progress_bar: Show a progress bar while embedding.
        meta_fields_to_embed: Meta fields read before the content (those set on a document).
        embedding_separator: Joins those meta values and the content.
        prefix: Put before each document's text (BGE documents take none: leave it ``""``).
        suffix: Appended to each document's text.

    Example:
        >>> embedder = BGEDocumentEmbedder(model="BAAI/bge-small-en-v1.5", meta_fields_to_embed=["title"])
        >>> docs = [Document(content="Pandas eat bamboo.", meta={"title": "Pandas"})]
        >>> embedder.run(documents=docs)["documents"][0].embedding[:2]  # doctest: +SKIP
        [0.021..., 0.005...]

    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_EMBEDDER,
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
        backend: Backend = "torch",
        backend_precision: BackendPrecision | None = None,
        backend_dir: str | None = None,
        prefix: str = "",
        suffix: str = "",
        normalize_embeddings: bool = False,
        local_files_only: bool = False,
        truncate_dim: int | None = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        precision: Precision = "float32",
        encode_kwargs: dict[str, Any] | None = None,
        quantization_ranges: list[list[float]] | None = None,
        base_url: str | None = None,
        api_key: Secret | None = default_api_key(),  # noqa: B008 - Haystack's convention; a Secret is immutable
    ) -> None:
        self.model = check_model(model)
        self.device = component_device(device)
        self.batch_size = plain(batch_size)
        self.progress_bar = progress_bar
        self.use_fp16 = use_fp16
        self.meta_fields_to_embed = check_fields(meta_fields_to_embed, embedding_separator)
        self.embedding_separator = embedding_separator
        self.max_length = plain(max_length)
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.token = check_token(token)
        self.max_batch_tokens = plain(max_batch_tokens)
        self.cache_dir = cache_dir
        self.backend = backend
        self.backend_precision = backend_precision
        self.backend_dir = backend_dir
        self.prefix = prefix
        self.suffix = suffix
        self.normalize_embeddings = normalize_embeddings
        self.local_files_only = local_files_only
        self.truncate_dim = plain(truncate_dim)
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = tokenizer_kwargs
        self.config_kwargs = config_kwargs
        self.precision: Precision = precision
        self.encode_kwargs = encode_kwargs
        self.quantization_ranges = quantization_ranges
        self.base_url = base_url
        self.api_key = check_token(api_key, name="api_key")
        self._slot = CoreSlot()
        _ = self.embedder  # built now, so bad settings fail here, naming the value

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embed documents; the inputs are not modified.

        Returns:
            ``{"documents": [...]}``: one copy per input, in input order, with ``embedding`` set.

        Raises:
            TypeError: If documents is not a list of Documents (use BGETextEmbedder for a string).

        """
        vectors = self.embedder.embed_documents(self._texts(documents))
        return {"documents": [copy_document(doc, embedding=v) for doc, v in zip(documents, vectors, strict=True)]}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Async :meth:`run`: off the event loop; concurrent runs share model batches."""
        vectors = await self.embedder.aembed_documents(self._texts(documents))
        return {"documents": [copy_document(doc, embedding=v) for doc, v in zip(documents, vectors, strict=True)]}

    def _core_settings(self) -> dict[str, Any]:
        return {**_EmbedderBase._core_settings(self), "document_instruction": self._prefix()}

    def _texts(self, documents: Any) -> list[str]:
        checked = check_documents(documents, "BGEDocumentEmbedder", "To embed a string, use BGETextEmbedder.")
        fields = check_fields(self.meta_fields_to_embed, self.embedding_separator)  # may have been set since __init__
        texts = document_texts(checked, fields, self.embedding_separator)
        suffix = self._suffix()
        return [text + suffix for text in texts] if suffix else texts


__all__ = ["BGEDocumentEmbedder", "BGETextEmbedder"]
