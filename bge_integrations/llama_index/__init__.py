"""LlamaIndex adapter: ``BGEEmbedding`` (an embed model) and ``BGERerank`` (a node postprocessor).

bge-m3: ``BGEM3SparseEmbedding`` (a sparse embed model), ``bge_m3_sparse_fns`` (Qdrant hybrid
search) and ``BGEM3Rerank`` (dense + sparse + ColBERT reranking).

Example:
    >>> from bge_integrations.llama_index import BGEEmbedding, BGERerank
    >>> embed_model = BGEEmbedding("BAAI/bge-small-en-v1.5")
    >>> reranker = BGERerank(model="BAAI/bge-reranker-base", top_n=3)

"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.llama_index needs LlamaIndex: pip install "bge-integrations[llama-index]"'
    raise ImportError(msg) from exc

from bge_integrations.llama_index.embeddings import QUERY_CACHE_COLLECTION, BGEEmbedding
from bge_integrations.llama_index.m3 import (
    M3_SCORE_KEYS,
    BGEM3Rerank,
    BGEM3SparseEmbedding,
    bge_m3_sparse_fns,
    reciprocal_rank_fusion,
)
from bge_integrations.llama_index.postprocessors import RETRIEVAL_SCORE_KEY, BGERerank

__all__ = [
    "M3_SCORE_KEYS",
    "QUERY_CACHE_COLLECTION",
    "RETRIEVAL_SCORE_KEY",
    "BGEEmbedding",
    "BGEM3Rerank",
    "BGEM3SparseEmbedding",
    "BGERerank",
    "bge_m3_sparse_fns",
    "reciprocal_rank_fusion",
]
