"""Options handed through to transformers' ``from_pretrained`` calls: checked, and part of the load key.

``model_kwargs``, ``tokenizer_kwargs`` and ``config_kwargs`` are what sentence-transformers,
LangChain's ``HuggingFaceEmbeddings`` and Haystack's ``SentenceTransformers*`` components take
under those names: extra keyword arguments of the model's, tokenizer's and config's
``from_pretrained`` (``{"attn_implementation": "sdpa"}``, ``{"model_max_length": 256}``, ...).

A key that one of our own settings already governs is not passed on: two places for one
setting would let them disagree. It is refused with the setting to use instead, except the
weights' dtype, which is read as ``use_fp16`` when it agrees (see :func:`dtype_option`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from bge_integrations.core.devices import resolve_fp16

OWNED = {
    "device": "device",
    "device_map": "device",
    "revision": "revision",
    "trust_remote_code": "trust_remote_code",
    "token": "token",
    "use_auth_token": "token",
    "cache_dir": "cache_folder",
    "cache_folder": "cache_folder",
    "local_files_only": "local_files_only",
}
"""Keys of the pass-through options that are settings of ours: the setting to use instead."""

_DTYPE_KEYS = ("dtype", "torch_dtype")
_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def check_options(value: Any, *, name: str, allow_dtype: bool = False) -> dict[str, Any] | None:
    """Return a copy of a pass-through mapping after checking it (None stays None).

    Args:
        value: The mapping given by the user, or None.
        name: Its setting's name, for messages (``"model_kwargs"``...).
        allow_dtype: Whether ``dtype``/``torch_dtype`` may appear (the model's, not the tokenizer's).

    Raises:
        TypeError: If value is not a mapping with string keys.
        ValueError: If a key is one of our own settings (the message names the setting).

    Example:
        >>> check_options({"attn_implementation": "eager"}, name="model_kwargs")
        {'attn_implementation': 'eager'}
        >>> check_options({"device": "cpu"}, name="model_kwargs")
        Traceback (most recent call last):
        ...
        ValueError: model_kwargs['device'] is a setting of its own here: pass device= instead

    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        msg = f"{name} must be a mapping of keyword arguments or None, got {type(value).__name__}: {value!r:.80}"
        raise TypeError(msg)
    for key in value:
        if not isinstance(key, str):
            msg = f"{name} keys must be strings, got {key!r}"
            raise TypeError(msg)
        if key in OWNED:
            msg = f"{name}[{key!r}] is a setting of its own here: pass {OWNED[key]}= instead"
            raise ValueError(msg)
        if key in _DTYPE_KEYS and not allow_dtype:
            msg = f"{name}[{key!r}] is the model's setting: pass use_fp16= (or model_kwargs) instead"
            raise ValueError(msg)
    if allow_dtype:
        dtype_option(value, use_fp16=None)  # checks the value
        if "config" in value:
            msg = f"{name}['config'] is a config object: pass its settings as config_kwargs= instead"
            raise ValueError(msg)
    return dict(value)


def dtype_option(options: Mapping[str, Any] | None, *, use_fp16: bool | None) -> tuple[bool | None, torch.dtype | None]:
    """Read ``dtype``/``torch_dtype`` of model_kwargs against ``use_fp16``.

    Returns ``(use_fp16, other)``: float16 means ``use_fp16=True`` and float32 ``False``;
    ``"auto"`` leaves ``use_fp16`` as given (the checkpoint's dtype is not BGE's concern: None
    still means fp16 on CUDA); bfloat16 is returned as ``other``, the dtype to load with.

    Raises:
        ValueError: If the dtype is none of those, both keys are given, or it contradicts use_fp16.

    Example:
        >>> dtype_option({"torch_dtype": "float16"}, use_fp16=None)
        (True, None)

    """
    given = [key for key in _DTYPE_KEYS if options and key in options]
    if not given:
        return use_fp16, None
    if len(given) > 1:
        msg = "model_kwargs has both 'dtype' and 'torch_dtype'; give one"
        raise ValueError(msg)
    key = given[0]
    raw = options[key] if options else None
    if raw == "auto":
        return use_fp16, None
    dtype = _DTYPES.get(raw) if isinstance(raw, str) else raw
    if dtype not in _DTYPES.values():
        msg = f"model_kwargs[{key!r}] must be 'float16', 'bfloat16', 'float32' or 'auto', got {raw!r}"
        raise ValueError(msg)
    wanted = dtype == torch.float16
    if use_fp16 is not None and use_fp16 != wanted:
        msg = f"model_kwargs[{key!r}]={raw!r} contradicts use_fp16={use_fp16}; give one"
        raise ValueError(msg)
    if dtype == torch.bfloat16:
        return False, torch.bfloat16
    return wanted, None


def resolve_fp16_option(options: Mapping[str, Any] | None, *, use_fp16: bool | None, device: str) -> bool:
    """Whether to run in fp16 on device, with model_kwargs' dtype read as in :func:`dtype_option`.

    Raises:
        ValueError: As :func:`~bge_integrations.core.devices.resolve_fp16`, naming the dtype
            option when float16 came from there.

    """
    wanted, _ = dtype_option(options, use_fp16=use_fp16)
    if wanted and use_fp16 is None and torch.device(device).type == "cpu":
        msg = f"model_kwargs asks for float16 weights, which need a CUDA or MPS device, got device={device!r}"
        raise ValueError(msg)
    return resolve_fp16(wanted, device)


def tokenizer_max_length(options: Mapping[str, Any] | None) -> int | None:
    """``model_max_length`` of tokenizer_kwargs when it is a whole number > 0: read as ``max_length``.

    sentence-transformers and transformers read a tokenizer's ``model_max_length`` as the
    tokens a model reads; here ``max_length`` says that, so an explicit ``max_length`` wins.

    Example:
        >>> tokenizer_max_length({"model_max_length": 256}), tokenizer_max_length(None)
        (256, None)

    """
    value = (options or {}).get("model_max_length")
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and int(value) > 0:
        return int(value)
    return None


def without_dtype(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The options less ``dtype``/``torch_dtype`` (read by :func:`dtype_option` instead)."""
    return {key: value for key, value in (options or {}).items() if key not in _DTYPE_KEYS}


def frozen(options: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """Options as sorted ``(key, repr(value))`` pairs: hashable, for a registry key.

    Example:
        >>> frozen({"b": 1, "a": [2]})
        (('a', '[2]'), ('b', '1'))

    """
    return tuple(sorted((key, repr(value)) for key, value in (options or {}).items()))


def hub_key_options(config: Any) -> tuple[tuple[str, Any], ...]:
    """A config's ``cache_folder`` and pass-through options as load-key pairs (see ``LoadKey.options``)."""
    return (
        ("cache_folder", config.cache_folder),
        ("config_kwargs", frozen(config.config_kwargs)),
        ("model_kwargs", frozen(config.model_kwargs)),
        ("tokenizer_kwargs", frozen(config.tokenizer_kwargs)),
    )


def given_options(config: Any) -> dict[str, tuple[tuple[str, str], ...]]:
    """A config's pass-through options that were given, frozen: for cache and export keys.

    Options not given are left out, so keys made before these options existed still match.

    Example:
        >>> from types import SimpleNamespace
        >>> given_options(SimpleNamespace(model_kwargs={"a": 1}, tokenizer_kwargs=None, config_kwargs={}))
        {'model_kwargs': (('a', '1'),)}

    """
    options = {
        "model_kwargs": config.model_kwargs,
        "tokenizer_kwargs": config.tokenizer_kwargs,
        "config_kwargs": config.config_kwargs,
    }
    return {name: frozen(value) for name, value in options.items() if value}


def check_folder(value: Any, *, name: str) -> str | None:
    """Return a folder setting as an expanded string path (None stays None).

    Raises:
        TypeError: If value is neither a path nor None.

    """
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        msg = f"{name} must be a folder path or None, got {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    return os.path.expanduser(os.fspath(value))


__all__ = [
    "OWNED",
    "check_folder",
    "check_options",
    "dtype_option",
    "frozen",
    "given_options",
    "hub_key_options",
    "resolve_fp16_option",
    "tokenizer_max_length",
    "without_dtype",
]
