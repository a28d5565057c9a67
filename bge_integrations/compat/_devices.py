"""FlagEmbedding's ``devices``: one core handle per device, work split over devices in threads.

FlagEmbedding runs one process per device. Here each device gets its own core handle (and its
own copy of the weights, from the shared registry); a call's inputs are cut into one contiguous
chunk per device, run in threads: torch releases the GIL in the forward pass.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import torch

from bge_integrations.core.devices import resolve_device
from bge_integrations.core.handle import ModelHandle
from bge_integrations.core.loading import REGISTRY

H = TypeVar("H", bound=ModelHandle)
X = TypeVar("X")
R = TypeVar("R")

DeviceSpec = str | int | Sequence[str] | Sequence[int] | None
"""``"cuda:0"``, ``0``, ``["cuda:0", "cuda:1"]``, ``[0, 1]``, or None for every GPU (else MPS, else CPU)."""

_UNKNOWN_CHECKPOINT = ".*has no sentence-transformers config and is not a known BGE model"
"""The core's warning for an unrecognised plain checkpoint. It is about the core's automatic query
instruction, which the compat classes never use (FlagEmbedding's instructions are explicit)."""


def target_devices(devices: DeviceSpec) -> list[str]:
    """Resolve FlagEmbedding's ``devices`` to distinct device strings (``"cuda"`` = ``"cuda:0"``).

    Raises:
        ValueError: If devices is of another type or empty, or names a device this machine lacks.

    Example:
        >>> target_devices("cpu")
        ['cpu']

    """
    if devices is None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        names = [f"cuda:{i}" for i in range(count)] or [resolve_device(None)]
    elif isinstance(devices, (str, int)) and not isinstance(devices, bool):
        names = [_device_name(devices)]
    elif (
        isinstance(devices, Sequence)
        and len(devices) > 0
        and all(isinstance(d, (str, int)) and not isinstance(d, bool) for d in devices)
    ):
        names = [_device_name(d) for d in devices]
    else:
        msg = f"devices must be a device string, a GPU index, or a non-empty list of them, got {devices!r}"
        raise ValueError(msg)
    return list(dict.fromkeys(resolve_device(name) for name in names))


def _device_name(device: str | int) -> str:
    return device if isinstance(device, str) else f"cuda:{device}"


class Handles(Generic[H]):
    """Core handles, one per device and set of settings, made once and loaded in the calling thread.

    ``use_fp16`` follows FlagEmbedding: ignored (fp32) on the CPU.

    Example:
        >>> from bge_integrations import BGEEmbedder
        >>> handles = Handles(BGEEmbedder)
        >>> handles.get(["cpu"], use_fp16=True, model_name="BAAI/bge-small-en-v1.5")  # doctest: +SKIP

    """

    def __init__(self, make: Callable[..., H]) -> None:
        self._make = make
        self._made: dict[tuple[tuple[str, Any], ...], H] = {}

    def get(self, devices: Sequence[str], *, use_fp16: bool, **settings: Any) -> list[H]:
        """The handle of every device for these settings, with its model loaded."""
        handles = []
        for device in devices:
            options = {**settings, "device": device, "use_fp16": bool(use_fp16) and torch.device(device).type != "cpu"}
            key = tuple(sorted(options.items()))
            if key not in self._made:
                self._made[key] = self._make(**options)
            handles.append(self._made[key])
        cold = [handle for handle in handles if REGISTRY.peek(handle.load_key) is None]
        if cold:  # load here, not in worker threads: warning filters are process-wide
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_UNKNOWN_CHECKPOINT, category=UserWarning)
                for handle in cold:
                    handle.warm_up()
        return handles

    def release(self) -> None:
        """Free the models of every handle made so far."""
        for handle in self._made.values():
            handle.release()


def run_on_devices(handles: Sequence[H], items: Sequence[X], work: Callable[[H, list[X]], R]) -> list[R]:
    """Run work on one contiguous chunk of items per handle; results in chunk order.

    One handle (or one item): in the calling thread. Several: one thread per chunk.
    """
    if len(handles) == 1 or len(items) <= 1:
        return [work(handles[0], list(items))]
    size = math.ceil(len(items) / len(handles))
    chunks = [list(items[start : start + size]) for start in range(0, len(items), size)]
    with ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="bge-compat") as pool:
        return list(pool.map(work, handles[: len(chunks)], chunks))


__all__ = ["DeviceSpec", "Handles", "run_on_devices", "target_devices"]
