"""Device and precision choice: CUDA, then MPS, then CPU; fp16 on accelerators by default."""

from __future__ import annotations

import torch


def resolve_device(device: str | None = None) -> str:
    """Return the device to load on: the given one, else CUDA, then MPS, then CPU.

    Args:
        device: A torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``) or None.

    Returns:
        A normalised device string such as ``"cuda:0"`` or ``"cpu"``.

    Raises:
        ValueError: If ``device`` is not a torch device string, or names a CUDA/MPS device
            that this machine does not have.

    Example:
        >>> resolve_device("cpu")
        'cpu'

    """
    if device is None:
        if torch.cuda.is_available():
            return "cuda:0"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        msg = f"device must be a torch device string such as 'cpu' or 'cuda:0', got {device!r}"
        raise ValueError(msg) from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            msg = f"device={device!r} asks for CUDA, but torch sees no CUDA device"
            raise ValueError(msg)
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            msg = (
                f"device={device!r} asks for CUDA device {parsed.index}, but torch sees {count} "
                f"(cuda:0 to cuda:{count - 1})"
            )
            raise ValueError(msg)
        return f"cuda:{parsed.index if parsed.index is not None else torch.cuda.current_device()}"
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        msg = f"device={device!r} asks for MPS, but torch sees no MPS device"
        raise ValueError(msg)
    return str(parsed)


def check_device_settings(device: str | None, use_fp16: bool | None) -> None:
    """Check what does not depend on this machine, so bad settings fail at construction.

    Whether the named accelerator exists is checked at load time (:func:`resolve_device`),
    so that settings saved on a GPU machine still construct elsewhere.

    Raises:
        ValueError: If ``device`` is not a torch device string, or ``use_fp16=True`` is asked
            for on an explicit CPU device.

    """
    if device is None:
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        msg = f"device must be a torch device string such as 'cpu' or 'cuda:0', got {device!r}"
        raise ValueError(msg) from exc
    if use_fp16 and parsed.type == "cpu":
        msg = f"use_fp16=True needs a CUDA or MPS device, got device={device!r}"
        raise ValueError(msg)


def resolve_fp16(use_fp16: bool | None, device: str) -> bool:
    """Return whether to run in fp16: the given choice, else True on CUDA and False elsewhere.

    Args:
        use_fp16: The user's choice, or None for the default.
        device: A device string as returned by :func:`resolve_device`.

    Raises:
        ValueError: If fp16 is asked for on the CPU, where it is slow and unsupported by
            several kernels.

    """
    device_type = torch.device(device).type
    if use_fp16 is None:
        return device_type == "cuda"
    if use_fp16 and device_type == "cpu":
        msg = f"use_fp16=True needs a CUDA or MPS device, got device={device!r}"
        raise ValueError(msg)
    return use_fp16


def free_accelerator_memory(device: str | None = None) -> None:
    """Return cached accelerator memory to the driver (after a model was dropped, or out of memory).

    Args:
        device: The device whose cache to free; None frees every accelerator's.

    """
    device_type = None if device is None else torch.device(device).type
    if device_type in (None, "cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if device_type in (None, "mps") and torch.backends.mps.is_available():
        torch.mps.empty_cache()


__all__ = ["check_device_settings", "free_accelerator_memory", "resolve_device", "resolve_fp16"]
