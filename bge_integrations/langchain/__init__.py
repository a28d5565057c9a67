"""BGE embeddings and rerankers for LangChain.

Example:
    >>> from bge_integrations.langchain import BGEEmbeddings, BGERerank
    >>> embeddings = BGEEmbeddings(model_name="BAAI/bge-small-en-v1.5")
    >>> rerank = BGERerank(model_name="BAAI/bge-reranker-base", top_n=3)

bge-m3's sparse embeddings import their vector store's package on first use:
``BGEM3SparseEmbeddings`` needs langchain-qdrant, ``BGEM3MilvusSparseEmbeddings`` langchain-milvus.

"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

try:
    import langchain_core  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.langchain needs LangChain: pip install "bge-integrations[langchain]"'
    raise ImportError(msg) from exc

from bge_integrations.langchain.compressors import BGERerank
from bge_integrations.langchain.cross_encoders import BGECrossEncoder
from bge_integrations.langchain.embeddings import BGEEmbeddings
from bge_integrations.langchain.m3 import BGEM3Compressor
from bge_integrations.langchain.retrievers import BGERerankRetriever

if TYPE_CHECKING:
    from bge_integrations.langchain.m3_milvus import BGEM3MilvusSparseEmbeddings as BGEM3MilvusSparseEmbeddings
    from bge_integrations.langchain.m3_qdrant import BGEM3SparseEmbeddings as BGEM3SparseEmbeddings

_LAZY = {
    "BGEM3SparseEmbeddings": "bge_integrations.langchain.m3_qdrant",
    "BGEM3MilvusSparseEmbeddings": "bge_integrations.langchain.m3_milvus",
}
"""Classes whose module needs a vector store's package: imported on first access (ImportError names the package)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = ["BGECrossEncoder", "BGEEmbeddings", "BGEM3Compressor", "BGERerank", "BGERerankRetriever"]
