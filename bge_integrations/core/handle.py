"""What BGEEmbedder and BGEReranker share: settings in the object, weights in the registry."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from bge_integrations.core.loading import REGISTRY, LoadKey
from bge_integrations.core.notices import TruncationMonitor


class ModelHandle:
    """Base of the core engines: lazy loading, release, truncation counts, copy and pickle.

    A handle holds settings only; its model lives in the process-wide registry under
    :attr:`load_key`. Copying or pickling a handle therefore never copies weights: the copy
    (in this process or another) finds or loads the model on first use.

    Example:
        >>> import pickle
        >>> from bge_integrations import BGEEmbedder
        >>> pickle.loads(pickle.dumps(BGEEmbedder("BAAI/bge-small-en-v1.5"))).model_name
        'BAAI/bge-small-en-v1.5'

    """

    kind: ClassVar[Literal["embedder", "reranker"]]
    model_name: str
    device: str | None
    use_fp16: bool | None
    config: Any
    """The effective settings (a frozen dataclass with ``to_dict()``), set by each subclass."""

    def __init__(self) -> None:
        self._truncation = TruncationMonitor()

    @property
    def load_key(self) -> LoadKey:
        """The registry key of this object's model: objects with equal keys share it."""
        config = self.config
        return LoadKey(
            kind=self.kind,
            model=config.model_name,
            device=config.device,
            fp16=config.use_fp16,
            revision=config.revision,
            trust_remote_code=config.trust_remote_code,
            options=self._load_options(),
        )

    def _load_options(self) -> tuple[tuple[str, Any], ...]:
        """Settings besides the common ones that change what a load puts in memory."""
        return ()

    @property
    def truncated_count(self) -> int:
        """How many inputs this object has truncated so far."""
        return self._truncation.count

    @property
    def batch_tokens(self) -> int | None:
        """Padded tokens (texts x longest text) per forward pass at most (loads the model).

        ``max_batch_tokens`` where it is set, else the device's default (on the CPU, 2,048 for
        encoders: :data:`~bge_integrations.core.cpu_batches.CPU_BATCH_TOKENS`), lowered after an
        out-of-memory failure; None: batches are cut at ``batch_size`` texts only (as for an
        embedder without a fast tokenizer, which sentence-transformers' own ``encode`` batches). A
        text longer than the budget still runs, alone.

        Example:
            >>> from bge_integrations import BGEEmbedder
            >>> BGEEmbedder("BAAI/bge-small-en-v1.5", device="cpu").batch_tokens  # doctest: +SKIP
            2048

        """
        loaded = self._loaded()
        features = getattr(loaded, "features", None)
        if features is not None and not features.available:
            return None  # no fast tokenizer: sentence-transformers' own encode batches, by batch_size
        budget: int | None = loaded.runner.budget(getattr(self.config, "max_batch_tokens", None))
        return budget

    def warm_up(self) -> None:
        """Load the model now instead of on first use."""
        self._loaded()

    def release(self) -> bool:
        """Free this object's model, shared with every object of the same load key.

        Any object that uses it afterwards loads it again. Returns True if it was loaded.
        """
        return REGISTRY.release(self.load_key)

    def _loaded(self) -> Any:
        raise NotImplementedError

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_truncation", None)  # holds a lock; counts are per object anyway
        state.pop("config", None)  # resolved again where the copy lives (device may differ)
        state.pop("_coalescer", None)  # per process and event loop
        state.pop("_cache", None)  # an open file; reopened from cache_dir where the copy lives
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._truncation = TruncationMonitor()

    def __repr__(self) -> str:
        try:
            settings = self.config.to_dict()
        except ValueError:  # settings that cannot resolve here (e.g. CUDA asked, none present)
            settings = {"model_name": self.model_name, "device": self.device, "use_fp16": self.use_fp16}
        fields = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"{type(self).__name__}({fields})"


__all__ = ["ModelHandle"]
