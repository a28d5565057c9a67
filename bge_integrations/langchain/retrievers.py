"""BGERerankRetriever: any retriever's candidates, reranked by a BGE reranker.

What ``ContextualCompressionRetriever(base_compressor=BGERerank(...), base_retriever=...)``
does, without needing langchain-classic: build it with ``BGERerank(...).as_retriever(base, k=20)``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever, RetrieverLike
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever
from pydantic import BaseModel, ConfigDict
from typing_extensions import override

from bge_integrations.core.validation import check_positive_int, check_text


class BGERerankRetriever(BaseRetriever):
    """Retrieves candidates with ``base_retriever``, then reranks them with ``reranker``.

    Returns what the reranker keeps of the candidates: with ``BGERerank``, its ``top_n``
    best, best first, each a copy with ``metadata["relevance_score"]``; any LangChain
    ``BaseDocumentCompressor`` is taken as the reranker. Sync and async; callbacks and extra
    invoke arguments reach the base retriever, whose run is a child of this one.

    Example:
        >>> from langchain_core.vectorstores import InMemoryVectorStore
        >>> from bge_integrations.langchain import BGEEmbeddings, BGERerank
        >>> store = InMemoryVectorStore(BGEEmbeddings(device="cpu"))
        >>> ids = store.add_texts(["Pandas eat bamboo.", "Paris is in France."])  # doctest: +SKIP
        >>> retriever = BGERerank(top_n=1, device="cpu").as_retriever(store, k=20)
        >>> retriever.invoke("what do pandas eat?")[0].page_content  # doctest: +SKIP
        'Pandas eat bamboo.'

    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    base_retriever: RetrieverLike
    """Where the candidates come from: any retriever or runnable returning documents."""
    reranker: BaseDocumentCompressor
    """Reranks the candidates and keeps the best (a ``BGERerank``: its ``top_n``)."""

    @override
    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        check_text(query, name="query")  # before the base retriever sees it
        docs = self.base_retriever.invoke(query, config={"callbacks": run_manager.get_child()}, **kwargs)
        if not docs:
            return []
        return list(self.reranker.compress_documents(docs, query, callbacks=run_manager.get_child()))

    @override
    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        check_text(query, name="query")  # before the base retriever sees it
        docs = await self.base_retriever.ainvoke(query, config={"callbacks": run_manager.get_child()}, **kwargs)
        if not docs:
            return []
        return list(await self.reranker.acompress_documents(docs, query, callbacks=run_manager.get_child()))


def with_k(base: RetrieverLike | VectorStore, k: int | None) -> RetrieverLike:
    """Return base as a retriever of k documents; base itself is never changed.

    Args:
        base: A vector store, a ``VectorStoreRetriever``, a retriever with a ``k`` field, or
            (with k None) any runnable that returns documents.
        k: Documents to retrieve; None leaves base as it is.

    Raises:
        ValueError: If k is not an int > 0, or base has no known way to set it.

    """
    check_positive_int(k, name="k", allow_none=True)
    if isinstance(base, VectorStore):
        return base.as_retriever() if k is None else base.as_retriever(search_kwargs={"k": k})
    if k is None:
        return base
    if isinstance(base, VectorStoreRetriever):
        return base.model_copy(update={"search_kwargs": {**base.search_kwargs, "k": k}})
    if isinstance(base, BaseModel) and "k" in type(base).model_fields:
        return base.model_copy(update={"k": k})
    msg = (
        f"k={k} cannot be set on a {type(base).__name__} (it has no 'k' field); "
        "configure how many documents it returns and leave k=None"
    )
    raise ValueError(msg)


__all__ = ["BGERerankRetriever", "with_k"]
