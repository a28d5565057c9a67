"""The effective settings of the core engines, after presets and defaults.

:class:`EmbedderConfig` and :class:`RerankerConfig` are what ``BGEEmbedder.config`` and
``BGEReranker.config`` return, and what the model loaders (``embedding_model``,
``reranking_model``) build from. They live here, apart from the engines, so that loaders and
engines import them without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

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

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dictionary."""
        return asdict(self)


__all__ = ["SCORING_SETTINGS", "Aggregation", "EmbedderConfig", "RerankerBackend", "RerankerConfig"]
