"""The effective settings of the core engines, after presets and defaults, and their adapter names.

:class:`EmbedderConfig` and :class:`RerankerConfig` are what ``BGEEmbedder.config`` and
``BGEReranker.config`` return, and what the model loaders (``embedding_model``,
``reranking_model``) build from. They live here, apart from the engines, so that loaders and
engines import them without importing each other.

:data:`EMBEDDER_SETTINGS` and :data:`RERANKER_SETTINGS` name each constructor argument of the
engines in each adapter: the adapters build the engines' keyword arguments from them, so a new
setting that an adapter passes through as it is costs one row here (and the adapter's field).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.presets import Pooling
from bge_integrations.core.vector_output import Precision


@dataclass(frozen=True)
class EmbedderConfig:
    """The effective settings of a :class:`BGEEmbedder`, after presets and defaults.

    ``None`` in ``pooling``, ``normalize`` or ``max_length`` means "as the checkpoint's own
    sentence-transformers config says".
    """

    model_name: str
    query_instruction: str
    document_instruction: str
    pooling: Pooling | None
    normalize: bool | None
    max_length: int | None
    device: str
    use_fp16: bool
    batch_size: int
    max_batch_tokens: int | None
    revision: str | None
    trust_remote_code: bool
    preset: str | None
    """Hub id of the BGE model this checkpoint was recognised as, or None."""
    backend: Backend = "torch"
    """The backend that runs (``"auto"`` resolved: see ``backend_fallback``)."""
    backend_fallback: bool = False
    """True where ``backend="auto"`` chose it: if the graph cannot be exported or run, torch runs instead."""
    backend_precision: BackendPrecision | None = None
    """None for torch (its precision is ``use_fp16``), else ``"fp32"``, ``"bf16"`` or ``"int8"``."""
    backend_dir: str | None = None
    """Folder of the exported graphs (resolved), or None for torch."""
    truncate_dim: int | None = None
    """Dimensions kept per vector (the first ones), or None for all."""
    precision: Precision = "float32"
    """``"float32"``, or the quantised type (``"int8"``, ``"uint8"``, ``"binary"``, ``"ubinary"``)."""
    model_kwargs: dict[str, Any] | None = None
    tokenizer_kwargs: dict[str, Any] | None = None
    config_kwargs: dict[str, Any] | None = None
    cache_folder: str | None = None
    """Where hub models are downloaded; None: the hub library's own cache."""
    local_files_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary."""
        return asdict(self)


Aggregation = Literal["max", "mean"]
RerankerBackend = Literal["torch"]
"""What runs a reranker's forward passes; ONNX Runtime and OpenVINO are embedder backends only so far."""

SCORING_SETTINGS = (
    "max_length",
    "max_query_length",
    "windows",
    "window_overlap",
    "max_windows",
    "aggregation",
    "normalize",
)
"""How pairs are read and scored: the settings every adapter takes under these same names."""

LLM_SETTINGS = ("prompt", "cutoff_layers", "compress_ratio", "compress_layers")
"""How BGE's LLM rerankers score (FlagEmbedding's names): every adapter takes them under these names."""


Adapter = Literal["langchain", "llama_index", "haystack"]
"""The adapters that read the settings tables, by their subpackage's name."""


@dataclass(frozen=True)
class SettingNames:
    """One constructor argument of a core engine and the name each adapter gives it.

    An adapter's name is that of its field (LangChain, LlamaIndex) or ``__init__`` parameter
    (Haystack) whose value the adapter passes to the core unchanged. None: the adapter does not
    expose the setting, or translates it by hand (a token kept secret, a Haystack ``device``,
    a setting read from peer ``*_kwargs``); the adapter's ``_core_settings`` says how.

    Example:
        >>> SettingNames("batch_size", "batch_size", "embed_batch_size", "batch_size").name("llama_index")
        'embed_batch_size'

    """

    core: str
    langchain: str | None
    llama_index: str | None
    haystack: str | None

    def name(self, adapter: Adapter) -> str | None:
        """The setting's name in ``adapter``, or None where the adapter does not pass it through."""
        if adapter not in get_args(Adapter):
            msg = f"adapter must be one of {get_args(Adapter)}, got {adapter!r}"
            raise ValueError(msg)
        name: str | None = getattr(self, adapter)
        return name


def _same(core: str) -> SettingNames:
    """A setting that every adapter passes through under the core's name."""
    return SettingNames(core, core, core, core)


EMBEDDER_SETTINGS: tuple[SettingNames, ...] = (
    SettingNames("model_name", "model_name", "model_name", None),  # Haystack: model, checked by its name
    SettingNames("query_instruction", "query_instruction", "query_instruction", None),  # Haystack: prefix too
    SettingNames("document_instruction", "embed_instruction", "text_instruction", None),  # Haystack: prefix
    SettingNames("pooling", "pooling", "pooling", None),
    SettingNames("normalize", "normalize", "normalize", None),  # Haystack: normalize_embeddings
    SettingNames("max_length", "max_length", "max_length", None),  # Haystack: or tokenizer_kwargs
    SettingNames("device", "device", "device", None),  # Haystack: a ComponentDevice
    _same("use_fp16"),
    SettingNames("batch_size", "batch_size", "embed_batch_size", "batch_size"),
    _same("max_batch_tokens"),
    _same("revision"),
    _same("trust_remote_code"),
    SettingNames("token", None, None, None),  # a secret in every adapter: SecretStr, Haystack's Secret
    SettingNames("show_progress_bar", "show_progress", None, "progress_bar"),  # LlamaIndex: show_progress=
    _same("cache_dir"),
    _same("backend"),
    _same("backend_precision"),
    _same("backend_dir"),
    SettingNames("truncate_dim", "truncate_dim", None, "truncate_dim"),
    SettingNames("precision", "precision", None, "precision"),
    SettingNames("quantization_ranges", "quantization_ranges", None, None),  # Haystack: made plain lists
    # LangChain's model_kwargs are SentenceTransformer(...)'s; these three are keys of them.
    SettingNames("model_kwargs", None, None, "model_kwargs"),
    SettingNames("tokenizer_kwargs", None, None, "tokenizer_kwargs"),
    SettingNames("config_kwargs", None, None, "config_kwargs"),
    SettingNames("cache_folder", "cache_folder", None, None),
    SettingNames("local_files_only", None, None, "local_files_only"),  # LangChain: a model_kwargs key
)
"""Each :class:`~bge_integrations.core.embedder.BGEEmbedder` argument and its name in each adapter.

LangChain's ``model_kwargs``/``encode_kwargs`` keys are translated onto these LangChain names
first (``langchain/_peer_kwargs.py``), Haystack's ``encode_kwargs`` onto its names.
"""

RERANKER_SETTINGS: tuple[SettingNames, ...] = (
    SettingNames("model_name", "model_name", "model", None),  # Haystack: model, checked by its name
    SettingNames("max_length", "max_length", "max_length", None),  # Haystack: or tokenizer_kwargs
    *(_same(name) for name in SCORING_SETTINGS if name not in ("max_length", "normalize")),
    SettingNames("normalize", "normalize", "normalize", None),  # Haystack: scale_score, checked by its name
    SettingNames("device", "device", "device", None),  # Haystack: a ComponentDevice
    _same("use_fp16"),
    _same("batch_size"),
    _same("revision"),
    _same("trust_remote_code"),
    SettingNames("token", None, None, None),  # a secret in every adapter
    SettingNames("show_progress_bar", None, None, None),
    # BGECrossEncoder's model_kwargs are CrossEncoder(...)'s; these are keys of them.
    SettingNames("backend", None, None, "backend"),
    SettingNames("model_kwargs", None, None, "model_kwargs"),
    SettingNames("tokenizer_kwargs", None, None, "tokenizer_kwargs"),
    SettingNames("config_kwargs", None, None, "config_kwargs"),
    SettingNames("cache_folder", None, None, None),
    SettingNames("local_files_only", None, None, None),
    *(_same(name) for name in LLM_SETTINGS),
)
"""Each :class:`~bge_integrations.core.reranker.BGEReranker` argument and its name in each adapter."""


def passed_through(table: tuple[SettingNames, ...], adapter: Adapter) -> dict[str, str]:
    """``{adapter name: core name}`` of the settings that ``adapter`` passes to the core unchanged.

    Example:
        >>> passed_through(RERANKER_SETTINGS, "llama_index")["model"]
        'model_name'

    """
    return {name: row.core for row in table if (name := row.name(adapter)) is not None}


@dataclass(frozen=True)
class RerankerConfig:
    """The effective settings of a :class:`BGEReranker`, after presets and defaults."""

    model_name: str
    max_length: int
    max_query_length: int
    windows: bool
    window_overlap: int
    max_windows: int | None
    aggregation: Aggregation
    normalize: bool
    device: str
    use_fp16: bool
    batch_size: int
    revision: str | None
    trust_remote_code: bool
    preset: str | None
    backend: RerankerBackend = "torch"
    model_kwargs: dict[str, Any] | None = None
    tokenizer_kwargs: dict[str, Any] | None = None
    config_kwargs: dict[str, Any] | None = None
    cache_folder: str | None = None
    """Where hub models are downloaded; None: the hub library's own cache."""
    local_files_only: bool = False
    prompt: str | None = None
    """LLM rerankers: the instruction after the passage; None: the model family's (FlagEmbedding's)."""
    cutoff_layers: tuple[int, ...] | None = None
    """Layerwise and lightweight LLM rerankers: the layers that score; None: the last one."""
    compress_ratio: int | None = None
    """Lightweight LLM reranker: passage tokens merged into one (1, 2, 4 or 8); None: FlagEmbedding's default."""
    compress_layers: tuple[int, ...] | None = None
    """Lightweight LLM reranker: the layers before which passage tokens are merged; None: FlagEmbedding's default."""

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary."""
        return asdict(self)


__all__ = [
    "EMBEDDER_SETTINGS",
    "LLM_SETTINGS",
    "RERANKER_SETTINGS",
    "SCORING_SETTINGS",
    "Adapter",
    "Aggregation",
    "EmbedderConfig",
    "RerankerBackend",
    "RerankerConfig",
    "SettingNames",
    "passed_through",
]
