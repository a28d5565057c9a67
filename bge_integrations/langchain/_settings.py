"""The reranker settings shared by BGERerank and BGECrossEncoder, as pydantic fields."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, model_validator
from typing_extensions import Self

from bge_integrations.core.presets import DEFAULT_RERANKER
from bge_integrations.core.reranker import Aggregation, BGEReranker

_CORE_FIELDS = (
    "model_name",
    "max_length",
    "max_query_length",
    "windows",
    "window_overlap",
    "aggregation",
    "normalize",
    "device",
    "use_fp16",
    "batch_size",
    "revision",
    "trust_remote_code",
)


class RerankerSettings(BaseModel):
    """The fields of a BGE reranker; ``client`` is the core :class:`BGEReranker` they make.

    Example:
        >>> RerankerSettings(model_name="BAAI/bge-reranker-base", device="cpu").client.model_name
        'BAAI/bge-reranker-base'

    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    model_name: str = DEFAULT_RERANKER
    """Hub id or local path of a BGE reranker (cross-encoder)."""
    max_length: int | None = None
    """Tokens per (query, passage) pair; None: 512 for the BGE rerankers."""
    max_query_length: int | None = None
    """Tokens of the query kept at most; None: three quarters of ``max_length``."""
    windows: bool = True
    """Read long passages as overlapping windows (the best window's score counts); False: only the beginning."""
    window_overlap: int = 64
    """Tokens shared by consecutive windows."""
    aggregation: Aggregation = "max"
    """How window scores make a passage's score: ``"max"`` or ``"mean"``."""
    normalize: bool = True
    """Sigmoid scores in 0..1 (True) or raw logits (False)."""
    device: str | None = None
    """``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU."""
    use_fp16: bool | None = None
    """Half precision; None: on for CUDA, off elsewhere."""
    batch_size: int = 32
    """Pairs (windows) per forward pass."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    trust_remote_code: bool = False
    """Run code shipped with the checkpoint."""

    _client: BGEReranker | None = PrivateAttr(default=None)
    _client_kwargs: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _check_reranker_settings(self) -> Self:
        self._client = None
        _ = self.client  # builds the core reranker, which checks every setting
        return self

    @property
    def client(self) -> BGEReranker:
        """The core :class:`BGEReranker` with these settings (``config``, ``warm_up()``, ``score()``)."""
        kwargs = {name: getattr(self, name) for name in _CORE_FIELDS}
        if self._client is None or kwargs != self._client_kwargs:
            self._client = BGEReranker(**kwargs)
            self._client_kwargs = kwargs
        return self._client


__all__ = ["RerankerSettings"]
