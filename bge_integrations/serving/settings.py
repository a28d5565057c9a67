"""ServerSettings: what ``bge-integrations serve`` serves and the limits it keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bge_integrations.core.validation import check_positive_int

_SERVER_OWNED = ("base_url", "api_key")


@dataclass(frozen=True)
class ServerSettings:
    """The models a server serves and the limits it keeps; plain values, so it pickles (Ray Serve).

    Args:
        model: Embedding model (hub id or local path) for ``/v1/embeddings`` and ``/embed``; a bge-m3
            checkpoint also serves ``/embed_sparse``. None serves no embeddings.
        reranker: Reranker (cross-encoder or LLM reranker) for ``/rerank`` and ``/v1/rerank``; None serves none.
        api_key: When set, every endpoint but ``/health`` needs ``Authorization: Bearer <key>``
            (or ``x-api-key: <key>``), compared in constant time.
        served_model_name: The model name reported to clients (OpenAI ``model``, TEI ``model_id``).
            None: ``model`` (or ``reranker``) as given. Clients may send any model name.
        max_items: Texts per embedding request, or documents per rerank request, at most (413 beyond).
        max_chars: Characters per text (query or document) at most (413 beyond).
        max_request_bytes: Request body size at most (413 beyond).
        max_queue_items: Texts (embeddings) or documents (rerank) admitted and not yet answered,
            across all requests. A request that would go past it gets 429 with ``Retry-After``:
            memory stays bounded under overload.
        max_pending_bytes: Request bodies held at once (being received, parsed or answered), in bytes,
            at most; an upload that would go past it gets 429 with ``Retry-After`` before it is read.
            None: four times ``max_request_bytes``.
        retry_after: Seconds a rejected client is told to wait (``Retry-After``).
        token_encoding: tiktoken encoding that decodes token-id input (what LangChain's
            ``OpenAIEmbeddings`` sends by default: ``cl100k_base``).
        embedder_settings: Keyword arguments of :class:`~bge_integrations.BGEEmbedder` (device,
            batch_size, query_instruction, backend, cache_dir, ...).
        reranker_settings: Keyword arguments of :class:`~bge_integrations.BGEReranker`.

    Example:
        >>> settings = ServerSettings(model="BAAI/bge-small-en-v1.5", reranker="BAAI/bge-reranker-base")
        >>> settings.max_items, settings.served_name
        (2048, 'BAAI/bge-small-en-v1.5')

    """

    model: str | None = None
    reranker: str | None = None
    api_key: str | None = field(default=None, repr=False)
    served_model_name: str | None = None
    max_items: int = 2048
    max_chars: int = 100_000
    max_request_bytes: int = 32 * 1024 * 1024
    max_queue_items: int = 16_384
    max_pending_bytes: int | None = None
    retry_after: int = 1
    token_encoding: str = "cl100k_base"  # noqa: S105 - a tiktoken encoding name
    embedder_settings: dict[str, Any] = field(default_factory=dict)
    reranker_settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model is None and self.reranker is None:
            msg = "ServerSettings needs a model, a reranker or both; got neither"
            raise ValueError(msg)
        for name in ("max_items", "max_chars", "max_request_bytes", "max_queue_items", "retry_after"):
            check_positive_int(getattr(self, name), name=name)
        check_positive_int(self.max_pending_bytes, name="max_pending_bytes", allow_none=True)
        if self.max_pending_bytes is not None and self.max_pending_bytes < self.max_request_bytes:
            msg = (
                f"max_pending_bytes ({self.max_pending_bytes}) must be at least max_request_bytes "
                f"({self.max_request_bytes}): otherwise a request within max_request_bytes could never be read"
            )
            raise ValueError(msg)
        if self.max_queue_items < self.max_items:
            msg = (
                f"max_queue_items ({self.max_queue_items}) must be at least max_items ({self.max_items}): "
                "otherwise a request within max_items could never be admitted"
            )
            raise ValueError(msg)
        if self.api_key is not None and not self.api_key.strip():
            msg = "api_key must be a non-empty string or None, got an empty string"
            raise ValueError(msg)
        for name in ("embedder_settings", "reranker_settings"):
            owned = sorted(set(getattr(self, name)) & {"model_name", *_SERVER_OWNED})
            if owned:
                msg = f"{name} cannot set {owned}: the server sets the model itself"
                raise ValueError(msg)

    @property
    def pending_bytes(self) -> int:
        """The effective ``max_pending_bytes``."""
        return 4 * self.max_request_bytes if self.max_pending_bytes is None else self.max_pending_bytes

    @property
    def served_name(self) -> str:
        """The model name the server reports."""
        name = self.served_model_name or self.model or self.reranker
        assert name is not None  # noqa: S101 - __post_init__ requires one
        return name


__all__ = ["ServerSettings"]
