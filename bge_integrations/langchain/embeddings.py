"""BGEEmbeddings: a LangChain ``Embeddings`` on the core :class:`BGEEmbedder`.

A drop-in replacement for ``HuggingFaceBgeEmbeddings``: the same field names, with the keys of
``model_kwargs``/``encode_kwargs`` that the core understands translated onto it and any other
key refused with an error that names it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import Field, PrivateAttr, SecretStr, model_validator
from typing_extensions import Self

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.presets import DEFAULT_EMBEDDER, Pooling
from bge_integrations.core.slot import CoreSlot
from bge_integrations.langchain._settings import SettingsModel

_MODEL_KWARGS = {"device": "device", "revision": "revision", "trust_remote_code": "trust_remote_code"}
_ENCODE_KWARGS = {"batch_size": "batch_size", "normalize_embeddings": "normalize", "show_progress_bar": "show_progress"}
_TRANSLATED = (*_MODEL_KWARGS.values(), *_ENCODE_KWARGS.values())
"""The fields that a model_kwargs or encode_kwargs key may set (HuggingFaceBgeEmbeddings' way)."""


class BGEEmbeddings(SettingsModel, Embeddings):
    """LangChain embeddings with a BGE model: the instruction on queries, none on documents.

    Unlike ``HuggingFaceBgeEmbeddings``, ``query_instruction`` defaults to None, which picks the
    model's official instruction (EN or ZH v1/v1.5, none for bge-m3) instead of one fixed
    English string, and newlines in documents are kept. Settings are fields; the
    ``model_kwargs``/``encode_kwargs`` keys of ``HuggingFaceBgeEmbeddings`` that map onto them
    are accepted too. Models load on first use and are shared by every object configured alike.

    Example:
        >>> from bge_integrations.langchain import BGEEmbeddings
        >>> embeddings = BGEEmbeddings(model_name="BAAI/bge-small-en-v1.5", device="cpu")
        >>> vector = embeddings.embed_query("where do pandas live?")  # doctest: +SKIP
        >>> len(vector)  # doctest: +SKIP
        384

    """

    model_name: str = DEFAULT_EMBEDDER
    """Hub id or local path of a BGE embedding model."""
    query_instruction: str | None = None
    """Prefix for queries. None: the model's official one (HuggingFaceBgeEmbeddings: a fixed EN string)."""
    embed_instruction: str = ""
    """Prefix for documents; BGE uses none."""
    pooling: Pooling | None = None
    """``"cls"``, ``"mean"`` or ``"lasttoken"``; None: the model's own (CLS for BGE)."""
    normalize: bool | None = None
    """L2-normalise the vectors; None: the model's own (True for BGE)."""
    max_length: int | None = Field(default=None, gt=0)
    """Tokens read per text; None: the model's (512 for BGE v1/v1.5, 8192 for bge-m3)."""
    device: str | None = None
    """``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU."""
    use_fp16: bool | None = None
    """Half precision; None: on for CUDA, off elsewhere."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass."""
    max_batch_tokens: int | None = Field(default=None, gt=0)
    """Padded tokens (texts x longest text) per forward pass at most; None: only ``batch_size``."""
    cache_dir: str | None = None
    """Folder of a persistent embedding cache (texts embedded before are read back); None: none."""
    backend: Backend = "torch"
    """What runs the model: ``"torch"``, or on the CPU ``"onnx"`` (ONNX Runtime) or ``"openvino"``."""
    backend_precision: BackendPrecision | None = None
    """``"fp32"`` (None), ``"int8"`` with ``"onnx"``, ``"bf16"`` with ``"openvino"``; None with torch."""
    backend_dir: str | None = None
    """Folder of the exported ONNX graphs; None: ``~/.cache/bge_integrations/backends``."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    trust_remote_code: bool = False
    """Run code shipped with the checkpoint."""
    token: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """Hugging Face token for private or gated models (None: ``HF_TOKEN``); never dumped nor shown."""
    show_progress: bool = False
    """Show a progress bar while embedding."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceBgeEmbeddings compatibility: ``device``, ``revision``, ``trust_remote_code``."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceBgeEmbeddings compatibility: ``batch_size``, ``normalize_embeddings``, ``show_progress_bar``."""

    _slot: CoreSlot[BGEEmbedder] = PrivateAttr(default_factory=CoreSlot)

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        _ = self.client  # builds the core embedder, which checks the settings together
        return self

    @property
    def client(self) -> BGEEmbedder:
        """The core :class:`BGEEmbedder` with these settings (``config``, ``dimension``, ``warm_up()``)."""
        return self._slot.get(self._core_kwargs(), BGEEmbedder)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (no query instruction): one list of floats per text, [] for []."""
        return self.client.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query, prefixed with the query instruction."""
        return self.client.embed_query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async :meth:`embed_documents`: off the event loop; concurrent calls share model batches."""
        return await self.client.aembed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        """Async :meth:`embed_query`: off the event loop; concurrent calls share model batches."""
        return await self.client.aembed_query(text)

    def _core_kwargs(self) -> dict[str, Any]:
        fields: dict[str, Any] = {field: getattr(self, field) for field in _TRANSLATED}
        self._merge(self.model_kwargs, _MODEL_KWARGS, "model_kwargs", fields)
        self._merge(self.encode_kwargs, _ENCODE_KWARGS, "encode_kwargs", fields)
        return {
            "model_name": self.model_name,
            "query_instruction": self.query_instruction,
            "document_instruction": self.embed_instruction,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "use_fp16": self.use_fp16,
            "device": fields["device"],
            "revision": fields["revision"],
            "trust_remote_code": fields["trust_remote_code"],
            "token": None if self.token is None else self.token.get_secret_value(),
            "batch_size": fields["batch_size"],
            "normalize": fields["normalize"],
            "show_progress_bar": fields["show_progress"],
            "max_batch_tokens": self.max_batch_tokens,
            "cache_dir": self.cache_dir,
            "backend": self.backend,
            "backend_precision": self.backend_precision,
            "backend_dir": self.backend_dir,
        }

    def _merge(self, given: dict[str, Any], table: dict[str, str], what: str, fields: dict[str, Any]) -> None:
        unknown = sorted(set(given) - set(table))
        if unknown:
            msg = (
                f"{what} keys {unknown} cannot be honoured by BGEEmbeddings; "
                f"it understands {sorted(table)} (other settings are fields of BGEEmbeddings)"
            )
            raise ValueError(msg)
        for key, field in table.items():
            if key not in given:
                continue
            if field in self.model_fields_set and getattr(self, field) != given[key]:
                msg = f"{what}[{key!r}]={given[key]!r} contradicts {field}={getattr(self, field)!r}; give one"
                raise ValueError(msg)
            fields[field] = given[key]


__all__ = ["BGEEmbeddings"]
