"""BGEM3MilvusSparseEmbeddings: bge-m3's lexical weights for langchain-milvus (``{token id: weight}``).

Needs langchain-milvus (``pip install langchain-milvus``); ``bge_integrations.langchain`` imports
this module only when :class:`BGEM3MilvusSparseEmbeddings` is first asked for.
"""

from __future__ import annotations

try:
    from langchain_milvus.utils.sparse import BaseSparseEmbedding
except ImportError as exc:
    msg = "BGEM3MilvusSparseEmbeddings needs langchain-milvus: pip install langchain-milvus"
    raise ImportError(msg) from exc

from typing_extensions import override

from bge_integrations.langchain.m3 import M3EmbedderSettings


class BGEM3MilvusSparseEmbeddings(M3EmbedderSettings, BaseSparseEmbedding):
    """bge-m3's sparse (lexical) weights as langchain-milvus's ``BaseSparseEmbedding``: ``{token id: weight}``.

    Give it to ``langchain_milvus.Milvus`` with a dense embedding for hybrid search
    (``embedding_function=[dense, sparse]``, a ``SPARSE_INVERTED_INDEX`` with metric ``"IP"``:
    Milvus then scores by bge-m3's lexical score, the dot product of the weights). Each dict is
    the core's :class:`~bge_integrations.core.m3_types.SparseEmbedding` ``.as_dict()``: ids in
    first-weighted order, weights all > 0. The model loads on first use and is shared with
    ``BGEEmbeddings(model_name="BAAI/bge-m3")`` and every bge-m3 object configured alike.

    Example:
        >>> from bge_integrations.langchain import BGEEmbeddings, BGEM3MilvusSparseEmbeddings
        >>> dense = BGEEmbeddings(model_name="BAAI/bge-m3", device="cpu")
        >>> sparse = BGEM3MilvusSparseEmbeddings(model_name="BAAI/bge-m3", device="cpu")
        >>> sparse.embed_query("what do pandas eat?")  # doctest: +SKIP
        {1733: 0.1, 83: 0.05, ...}

    """

    @override
    def embed_query(self, query: str) -> dict[int, float]:
        """Lexical weights of one query: ``{token id: weight}``."""
        return self.client.embed_sparse_query(query).as_dict()

    @override
    def embed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Lexical weights of documents: one ``{token id: weight}`` per text, in input order; [] for []."""
        return [sparse.as_dict() for sparse in self.client.embed_sparse_documents(texts)]

    @override
    async def aembed_query(self, query: str) -> dict[int, float]:
        """Async :meth:`embed_query`: off the event loop; concurrent calls share model batches."""
        return (await self.client.aembed_sparse_query(query)).as_dict()

    @override
    async def aembed_documents(self, texts: list[str]) -> list[dict[int, float]]:
        """Async :meth:`embed_documents`: off the event loop; concurrent calls share model batches."""
        return [sparse.as_dict() for sparse in await self.client.aembed_sparse_documents(texts)]


__all__ = ["BGEM3MilvusSparseEmbeddings"]
