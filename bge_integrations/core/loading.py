"""One loaded model per set of load parameters, shared by every object in the process.

Embedders, rerankers and every framework adapter get their weights from one registry. Objects
never hold a model themselves: they look it up by :class:`LoadKey` on each call (a dictionary
read), so :func:`release_model` really frees the weights (and GPU memory) and the next call of
any object with that key loads them again.

Every load goes through :meth:`ModelRegistry.get`, which is also where a model that cannot be
had (no folder at the path given, a hub id neither cached nor downloadable) becomes one
:class:`ModelUnavailableError` naming it, instead of the hub's multi-screen traceback.

``trust_remote_code`` is off unless set in code: settings read back from a file (a Haystack
YAML, a LlamaIndex ``to_dict``/``to_json``) may not switch it on; :func:`check_serialized_remote_code`
refuses them, outside an :func:`allow_remote_code` block (the LlamaIndex classes also check
``model_validate``, ``model_validate_json``, ``model_validate_strings`` and ``model_construct``).
"""

from __future__ import annotations

import gc
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from bge_integrations.core.devices import free_accelerator_memory

T = TypeVar("T")

MODEL_LOAD_LOCK = threading.RLock()
"""Held around every transformers ``from_pretrained`` of a model in this package.

transformers 5 loads a model with ``PreTrainedModel.tie_weights`` swapped out on the class
(``initialization.no_tie_weights``) and put back after; two loads in two threads can put back the
swapped-out one, which leaves tying off for the rest of the process, and every later model with
tied weights (Gemma's output head) with a missing head. Loads of different models are serialised
so that this cannot happen through this package.
"""


@dataclass(frozen=True)
class LoadKey:
    """Everything that changes what a load puts in memory.

    Args:
        kind: ``"embedder"``, ``"reranker"``, or ``"m3-heads"`` (bge-m3's sparse and ColBERT heads,
            kept beside the encoder, which is an ``"embedder"``).
        model: Hub id or local path, as given.
        device: Resolved device string.
        fp16: Whether the weights are half precision.
        revision: Hub revision, or None.
        trust_remote_code: Whether the checkpoint's own code may run.
        options: Further settings built into the loaded object, as sorted pairs.

    """

    kind: Literal["embedder", "reranker", "m3-heads"]
    model: str
    device: str
    fp16: bool
    revision: str | None = None
    trust_remote_code: bool = False
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_flag(self.trust_remote_code, name="trust_remote_code")


def check_flag(value: Any, *, name: str) -> bool:
    """Return value after checking that it is True or False.

    A string such as ``"false"`` (from a hand-written file) is truthy: passed on as
    ``trust_remote_code``, it would switch remote code on.

    Raises:
        TypeError: Naming the setting and the value.

    Example:
        >>> check_flag("false", name="trust_remote_code")
        Traceback (most recent call last):
        ...
        TypeError: trust_remote_code must be True or False, got str: 'false'

    """
    if not isinstance(value, bool):
        msg = f"{name} must be True or False, got {type(value).__name__}: {value!r}"
        raise TypeError(msg)
    return value


def check_token(token: Any) -> str | None:
    """Return a Hugging Face access token after checking it; errors never show its value.

    Raises:
        TypeError: If token is neither a string nor None.
        ValueError: If token is an empty or blank string.

    Example:
        >>> check_token(None) is None
        True

    """
    if token is None:
        return None
    if not isinstance(token, str):
        msg = f"token must be a string or None, got {type(token).__name__}"
        raise TypeError(msg)
    if not token.strip():
        msg = "token must not be empty; pass None to use HF_TOKEN or the saved login"
        raise ValueError(msg)
    return token


class ModelUnavailableError(OSError):
    """A model's files cannot be had: no folder at that path, or a hub id neither cached nor downloadable.

    A hub id cannot be downloaded when the hub is unreachable, offline mode is on, there is no
    such repository, or the process has no access to it. The message names the model and the
    fix, on one line. The hub's own error stays available as ``__context__`` (not printed: the
    error is raised ``from None``).

    Example:
        >>> from bge_integrations import BGEEmbedder
        >>> BGEEmbedder("/no/such/folder", device="cpu").embed_query("hi")
        Traceback (most recent call last):
        ...
        bge_integrations.core.loading.ModelUnavailableError: no model folder at '/no/such/folder'; ...

    """


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
                try:
                    slot.value = load()
                except Exception as error:
                    clear = explain_unavailable(key.model, error)
                    if clear is None:
                        raise
                    raise clear from None
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


def explain_unavailable(
    model: str, error: BaseException, *, cache_dir: str | None = None
) -> ModelUnavailableError | None:
    """One clear error for a model whose files cannot be had, or None when error is something else.

    Args:
        model: The hub id or local path that was asked for.
        error: What loading it raised.
        cache_dir: The hub cache that was looked in; None: the standard one (``HF_HUB_CACHE``).

    Returns:
        A :class:`ModelUnavailableError` naming model and the fix when model is a path with no
        folder there, or a hub id that is not cached and cannot be downloaded (offline mode,
        hub unreachable, no such repository, no access); None otherwise (a folder that exists
        but does not load, a bad setting...), so that the real error surfaces unchanged.

    Example:
        >>> str(explain_unavailable("/no/such/folder", OSError("hub traceback"))).split(";")[0]
        "no model folder at '/no/such/folder'"
        >>> explain_unavailable("BAAI/bge-small-en-v1.5", ValueError("bad setting")) is None
        True

    """
    path = Path(model).expanduser()
    if path.is_dir():
        return None  # a folder is there: its own error (a missing config, bad weights) says more
    if path.exists():
        return ModelUnavailableError(f"model {model!r} is a file; pass a model folder or a hub id")
    if _looks_like_path(model):
        where = "" if path.is_absolute() else f" (looked in {str(path.resolve())!r})"
        msg = f"no model folder at {model!r}{where}; pass an existing folder, or a hub id like 'BAAI/bge-small-en-v1.5'"
        return ModelUnavailableError(msg)
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = _error_chain(error)
    texts = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, GatedRepoError) for e in chain):
        msg = (
            f"hub model {model!r} is gated or private and this process has no access: accept its terms "
            "on huggingface.co and set HF_TOKEN (or pass token=)"
        )
        return ModelUnavailableError(msg)
    if any(isinstance(e, RevisionNotFoundError) for e in chain):
        return ModelUnavailableError(f"hub model {model!r} has no such revision: {error}".splitlines()[0])
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        msg = (
            f"{model!r} is neither a local folder nor a model on the Hugging Face hub "
            "(a private one needs HF_TOKEN, or token=)"
        )
        return ModelUnavailableError(msg)
    unreachable = any(isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError)) for e in chain)
    unreachable = unreachable or any(
        phrase in texts for phrase in ("couldn't connect", "could not connect", "offline mode", "connection error")
    )
    if not unreachable:
        return None
    offline = constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE
    why = "HF_HUB_OFFLINE=1 forbids downloading it" if offline else "the Hugging Face hub cannot be reached"
    msg = (
        f"{model!r} is no local folder and, as a hub model, not in the local Hugging Face cache "
        f"({cache_dir or constants.HF_HUB_CACHE}), and {why}: download it where the hub is reachable, or pass a "
        "local model folder"
    )
    return ModelUnavailableError(msg)


def _looks_like_path(model: str) -> bool:
    """Whether model can only be a filesystem path, not a hub id (``org/name`` or ``name``)."""
    if model.startswith((".", "~", "/", "\\")) or "\\" in model or os.sep in model.replace("/", ""):
        return True
    if model.count("/") > 1 or (len(model) > 1 and model[1] == ":"):  # deeper than org/name, a Windows drive
        return True
    return _HUB_ID.fullmatch(model) is None or "--" in model or ".." in model


def _error_chain(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain and len(chain) < 20:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_HUB_ID = re.compile(r"(?:[\w.-]+/)?[\w.-]{1,96}")
"""A hub repository id as ``huggingface_hub`` accepts it: ``name`` or ``org/name``, letters, digits, ``-_.``."""

_REMOTE_CODE_OPT_IN: ContextVar[bool] = ContextVar("bge_allow_remote_code", default=False)


@contextmanager
def allow_remote_code() -> Iterator[None]:
    """Let settings read back from a file keep ``trust_remote_code=True``, inside this block only.

    ``trust_remote_code=True`` runs Python code that comes with the checkpoint. Set in code, it is
    honoured; read back from a serialized form (a Haystack pipeline YAML, a LlamaIndex
    ``to_dict``/``to_json``), it is refused unless the loading code opts in here. Pickles keep
    the object as it was: unpickling data runs code anyway, so only trusted pickles may be loaded.

    Example:
        >>> from bge_integrations.llama_index import BGEEmbedding
        >>> saved = BGEEmbedding(model_name="BAAI/bge-m3", trust_remote_code=True).to_json()
        >>> BGEEmbedding.from_json(saved)
        Traceback (most recent call last):
        ...
        ValueError: BGEEmbedding: serialized settings ask for trust_remote_code=True, which would run code ...
        >>> with allow_remote_code():  # likewise around Haystack's Pipeline.loads(yaml_text)
        ...     embedding = BGEEmbedding.from_json(saved)
        >>> embedding.trust_remote_code
        True

    """
    token = _REMOTE_CODE_OPT_IN.set(True)
    try:
        yield
    finally:
        _REMOTE_CODE_OPT_IN.reset(token)


def check_serialized_remote_code(owner: str, settings: Mapping[str, Any]) -> None:
    """Refuse serialized settings that would switch ``trust_remote_code`` on, unless allowed.

    Looks at every ``trust_remote_code`` key, also inside nested dictionaries and lists (such as
    ``model_kwargs``). A value other than False or None is refused (``"false"`` included: a
    non-empty string is true to transformers), outside an :func:`allow_remote_code` block.

    Args:
        owner: The class being deserialized, named in the error.
        settings: The serialized settings (a Haystack component's ``init_parameters``, a
            LlamaIndex ``to_dict()``).

    Raises:
        ValueError: Naming where the setting was found and the ways to opt in.

    Example:
        >>> check_serialized_remote_code("BGEEmbedding", {"trust_remote_code": False})
        >>> check_serialized_remote_code("BGEEmbedding", {"model_kwargs": {"trust_remote_code": True}})
        Traceback (most recent call last):
        ...
        ValueError: BGEEmbedding: serialized settings ask for model_kwargs.trust_remote_code=True, ...

    """
    found = _remote_code_settings(settings, "")
    if not found:
        return
    where, value = found[0]
    if _REMOTE_CODE_OPT_IN.get() and isinstance(value, bool):
        return
    msg = (
        f"{owner}: serialized settings ask for {where}={value!r}, which would run code shipped with the "
        "model; settings read from a file never switch it on. Load them inside "
        "`with bge_integrations.core.loading.allow_remote_code():`, or set trust_remote_code=True in code"
    )
    raise ValueError(msg)


def _remote_code_settings(value: Any, where: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if key == "trust_remote_code" and item is not None and item is not False:
                found.append((path, item))
            found.extend(_remote_code_settings(item, path))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found.extend(_remote_code_settings(item, f"{where}[{index}]"))
    return found


__all__ = [
    "REGISTRY",
    "LoadKey",
    "ModelRegistry",
    "ModelUnavailableError",
    "allow_remote_code",
    "check_flag",
    "check_serialized_remote_code",
    "check_token",
    "clear_model_cache",
    "explain_unavailable",
    "loaded_models",
]
