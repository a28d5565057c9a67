"""LlamaIndex adapter: ``BGEEmbedding`` (an embed model) and ``BGERerank`` (a node postprocessor).

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
from bge_integrations.llama_index.postprocessors import RETRIEVAL_SCORE_KEY, BGERerank

__all__ = ["QUERY_CACHE_COLLECTION", "RETRIEVAL_SCORE_KEY", "BGEEmbedding", "BGERerank"]
