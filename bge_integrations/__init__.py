"""BGE embedders and rerankers for LangChain, LlamaIndex and Haystack, on one shared engine.

Example:
    >>> from bge_integrations import BGEEmbedder, BGEReranker
    >>> embedder = BGEEmbedder("BAAI/bge-small-en-v1.5")
    >>> reranker = BGEReranker("BAAI/bge-reranker-base")

"""

from __future__ import annotations

from bge_integrations.core import (
    BGEEmbedder,
    BGEM3Embedder,
    BGEM3Reranker,
    BGEReranker,
    CacheWarning,
    EmbedderConfig,
    M3RankedText,
    MissingHeadError,
    ModelUnavailableError,
    RankedText,
    RerankerConfig,
    SparseEmbedding,
    TruncationWarning,
    allow_remote_code,
    clear_model_cache,
)

__version__ = "0.1.0"

__all__ = [
    "BGEEmbedder",
    "BGEM3Embedder",
    "BGEM3Reranker",
    "BGEReranker",
    "CacheWarning",
    "EmbedderConfig",
    "M3RankedText",
    "MissingHeadError",
    "ModelUnavailableError",
    "RankedText",
    "RerankerConfig",
    "SparseEmbedding",
    "TruncationWarning",
    "__version__",
    "allow_remote_code",
    "clear_model_cache",
]
