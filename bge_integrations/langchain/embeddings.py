"""BGEEmbeddings: a LangChain ``Embeddings`` on the core :class:`BGEEmbedder`.

A drop-in replacement for ``HuggingFaceEmbeddings`` and ``HuggingFaceBgeEmbeddings``: the same
field names, with the keys of ``model_kwargs``/``encode_kwargs``/``query_encode_kwargs`` that
mean something here translated onto the core (``_peer_kwargs.py``) and any other key refused with an
error that names it.
"""

from __future__ import annotations

from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import AliasChoices, Field, PrivateAttr, SecretStr, field_validator, model_validator
from typing_extensions import Self

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.configs import EMBEDDER_SETTINGS, passed_through
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.notices import warn_user
from bge_integrations.core.presets import DEFAULT_EMBEDDER, Pooling
from bge_integrations.core.remote import RemoteEmbedder, remote_arguments
from bge_integrations.core.slot import CoreSlot
from bge_integrations.core.vector_output import Precision
from bge_integrations.langchain import _compat as compat
from bge_integrations.langchain._peer_kwargs import translate_embeddings
from bge_integrations.langchain._settings import SettingsModel

_SETTINGS = passed_through(EMBEDDER_SETTINGS, "langchain")
"""Field name -> core argument, for the fields given to the core as they are after the ``*_kwargs`` translation."""


class BGEEmbeddings(SettingsModel, Embeddings):
    """LangChain embeddings with a BGE model: the instruction on queries, none on documents.

    Takes the arguments of ``HuggingFaceEmbeddings`` (``model_name`` or ``model``,
    ``cache_folder``, ``model_kwargs``, ``encode_kwargs``, ``query_encode_kwargs``,
    ``multi_process``, ``show_progress``) and of ``HuggingFaceBgeEmbeddings``
    (``query_instruction``, ``embed_instruction``): each ``*_kwargs`` key that means something
    here is translated onto a setting, any other is refused by name (see docs/langchain.md).
    Unlike them, ``query_instruction`` defaults to None, the model's official instruction (EN or
    ZH v1/v1.5, none for bge-m3), and newlines in documents are kept. Models load on first use
    and are shared by every object configured alike.

    With ``base_url`` (and ``api_key``), a server such as ``bge-integrations serve`` embeds
    instead, queries and documents in their roles: no model loads here, ``client`` is a
    :class:`~bge_integrations.core.remote.RemoteEmbedder`, ``batch_size`` is texts per request,
    and a setting the server owns (``device``, ``query_instruction``...) is refused by name.

    Example:
        >>> from bge_integrations.langchain import BGEEmbeddings
        >>> embeddings = BGEEmbeddings(model_name="BAAI/bge-small-en-v1.5", model_kwargs={"device": "cpu"})
        >>> embeddings.client.config.device
        'cpu'
        >>> len(embeddings.embed_query("where do pandas live?"))  # doctest: +SKIP
        384
        >>> remote = BGEEmbeddings(base_url="http://localhost:8080", api_key="secret")
        >>> remote.embed_query("where do pandas live?")  # doctest: +SKIP

    """

    model_name: str = Field(default=DEFAULT_EMBEDDER, validation_alias=AliasChoices("model_name", "model"))
    """Hub id or local path of a BGE embedding model (``model=`` too, as ``HuggingFaceEmbeddings``)."""
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
    truncate_dim: int | None = Field(default=None, gt=0)
    """Keep the first N dimensions of each vector (Matryoshka), re-normalised if normalised; None: all."""
    precision: Precision = "float32"
    """``"float32"``, or quantised: ``"int8"``, ``"uint8"``, ``"binary"``, ``"ubinary"`` (ints in the lists)."""
    quantization_ranges: list[list[float]] | None = None
    """For ``"int8"``/``"uint8"``: per-dimension minima, then maxima; None: from each call's vectors (not one query)."""
    device: str | None = None
    """``"cuda"``, ``"mps"``, ``"cpu"``...; None picks CUDA, then MPS, then CPU."""
    use_fp16: bool | None = None
    """Half precision; None: on for CUDA, off elsewhere."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass."""
    max_batch_tokens: int | None = Field(default=None, gt=0)
    """Padded tokens (texts x longest text) per forward pass at most; None: 2,048 on the CPU (measured), else none."""
    cache_dir: str | None = None
    """Folder of a persistent embedding cache (texts embedded before are read back); None: none."""
    cache_folder: str | None = None
    """Where hub models are downloaded (as ``HuggingFaceEmbeddings``); None: the hub library's cache."""
    backend: Backend = "torch"
    """What runs the model: ``"torch"``, on the CPU ``"onnx"`` or ``"openvino"``; ``"auto"``: the fastest exact one."""
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
    multi_process: bool = False
    """HuggingFaceEmbeddings compatibility: accepted with a warning; no process pool is started."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceEmbeddings compatibility: ``SentenceTransformer(...)`` arguments (docs/langchain.md)."""
    encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceEmbeddings compatibility: ``encode(...)`` arguments (docs/langchain.md)."""
    query_encode_kwargs: dict[str, Any] = Field(default_factory=dict)
    """HuggingFaceEmbeddings compatibility: ``encode(...)`` arguments for queries (docs/langchain.md)."""
    base_url: str | None = None
    """A BGE server (``bge-integrations serve``) that embeds instead of a local model; None: local."""
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    """The server's API key (``base_url`` only); never dumped nor shown."""

    _slot: CoreSlot[BGEEmbedder | RemoteEmbedder] = PrivateAttr(default_factory=CoreSlot)

    @model_validator(mode="before")
    @classmethod
    def _lift_token(cls, data: Any) -> Any:
        return compat.lift_token(data)

    @field_validator("multi_process")
    @classmethod
    def _warn_multi_process(cls, value: bool) -> bool:
        if value:
            msg = (
                "multi_process=True starts no process pool in BGEEmbeddings: one model in this process embeds "
                "each call in length-sorted batches (concurrent async calls share them). For corpus-scale "
                "embedding on several devices use bge_integrations.bulk or bge_integrations.ray"
            )
            warn_user(msg, UserWarning)
        return value

    @field_validator("model_kwargs")
    @classmethod
    def _replace_ipex(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("backend") == "ipex":  # as HuggingFaceEmbeddings does
            warn_user("model_kwargs['backend']='ipex' is no longer supported; the torch backend is used", UserWarning)
            return {**value, "backend": "torch"}
        return value

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        _ = self.client  # builds the core embedder, which checks the settings together
        return self

    @property
    def client(self) -> BGEEmbedder | RemoteEmbedder:
        """The core :class:`BGEEmbedder` with these settings; with ``base_url``, a :class:`RemoteEmbedder`."""
        if self.base_url is not None:
            return self._slot.get(self._remote_kwargs(), RemoteEmbedder)
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

    def _remote_kwargs(self) -> dict[str, Any]:
        """The :class:`RemoteEmbedder`'s arguments; settings that only the server can honour are refused."""
        return remote_arguments(
            "BGEEmbeddings",
            self.base_url,
            None if self.api_key is None else self.api_key.get_secret_value(),
            self._core_kwargs(),
            BGEEmbedder,
            default_model=DEFAULT_EMBEDDER,
            client_side={"batch_size", "show_progress_bar"},
            names=_NAMES,
        )

    def _core_kwargs(self) -> dict[str, Any]:
        fields = {name: getattr(self, name) for name in _SETTINGS}
        fields["token"] = None if self.token is None else self.token.get_secret_value()
        settings = translate_embeddings(self, fields, self.model_kwargs, self.encode_kwargs, self.query_encode_kwargs)
        kwargs = {core: settings[name] for name, core in _SETTINGS.items()}
        # Not fields: the token (a secret) and what only the peer's model_kwargs keys set.
        kwargs.update(
            token=settings["token"],
            model_kwargs=settings.get("transformers_model_kwargs"),
            tokenizer_kwargs=settings.get("tokenizer_kwargs"),
            config_kwargs=settings.get("config_kwargs"),
            local_files_only=settings.get("local_files_only", False),
        )
        return kwargs


_NAMES = {core: name for name, core in _SETTINGS.items()}
"""Core argument -> field name, for errors."""

__all__ = ["BGEEmbeddings"]
