"""One loaded model per set of load parameters, shared by every object in the process.

Embedders, rerankers and every framework adapter get their weights from one registry. Objects
never hold a model themselves: they look it up by :class:`LoadKey` on each call (a dictionary
read), so :func:`release_model` really frees the weights (and GPU memory) and the next call of
any object with that key loads them again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from bge_integrations.core.devices import free_accelerator_memory

T = TypeVar("T")


@dataclass(frozen=True)
class LoadKey:
    """Everything that changes what a load puts in memory.

    Args:
        kind: ``"embedder"`` or ``"reranker"``.
        model: Hub id or local path, as given.
        device: Resolved device string.
        fp16: Whether the weights are half precision.
        revision: Hub revision, or None.
        trust_remote_code: Whether the checkpoint's own code may run.
        options: Further settings built into the loaded object, as sorted pairs.

    """

    kind: Literal["embedder", "reranker"]
    model: str
    device: str
    fp16: bool
    revision: str | None = None
    trust_remote_code: bool = False
    options: tuple[tuple[str, Any], ...] = ()


@dataclass
class _Slot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    value: Any = None
    loaded: bool = False


class ModelRegistry:
    """A thread-safe map from :class:`LoadKey` to a loaded model.

    Two threads asking for the same key at once load it once; loads of different keys run
    concurrently.

    Example:
        >>> registry = ModelRegistry()
        >>> key = LoadKey(kind="embedder", model="m", device="cpu", fp16=False)
        >>> registry.get(key, lambda: object()) is registry.get(key, lambda: object())
        True

    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[LoadKey, _Slot] = {}
        self.load_count = 0
        """How many loads this registry ran (for tests and diagnostics)."""

    def get(self, key: LoadKey, load: Callable[[], T]) -> T:
        """Return the model for key, calling load() first if it is not in memory."""
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if not slot.loaded:
                slot.value = load()
                slot.loaded = True
                with self._lock:
                    self.load_count += 1
                    # A release() during the load dropped the slot: register it again.
                    self._slots[key] = slot
            value: T = slot.value
            return value

    def peek(self, key: LoadKey) -> Any | None:
        """Return the loaded model for key without loading, or None."""
        with self._lock:
            slot = self._slots.get(key)
        return slot.value if slot is not None and slot.loaded else None

    def release(self, key: LoadKey) -> bool:
        """Drop the model for key and free its memory; True if one was loaded."""
        return self._release([key]) == 1

    def clear(self) -> int:
        """Drop every model; return how many were loaded."""
        with self._lock:
            keys = list(self._slots)
        return self._release(keys)

    def _release(self, keys: list[LoadKey]) -> int:
        dropped = 0
        for key in keys:
            with self._lock:
                slot = self._slots.pop(key, None)
            if slot is None:
                continue
            with slot.lock:
                dropped += slot.loaded
                slot.value = None
                slot.loaded = False
        if dropped:
            gc.collect()  # weights are often held in reference cycles; collect once for all keys
            for device in {key.device for key in keys}:
                free_accelerator_memory(device)
        return dropped

    def loaded_keys(self) -> list[LoadKey]:
        """The keys whose models are in memory now."""
        with self._lock:
            return [key for key, slot in self._slots.items() if slot.loaded]


REGISTRY = ModelRegistry()
"""The process-wide registry that every embedder, reranker and adapter shares."""


def clear_model_cache() -> int:
    """Free every model that this package loaded in this process.

    Returns:
        How many models were freed.

    Example:
        >>> from bge_integrations import clear_model_cache
        >>> clear_model_cache() >= 0
        True

    """
    return REGISTRY.clear()


def loaded_models() -> list[LoadKey]:
    """The load keys of the models in memory now, for diagnostics."""
    return REGISTRY.loaded_keys()


__all__ = ["REGISTRY", "LoadKey", "ModelRegistry", "clear_model_cache", "loaded_models"]
