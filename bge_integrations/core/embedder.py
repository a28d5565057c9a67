"""BGEEmbedder: queries and documents to vectors, the way BGE was trained.

The query instruction goes on queries only; documents get none. Pooling and normalisation
follow the model (CLS and L2 for BGE). Weights load on first use from the shared registry
(``core/loading.py``), so every embedder and adapter configured alike uses one copy.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

import numpy as np

from bge_integrations.core.backends import (
    Backend,
    BackendPrecision,
    BackendUnavailableError,
    check_backend,
    choose_backend,
    default_backend_dir,
)
from bge_integrations.core.cache import EmbeddingCache, model_fingerprint, shared_cache
from bge_integrations.core.checkpoints import is_local_checkpoint, read_local_checkpoint
from bge_integrations.core.coalescing import Coalescer
from bge_integrations.core.configs import EmbedderConfig
from bge_integrations.core.dedup import deduplicate
from bge_integrations.core.devices import check_device_settings, resolve_device
from bge_integrations.core.embedding_model import LoadedEmbedder, load_embedder
from bge_integrations.core.handle import ModelHandle
from bge_integrations.core.hf_options import (
    check_folder,
    check_options,
    dtype_option,
    given_options,
    hub_key_options,
    resolve_fp16_option,
    tokenizer_max_length,
)
from bge_integrations.core.loading import REGISTRY, check_flag, check_token
from bge_integrations.core.notices import warn_once
from bge_integrations.core.presets import DEFAULT_EMBEDDER, Pooling, find_preset
from bge_integrations.core.progress import progress_bar
from bge_integrations.core.validation import check_positive_int, check_text, check_texts
from bge_integrations.core.vector_output import Precision, check_precision, finish_vectors

_AUTO_REFUSED: set[str] = set()
"""Models whose graph ``backend="auto"`` could not make or run in this process: they run torch."""


class BGEEmbedder(ModelHandle):
    """Embeds queries and documents with a BGE model.

    The official instruction of the model goes in front of queries only (``embed_queries``);
    documents are embedded as they are. Every input gets exactly one vector, in input order.

    Args:
        model_name: Hub id or local path of a BGE embedding model. A local fine-tuned BGE
            checkpoint is recognised by its folder name or recorded base model.
        query_instruction: Prefix for queries. None picks the model's own: the official one for
            BGE models (none for bge-m3), or the ``"query"`` prompt that the checkpoint's
            sentence-transformers config declares. ``""`` means no instruction.
        document_instruction: Prefix for documents; BGE uses none.
        pooling: ``"cls"``, ``"mean"`` or ``"lasttoken"``. None keeps the checkpoint's own
            sentence-transformers pooling, or CLS (BGE's) for a plain transformers checkpoint.
        normalize: L2-normalise embeddings. None: True for BGE models and plain checkpoints,
            the checkpoint's own config otherwise.
        max_length: Tokens read per text (longer ones are truncated, counted and warned about
            once per model). None: 512 for BGE v1/v1.5, 8192 for bge-m3, else the checkpoint's.
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``. None picks CUDA, then MPS,
            then CPU.
        use_fp16: Half precision. None: on for CUDA, off elsewhere.
        batch_size: Texts per forward pass, at most.
        max_batch_tokens: Padded tokens (texts x longest text) per forward pass, at most: long
            texts go in smaller batches. None: on the CPU 2,048, the budget a forward pass ran
            fastest at (:mod:`~bge_integrations.core.cpu_batches`); elsewhere only ``batch_size``
            limits a batch. Texts are always sorted by their real token count first, so a batch
            pads little.
        revision: Hub revision (branch, tag or commit).
        trust_remote_code: Run code shipped with the checkpoint. Off unless asked.
        token: Hugging Face access token for a private or gated model. None: the hub library's
            own (the ``HF_TOKEN`` environment variable, or a saved login). Kept out of
            ``config``, ``repr`` and the registry key (see ``core/loading.py``).
        show_progress_bar: Show a progress bar while embedding.
        cache_dir: A folder for a persistent embedding cache (see ``core/cache.py``): texts
            embedded before with the same model and settings are read back instead of
            recomputed. None: no cache. In-call duplicates are always embedded once.
        backend: What runs the forward passes: ``"torch"`` (the sentence-transformers pipeline),
            or, on the CPU only, ``"onnx"`` (ONNX Runtime) or ``"openvino"`` (OpenVINO) on a graph
            exported from that pipeline on first use and kept on disk. Tokenisation, batching and
            truncation are the same for all three. Needs the extra of the same name:
            ``pip install "bge-integrations[onnx]"``. ``"auto"``: the fastest exact engine here:
            on the CPU OpenVINO's fp32 graph when it is installed (else torch, with a one-time
            notice), torch on CUDA and MPS; a graph that cannot be exported or run falls back to
            torch with a notice. The default stays ``"torch"`` (docs/performance.md says why).
        backend_precision: For ``"onnx"``: ``"fp32"`` (same vectors as torch, to about 1e-6)
            or ``"int8"`` (quantised weights and activations: faster, less exact); for
            ``"openvino"``: ``"fp32"`` or ``"bf16"`` (needs a CPU with bf16 instructions).
            None: ``"fp32"``. Must be None with ``"torch"`` and ``"auto"``.
        backend_dir: Folder for the exported graphs. None: ``$XDG_CACHE_HOME/bge_integrations/backends``
            (``~/.cache/...`` without ``XDG_CACHE_HOME``).
        truncate_dim: Keep the first N dimensions of each vector (Matryoshka truncation). Vectors
            that the model normalises are normalised again after the cut. None: all.
        precision: ``"float32"``, or quantised with sentence-transformers' ``quantize_embeddings``:
            ``"int8"``, ``"uint8"``, ``"binary"``, ``"ubinary"`` (integers in the lists).
        quantization_ranges: Per-dimension minima and maxima, shape (2, dim), for ``"int8"`` and
            ``"uint8"``. None: taken from each call's own vectors, as sentence-transformers does.
        model_kwargs: Extra keyword arguments of the model's ``from_pretrained`` (for example
            ``{"attn_implementation": "sdpa"}``). ``dtype``/``torch_dtype`` is read as
            ``use_fp16`` (float16, float32, ``"auto"``) or loads bfloat16 weights; keys that are
            settings here (``device``, ``revision``, ...) are refused, naming the setting.
        tokenizer_kwargs: Extra keyword arguments of the tokenizer's ``from_pretrained``.
        config_kwargs: Extra keyword arguments of the config's ``from_pretrained``.
        cache_folder: Where hub models are downloaded and looked up. None: the hub library's
            cache (``HF_HUB_CACHE``). Not to be confused with ``cache_dir``, the embedding cache.
        local_files_only: Never reach the hub: use files already in the cache.

    Example:
        >>> embedder = BGEEmbedder("BAAI/bge-small-en-v1.5", device="cpu")
        >>> query = embedder.embed_query("what is BGE?")  # doctest: +SKIP
        >>> docs = embedder.embed_documents(["BGE is an embedding model."])  # doctest: +SKIP
        >>> len(query) == len(docs[0]) == 384  # doctest: +SKIP
        True
        >>> fast = BGEEmbedder("BAAI/bge-small-en-v1.5", backend="openvino", backend_precision="bf16")
        >>> fast.config.device, fast.config.backend_precision
        ('cpu', 'bf16')

    """

    kind: ClassVar[Literal["embedder", "reranker"]] = "embedder"

    def __init__(
        self,
        model_name: str = DEFAULT_EMBEDDER,
        *,
        query_instruction: str | None = None,
        document_instruction: str = "",
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | None = None,
        use_fp16: bool | None = None,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        token: str | None = None,
        show_progress_bar: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
        backend: Backend = "torch",
        backend_precision: BackendPrecision | None = None,
        backend_dir: str | os.PathLike[str] | None = None,
        truncate_dim: int | None = None,
        precision: Precision = "float32",
        quantization_ranges: Any = None,
        model_kwargs: dict[str, Any] | None = None,
        tokenizer_kwargs: dict[str, Any] | None = None,
        config_kwargs: dict[str, Any] | None = None,
        cache_folder: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
    ) -> None:
        if not isinstance(model_name, str) or not model_name.strip():
            msg = f"model_name must be a hub id or a local path, got {model_name!r}"
            raise ValueError(msg)
        if query_instruction is not None:
            check_text(query_instruction, name="query_instruction")
        check_text(document_instruction, name="document_instruction")
        if pooling is not None and pooling not in get_args(Pooling):
            msg = f"pooling must be one of {get_args(Pooling)} or None, got {pooling!r}"
            raise ValueError(msg)
        max_length = check_positive_int(max_length, name="max_length", allow_none=True)
        batch_size = check_positive_int(batch_size, name="batch_size")
        max_batch_tokens = check_positive_int(max_batch_tokens, name="max_batch_tokens", allow_none=True)
        check_device_settings(device, use_fp16)
        if normalize is not None:
            check_flag(normalize, name="normalize")
        check_flag(trust_remote_code, name="trust_remote_code")
        check_token(token)
        check_backend(backend, backend_precision, device=device, use_fp16=use_fp16)
        if backend_dir is not None and not isinstance(backend_dir, (str, os.PathLike)):
            msg = f"backend_dir must be a folder path or None, got {type(backend_dir).__name__}: {backend_dir!r}"
            raise TypeError(msg)
        truncate_dim = check_positive_int(truncate_dim, name="truncate_dim", allow_none=True)
        ranges = check_precision(precision, quantization_ranges)
        model_kwargs = check_options(model_kwargs, name="model_kwargs", allow_dtype=True)
        dtype_option(model_kwargs, use_fp16=use_fp16)
        check_flag(local_files_only, name="local_files_only")
        self.model_name = model_name
        self.query_instruction = query_instruction
        self.document_instruction = document_instruction
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.device = device
        self.use_fp16 = use_fp16
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.revision = revision
        self.trust_remote_code = trust_remote_code
        self.token = token
        self.show_progress_bar = show_progress_bar
        self.cache_dir = cache_dir
        self.backend = backend
        self.backend_precision = backend_precision
        self.backend_dir = backend_dir
        self.truncate_dim = truncate_dim
        self.precision: Precision = precision
        self.quantization_ranges = ranges
        self.model_kwargs = model_kwargs
        self.tokenizer_kwargs = check_options(tokenizer_kwargs, name="tokenizer_kwargs")
        self.config_kwargs = check_options(config_kwargs, name="config_kwargs")
        self.cache_folder = check_folder(cache_folder, name="cache_folder")
        self.local_files_only = local_files_only
        super().__init__()

    @cached_property
    def config(self) -> EmbedderConfig:
        """The effective settings: presets and defaults applied, explicit values kept."""
        local = is_local_checkpoint(self.model_name)
        info = read_local_checkpoint(self.model_name) if local else None
        preset = find_preset(self.model_name, info.base_model if info else None, kind="embedder")
        plain = info is not None and not info.has_sentence_transformers_config
        instruction = self.query_instruction
        if instruction is None:
            own = info.query_prompt if info else None
            instruction = own if own is not None else (preset.query_instruction if preset else "")
        pooling = self.pooling
        if pooling is None and plain:
            pooling = preset.pooling if preset else "cls"
        normalize = self.normalize
        if normalize is None and (plain or preset is not None):
            normalize = preset.normalize if preset else True
        max_length = self.max_length or tokenizer_max_length(self.tokenizer_kwargs)
        if max_length is None and preset is not None and (plain or not local):
            max_length = preset.max_length
        use_fp16, _ = dtype_option(self.model_kwargs, use_fp16=self.use_fp16)
        precision = check_backend(self.backend, self.backend_precision, device=self.device, use_fp16=use_fp16)
        backend, fallback = self.backend, self.backend == "auto"
        if backend == "auto" and self.model_name in _AUTO_REFUSED:
            backend, fallback = "torch", False
        if backend == "auto":
            backend, reason = choose_backend(resolve_device(self.device), use_fp16=bool(use_fp16))
            if reason is not None:
                warn_once(reason, UserWarning)
            precision = None if backend == "torch" else "fp32"
        on_cpu = backend != "torch"
        device = resolve_device("cpu" if on_cpu and self.device is None else self.device)
        backend_dir = None
        if on_cpu:
            backend_dir = str(Path(self.backend_dir).expanduser() if self.backend_dir else default_backend_dir())
        return EmbedderConfig(
            model_name=self.model_name,
            query_instruction=instruction,
            document_instruction=self.document_instruction,
            pooling=pooling,
            normalize=normalize,
            max_length=max_length,
            device=device,
            use_fp16=resolve_fp16_option(self.model_kwargs, use_fp16=self.use_fp16, device=device),
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
            revision=self.revision,
            trust_remote_code=self.trust_remote_code,
            preset=preset.name if preset else None,
            backend=backend,
            backend_fallback=fallback and backend != "torch",
            backend_precision=precision,
            backend_dir=backend_dir,
            truncate_dim=self.truncate_dim,
            precision=self.precision,
            model_kwargs=self.model_kwargs,
            tokenizer_kwargs=self.tokenizer_kwargs,
            config_kwargs=self.config_kwargs,
            cache_folder=self.cache_folder,
            local_files_only=self.local_files_only,
        )

    def _load_options(self) -> tuple[tuple[str, Any], ...]:
        # Built into the sentence-transformers pipeline object, so part of what is shared.
        config = self.config
        return (
            ("backend", config.backend),
            ("backend_precision", config.backend_precision),
            # A graph that "auto" chose may fall back to torch: never shared with one asked for by name.
            *((("backend_fallback", True),) if config.backend_fallback else ()),
            ("max_length", config.max_length),
            ("normalize", config.normalize),
            ("pooling", config.pooling),
            *hub_key_options(config),
        )

    @property
    def dimension(self) -> int:
        """Width of the embeddings this object returns (loads the model).

        With ``truncate_dim``, at most that; with ``precision="binary"`` or ``"ubinary"``, the
        number of bytes (eight dimensions each).
        """
        dimension = self._loaded().model.get_embedding_dimension()
        if dimension is None or self.precision in ("binary", "ubinary"):
            return len(self.embed_documents([""])[0])
        return int(dimension) if self.truncate_dim is None else min(int(dimension), self.truncate_dim)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no instruction). One vector per text, in input order."""
        return self._embed(check_texts(texts), self.config.document_instruction, query=False)

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """Embed queries, each prefixed with the query instruction."""
        return self._embed(check_texts(texts), self.config.query_instruction, query=True)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, prefixed with the query instruction."""
        return self.embed_queries([check_text(text)])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`; concurrent calls share model batches (see below)."""
        return await self._coalescer.submit(False, check_texts(texts))

    async def aembed_queries(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_queries`.

        Never blocks the event loop: the model runs in a worker thread. Concurrent calls on
        this embedder are served together: what arrives while the model is busy goes into its
        next call, so 64 concurrent one-query calls cost about one batched call of 64.
        """
        return await self._coalescer.submit(True, check_texts(texts))

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`; concurrent calls share model batches."""
        return (await self._coalescer.submit(True, [check_text(text)]))[0]

    @cached_property
    def _coalescer(self) -> Coalescer[bool, str, list[float]]:
        def run(query: bool, texts: list[str]) -> list[list[float]]:
            config = self.config
            return self._embed(texts, config.query_instruction if query else config.document_instruction, query=query)

        return Coalescer(run)

    def _loaded(self) -> LoadedEmbedder:
        config = self.config
        try:
            loaded: LoadedEmbedder = REGISTRY.get(self.load_key, lambda: load_embedder(config, token=self.token))
        except BackendUnavailableError as error:
            self._run_torch_instead(error)
            return self._loaded()
        return loaded

    def _run_torch_instead(self, error: BackendUnavailableError) -> None:
        """``backend="auto"``'s graph failed: torch from now on, for every embedder of this model in this process.

        The settings are resolved again, so the load key, the embedding cache's key and every
        record (``config``) name what runs.
        """
        _AUTO_REFUSED.add(self.model_name)
        self.__dict__.pop("config", None)
        warn_once(str(error), UserWarning)

    def _embed(self, texts: list[str], instruction: str, *, query: bool) -> list[list[float]]:
        try:
            return self._embed_once(texts, instruction, query=query)
        except BackendUnavailableError as error:
            self._run_torch_instead(error)
            return self._embed_once(texts, instruction, query=query)

    def _embed_once(self, texts: list[str], instruction: str, *, query: bool) -> list[list[float]]:
        if not texts:
            return []
        unique, inverse = deduplicate(texts)
        cache = self._cache
        namespace = b""
        stored: list[np.ndarray | None] = [None] * len(unique)
        fingerprint = ""
        if cache is not None:
            # The weights in memory if loaded; otherwise those the hub cache or folder names now.
            in_memory: LoadedEmbedder | None = REGISTRY.peek(self.load_key)
            fingerprint = in_memory.fingerprint if in_memory is not None else self._fingerprint()
            namespace = cache.namespace(self._cache_settings(instruction, fingerprint, query=query))
            stored = cache.get(namespace, unique)
        missing = [i for i, vector in enumerate(stored) if vector is None]
        computed = np.empty((0, 0), dtype=np.float32)
        cut: list[bool] = []
        loaded = self._loaded() if missing else None  # the one model this call computes with
        if loaded is not None and cache is not None and loaded.fingerprint != fingerprint:
            # Loading brought other weights than the lookup assumed (a branch moved on the hub, a
            # folder changed): look up again under theirs, so vectors of other weights never mix.
            namespace = cache.namespace(self._cache_settings(instruction, loaded.fingerprint, query=query))
            stored = cache.get(namespace, unique)
            missing = [i for i, vector in enumerate(stored) if vector is None]
        if loaded is not None and missing:
            todo = [unique[i] for i in missing]
            with progress_bar(len(todo), enabled=self.show_progress_bar, unit="text") as progress:
                computed, cut = loaded.embed(
                    todo,
                    instruction,
                    query=query,
                    batch_size=self.batch_size,
                    max_batch_tokens=self.max_batch_tokens,
                    progress=progress,
                )
            if cache is not None:
                cache.put(namespace, todo, computed)
            flags = dict(zip(missing, cut, strict=True))
            self._truncation.record(
                self.model_name,
                truncated=sum(flags.get(i, False) for i in inverse),
                total=len(texts),
                max_length=loaded.max_length,
                what="queries" if query else "documents",
            )
        if len(missing) == len(unique):
            matrix = computed
        else:
            position = {index: row for row, index in enumerate(missing)}
            matrix = np.stack([computed[position[i]] if vector is None else vector for i, vector in enumerate(stored)])
        rows = finish_vectors(
            matrix, truncate_dim=self.truncate_dim, precision=self.precision, ranges=self.quantization_ranges
        )
        return rows if len(unique) == len(texts) else [list(rows[i]) for i in inverse]

    @cached_property
    def _cache(self) -> EmbeddingCache | None:
        return None if self.cache_dir is None else shared_cache(self.cache_dir)

    def _fingerprint(self) -> str:
        config = self.config
        return model_fingerprint(config.model_name, config.revision, cache_folder=config.cache_folder)

    def _cache_settings(self, instruction: str, fingerprint: str, *, query: bool) -> dict[str, Any]:
        config = self.config
        return {
            "format": 1,
            "model": fingerprint,
            "pooling": config.pooling,
            "normalize": config.normalize,
            "max_length": config.max_length,
            "fp16": config.use_fp16,
            "role": "query" if query else "document",
            "instruction": instruction,
            # Torch entries keep their keys from before backends existed.
            **({} if config.backend == "torch" else {"backend": f"{config.backend}-{config.backend_precision}"}),
            # Options that may change the vectors; absent (so older keys hold) when not given.
            **given_options(config),
        }


__all__ = ["BGEEmbedder", "EmbedderConfig"]
