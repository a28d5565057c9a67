"""The work behind FlagModel and FlagReranker, on core handles: FlagEmbedding's formats and dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from bge_integrations.compat._devices import run_on_devices
from bge_integrations.core.embedder import BGEEmbedder

Array = NDArray[np.floating[Any]]

_CHUNK = 8192
"""Texts per core call: bounds the Python lists the core returns before they become an array."""


def with_instruction(texts: list[str], instruction: str | None, instruction_format: str) -> list[str]:
    """FlagEmbedding's ``instruction_format.format(instruction, text)``; texts unchanged for None.

    Example:
        >>> with_instruction(["q"], "query: ", "{}{}")
        ['query: q']

    """
    return texts if instruction is None else [instruction_format.format(instruction, text) for text in texts]


def embed(handles: list[BGEEmbedder], texts: list[str], *, single: bool, to_numpy: bool) -> Array | torch.Tensor:
    """Embed texts as they are (the core's documents path), split over the handles' devices.

    Returns FlagEmbedding's result: a float32 array (float16 where the model runs in fp16), with
    one row per text, the first row alone when single, or a torch tensor on the first device.
    """
    if texts:
        array = np.concatenate(run_on_devices(handles, texts, _embed_chunks))
    else:
        array = np.empty((0, handles[0].dimension), dtype=_dtype(handles[0]))
    result = array[0] if single else array
    return result if to_numpy else torch.from_numpy(result).to(handles[0].config.device)


def _dtype(handle: BGEEmbedder) -> type[np.floating[Any]]:
    return np.float16 if handle.config.use_fp16 else np.float32


def _embed_chunks(handle: BGEEmbedder, texts: list[str]) -> Array:
    dtype = _dtype(handle)
    chunks = [texts[start : start + _CHUNK] for start in range(0, len(texts), _CHUNK)]
    return np.concatenate([np.asarray(handle.embed_documents(chunk), dtype=dtype) for chunk in chunks])


def sigmoid(score: float) -> float:
    """FlagEmbedding's sigmoid, in float64: ``float(1 / (1 + np.exp(-x)))``."""
    return float(1 / (1 + np.exp(-score)))


__all__ = ["Array", "embed", "sigmoid", "with_instruction"]
