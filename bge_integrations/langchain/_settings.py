"""The pydantic base of the adapter's classes, and the reranker settings of BGERerank and BGECrossEncoder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, model_validator
from typing_extensions import Self, override

from bge_integrations.core.configs import RERANKER_SETTINGS, passed_through
from bge_integrations.core.presets import DEFAULT_RERANKER
from bge_integrations.core.remote import RemoteReranker, remote_arguments
from bge_integrations.core.reranker import Aggregation, BGEReranker
from bge_integrations.core.slot import CoreSlot

_CORE_FIELDS = passed_through(RERANKER_SETTINGS, "langchain")
"""Field name -> core argument, for the reranker fields given to the core as they are."""
_CORE_NAMES = {core: name for name, core in _CORE_FIELDS.items()}
"""Core argument -> field name, for errors."""


class SettingsModel(BaseModel):
    """Fields checked on assignment; a rejected assignment leaves the object as it was.

    pydantic runs ``mode="after"`` model validators (here: building the core, which checks the
    settings that depend on each other) after it has stored the new value, and keeps that value
    when they fail. This base puts the previous value back before the error propagates. A shallow
    copy (``model_copy()``) gets empty :class:`CoreSlot` objects, as a deep copy or pickle does, so
    copy and original never rebuild each other's core.

    Example:
        >>> from bge_integrations.langchain import BGERerank
        >>> rerank = BGERerank(device="cpu")
        >>> try:
        ...     rerank.device = "gpu"
        ... except ValueError:
        ...     pass
        >>> rerank.device
        'cpu'

    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            secrets = _secrets(data)
            if not secrets:
                raise
            # pydantic shows the whole input of a failing model validator: never the tokens in it.
            lines = [{**line, "input": _masked(line["input"], secrets)} for line in error.errors()]
            raise ValidationError.from_exception_data(error.title, lines) from None  # type: ignore[arg-type]

    @override
    def __setattr__(self, name: str, value: Any) -> None:
        if name not in type(self).model_fields:
            super().__setattr__(name, value)
            return
        previous = self.__dict__[name]
        fields_set = set(self.__pydantic_fields_set__)
        try:
            super().__setattr__(name, value)
        except Exception:
            self.__dict__[name] = previous
            object.__setattr__(self, "__pydantic_fields_set__", fields_set)
            raise

    @override
    def __copy__(self) -> Self:
        copied = super().__copy__()
        private = copied.__pydantic_private__ or {}
        for name, value in private.items():
            if isinstance(value, CoreSlot):
                private[name] = CoreSlot()
        return copied


_SECRET_KEYS = ("token", "use_auth_token", "api_key")
_MASK = "**********"


def _secrets(data: Any) -> set[str]:
    """The token strings given anywhere in data (under a token key, at any depth)."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in _SECRET_KEYS and isinstance(value, (str, SecretStr)):
                found.add(value if isinstance(value, str) else value.get_secret_value())
            else:
                found |= _secrets(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            found |= _secrets(value)
    return {secret for secret in found if secret}


def _masked(value: Any, secrets: set[str]) -> Any:
    """A copy of value with every string that holds a secret replaced by asterisks."""
    if isinstance(value, str):
        return _MASK if any(secret in value for secret in secrets) else value
    if isinstance(value, Mapping):
        return {key: _masked(item, secrets) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_masked(item, secrets) for item in value)
    return value


class RerankerSettings(SettingsModel):
    """The fields of a BGE reranker; ``client`` is the core :class:`BGEReranker` they make.

    With ``base_url``, ``client`` is a :class:`~bge_integrations.core.remote.RemoteReranker`
    instead: a server scores, no model loads here; ``normalize`` still picks the scale,
    ``batch_size`` is passages per request, and the settings the server owns are refused by name.

    Example:
        >>> RerankerSettings(model_name="BAAI/bge-reranker-base", device="cpu").client.model_name
        'BAAI/bge-reranker-base'

    """

    model_name: str = DEFAULT_RERANKER
    """Hub id or local path of a BGE reranker (a cross-encoder, or an LLM reranker such as bge-reranker-v2-gemma)."""
    max_length: int | None = Field(default=None, gt=0)
    """Tokens per (query, passage) pair; None: 512 for the BGE rerankers."""
    max_query_length: int | None = Field(default=None, gt=0)
    """Tokens of the query kept at most (< ``max_length``); None: three quarters of ``max_length``."""
    windows: bool = True
    """Read long passages as overlapping windows (the best window's score counts); False: only the beginning."""
    window_overlap: int = Field(default=64, ge=0)
    """Tokens shared by consecutive windows."""
    max_windows: int | None = Field(default=None, gt=0)
    """Windows read per passage at most (a longer passage is cut there, counted, warned about); None: all."""
    aggregation: Aggregation = "max"
    """How window scores make a passage's score: ``"max"`` or ``"mean"``."""
    normalize: bool = True
    """Sigmoid scores in 0..1 (True) or raw logits (False)."""
    device: str | None = None
    """``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU."""
    use_fp16: bool | None = None
    """Half precision; None: on for CUDA, off elsewhere."""
    batch_size: int = Field(default=32, gt=0)
    """Pairs (windows) per forward pass."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    trust_remote_code: bool = False
    """Run code shipped with the checkpoint."""
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """Hugging Face token for private or gated models (None: ``HF_TOKEN``); never dumped nor shown."""
    prompt: str | None = None
    """LLM rerankers only: the instruction read after the passage; None: FlagEmbedding's default for the model."""
    cutoff_layers: int | list[int] | None = None
    """Layerwise and lightweight LLM rerankers only: the layers that score (the deepest ranks); None: the last."""
    compress_ratio: int | None = None
    """Lightweight LLM reranker only: passage tokens merged into one (1, 2, 4 or 8); None: FlagEmbedding's default."""
    compress_layers: int | list[int] | None = None
    """Lightweight LLM reranker only: the layers at which passage tokens are merged; None: FlagEmbedding's default."""

    base_url: str | None = None
    """A BGE server (``bge-integrations serve``) that scores instead of a local model; None: local."""
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """The server's API key (``base_url`` only); never dumped nor shown."""

    _slot: CoreSlot[BGEReranker | RemoteReranker] = PrivateAttr(default_factory=CoreSlot)

    @model_validator(mode="after")
    def _check_reranker_settings(self) -> Self:
        _ = self.client  # builds the core reranker, which checks the settings together
        return self

    @property
    def client(self) -> BGEReranker | RemoteReranker:
        """The core :class:`BGEReranker` with these settings; with ``base_url``, a :class:`RemoteReranker`."""
        if self.base_url is not None:
            return self._slot.get(self._remote_settings(), RemoteReranker)
        return self._slot.get(self._core_settings(), BGEReranker)

    def _remote_settings(self) -> dict[str, Any]:
        """The :class:`RemoteReranker`'s arguments; settings that only the server can honour are refused."""
        return remote_arguments(
            type(self).__name__,
            self.base_url,
            None if self.api_key is None else self.api_key.get_secret_value(),
            self._core_settings(),
            BGEReranker,
            default_model=DEFAULT_RERANKER,
            client_side={"normalize", "batch_size", "show_progress_bar"},
            names=_CORE_NAMES,
        )

    def _core_settings(self) -> dict[str, Any]:
        """The keyword arguments of the core reranker (a subclass may add to them)."""
        settings = {core: getattr(self, name) for name, core in _CORE_FIELDS.items()}
        settings["token"] = None if self.token is None else self.token.get_secret_value()
        return settings


__all__ = ["RerankerSettings", "SettingsModel"]
