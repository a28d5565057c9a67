"""BGE embeddings and rerankers for LangChain.

Example:
    >>> from bge_integrations.langchain import BGEEmbeddings, BGERerank
    >>> embeddings = BGEEmbeddings(model_name="BAAI/bge-small-en-v1.5")
    >>> rerank = BGERerank(model_name="BAAI/bge-reranker-base", top_n=3)

"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:
    msg = 'bge_integrations.langchain needs LangChain: pip install "bge-integrations[langchain]"'
    raise ImportError(msg) from exc

from bge_integrations.langchain.compressors import BGERerank
from bge_integrations.langchain.cross_encoders import BGECrossEncoder
from bge_integrations.langchain.embeddings import BGEEmbeddings
from bge_integrations.langchain.retrievers import BGERerankRetriever

__all__ = ["BGECrossEncoder", "BGEEmbeddings", "BGERerank", "BGERerankRetriever"]
