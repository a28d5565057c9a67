"""BGEM3SparseEmbeddings: bge-m3's lexical weights as langchain-qdrant sparse vectors (hybrid search).

Needs langchain-qdrant (``pip install langchain-qdrant``); ``bge_integrations.langchain`` imports
this module only when :class:`BGEM3SparseEmbeddings` is first asked for.
"""

from __future__ import annotations

try:
    from langchain_qdrant import SparseEmbeddings, SparseVector
except ImportError as exc:
    msg = "BGEM3SparseEmbeddings needs langchain-qdrant: pip install langchain-qdrant"
    raise ImportError(msg) from exc

from typing_extensions import override

from bge_integrations.core.m3_types import SparseEmbedding
from bge_integrations.langchain.m3 import M3EmbedderSettings


class BGEM3SparseEmbeddings(M3EmbedderSettings, SparseEmbeddings):
    """bge-m3's sparse (lexical) weights for ``QdrantVectorStore``'s sparse and hybrid retrieval.

    Each text becomes a ``langchain_qdrant.SparseVector``: the token ids that got a weight
    (``indices``, distinct, in first-weighted order) and their weights (``values``, all > 0), the
    core's :class:`~bge_integrations.core.m3_types.SparseEmbedding` as it is. Qdrant scores a
    sparse query by the dot product of the weights, bge-m3's lexical score. bge-m3 has no query
    instruction, so queries and documents are encoded alike. The model loads on first use and is
    shared with ``BGEEmbeddings(model_name="BAAI/bge-m3")`` and every bge-m3 object configured
    alike: the dense and sparse sides of a hybrid store hold one copy of the weights.

    Example:
        >>> from langchain_qdrant import QdrantVectorStore, RetrievalMode
        >>> from bge_integrations.langchain import BGEEmbeddings, BGEM3SparseEmbeddings
        >>> dense = BGEEmbeddings(model_name="BAAI/bge-m3", device="cpu")
        >>> sparse = BGEM3SparseEmbeddings(model_name="BAAI/bge-m3", device="cpu")
        >>> store = QdrantVectorStore.from_texts(
        ...     ["Pandas eat bamboo.", "Paris is in France."],
        ...     embedding=dense,
        ...     sparse_embedding=sparse,
        ...     retrieval_mode=RetrievalMode.HYBRID,
        ...     location=":memory:",
        ... )  # doctest: +SKIP
        >>> store.similarity_search("what do pandas eat?", k=1)[0].page_content  # doctest: +SKIP
        'Pandas eat bamboo.'

    """

    @override
    def embed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Lexical weights of documents: one ``SparseVector`` per text, in input order; [] for []."""
        return [_vector(sparse) for sparse in self.client.embed_sparse_documents(texts)]

    @override
    def embed_query(self, text: str) -> SparseVector:
        """Lexical weights of one query."""
        return _vector(self.client.embed_sparse_query(text))

    @override
    async def aembed_documents(self, texts: list[str]) -> list[SparseVector]:
        """Async :meth:`embed_documents`: off the event loop; concurrent calls share model batches."""
        return [_vector(sparse) for sparse in await self.client.aembed_sparse_documents(texts)]

    @override
    async def aembed_query(self, text: str) -> SparseVector:
        """Async :meth:`embed_query`: off the event loop; concurrent calls share model batches."""
        return _vector(await self.client.aembed_sparse_query(text))


def _vector(sparse: SparseEmbedding) -> SparseVector:
    return SparseVector(indices=list(sparse.indices), values=list(sparse.values))


__all__ = ["BGEM3SparseEmbeddings"]
