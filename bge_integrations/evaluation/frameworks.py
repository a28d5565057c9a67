"""Retrieval evaluation through each framework's own in-memory vector store.

The core path (:func:`~bge_integrations.evaluation.retrieval.evaluate_retrieval`) searches
exactly with NumPy. The framework paths index the same documents with the framework's adapter
and vector store, ask it for the top ``top_k`` per query, and score those runs the same way:
ranked by the trec_eval rule (score descending, then document id descending, since the
frameworks break ties each their own way), a document whose id equals the query id dropped
(MTEB's default), then nDCG@10, Recall@100 and MRR@10. So a framework path scores what the
model is published to score.

Frameworks are imported inside the functions that use them; the core stays framework-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, get_args

from bge_integrations.core.progress import progress_iter as progress_bar
from bge_integrations.evaluation.beir import RetrievalDataset
from bge_integrations.evaluation.retrieval import RetrievalReport, Run, evaluate_retrieval, score_run

Framework = Literal["core", "langchain", "llama-index", "haystack"]
FRAMEWORKS: tuple[str, ...] = get_args(Framework)

"""Query id to (document ids, scores) as a vector store returned them."""

_RunFn = Callable[[RetrievalDataset, str, "str | None", int, int, bool], Run]


def evaluate_through(
    framework: Framework,
    dataset: RetrievalDataset,
    *,
    model: str,
    device: str | None = None,
    batch_size: int = 32,
    top_k: int = 100,
    reranker: str | None = None,
    reranker_settings: Mapping[str, Any] | None = None,
    rerank_top_k: int = 100,
    ignore_identical_ids: bool = True,
    progress: bool = False,
) -> RetrievalReport:
    """Index the corpus in a framework's vector store, retrieve for every judged query, and score.

    Args:
        framework: ``"core"`` (exact NumPy search), ``"langchain"`` (``InMemoryVectorStore``),
            ``"llama-index"`` (``VectorStoreIndex``, one node per document, no metadata, no
            splitting) or ``"haystack"`` (``InMemoryDocumentStore`` with cosine similarity).
        dataset: The collection, e.g. from :func:`~bge_integrations.evaluation.beir.load_beir`.
        model: Hub id or local path of the embedding model.
        device: ``"cuda"``, ``"cpu"``...; None lets the adapter pick.
        batch_size: Texts per forward pass.
        top_k: Documents retrieved per query; at least 100, as Recall@100 reads 100. One more
            is asked for, so dropping a document with the query's own id still leaves top_k.
        reranker: Optional reranker model; the core ``BGEReranker`` reorders the top
            ``rerank_top_k`` of every path, as ``evaluate_retrieval`` does.
        reranker_settings: More ``BGEReranker`` arguments for it, e.g. an LLM reranker's
            ``prompt``, ``cutoff_layers``, ``compress_ratio``, ``compress_layers``.
        rerank_top_k: Candidates the reranker reads per query; at most top_k.
        ignore_identical_ids: Drop a document whose id equals the query id (MTEB's default).
        progress: Progress bars on standard error: the framework's own while indexing
            (LangChain ``BGEEmbeddings(show_progress=True)``, LlamaIndex
            ``VectorStoreIndex(show_progress=True)``, Haystack ``BGEDocumentEmbedder(progress_bar=True)``,
            the core's ``BGEEmbedder(show_progress_bar=True)``), then one over the queries while
            searching and reranking. The corpus still goes to the embedder exactly as without bars.

    Returns:
        The same :class:`RetrievalReport` as ``evaluate_retrieval``; ``seconds`` includes indexing.

    Raises:
        ValueError: For an unknown framework, top_k under 100 or rerank_top_k over top_k.
        ImportError: If the framework is not installed.

    Example:
        >>> data = load_beir("../shared/data/scifact")  # doctest: +SKIP
        >>> evaluate_through("langchain", data, model="BAAI/bge-small-en-v1.5").ndcg_at_10  # doctest: +SKIP
        0.72...

    """
    if framework not in FRAMEWORKS:
        msg = f"framework must be one of {', '.join(FRAMEWORKS)}; got {framework!r}"
        raise ValueError(msg)
    if top_k < 100:
        msg = f"top_k must be at least 100 (Recall@100 reads 100 documents), got {top_k}"
        raise ValueError(msg)
    if reranker is not None and not 0 < rerank_top_k <= top_k:
        msg = f"rerank_top_k must be in 1..top_k ({top_k}), got {rerank_top_k}"
        raise ValueError(msg)
    settings = dict(reranker_settings or {})
    if settings and reranker is None:
        msg = f"reranker_settings need a reranker, got reranker=None and reranker_settings={settings!r}"
        raise ValueError(msg)
    rerank = _core_rerank(reranker, device, batch_size, settings) if reranker is not None else None
    if framework == "core":
        from bge_integrations.core.embedder import BGEEmbedder

        embedder = BGEEmbedder(model, device=device, batch_size=batch_size, show_progress_bar=progress)
        # Without a reranker, evaluate_retrieval keeps max(100, rerank_top_k) documents.
        return evaluate_retrieval(
            dataset,
            embedder.embed_queries,
            embedder.embed_documents,
            rerank=rerank,
            rerank_top_k=rerank_top_k if rerank is not None else top_k,
            ignore_identical_ids=ignore_identical_ids,
            progress=progress,
        )
    start = time.perf_counter()
    run_fn: _RunFn = {"langchain": _langchain_run, "llama-index": _llama_index_run, "haystack": _haystack_run}[
        framework
    ]
    run = run_fn(dataset, model, device, batch_size, top_k + 1, progress)
    return score_run(
        dataset,
        run,
        depth=top_k,
        rerank=rerank,
        rerank_top_k=rerank_top_k,
        ignore_identical_ids=ignore_identical_ids,
        start=start,
        progress=progress,
    )


def retrieve_through(
    framework: Literal["langchain", "llama-index", "haystack"],
    dataset: RetrievalDataset,
    *,
    model: str,
    device: str | None = None,
    batch_size: int = 32,
    k: int = 101,
    progress: bool = False,
) -> Run:
    """The raw run of a framework path: per judged query, the ids and scores its store returned.

    ``progress`` shows the framework's own bar while indexing, then one over the queries.

    Example:
        >>> data = load_beir("../shared/data/scifact")  # doctest: +SKIP
        >>> run = retrieve_through("haystack", data, model="BAAI/bge-small-en-v1.5", k=10)  # doctest: +SKIP
        >>> len(run) == len(data.queries)  # doctest: +SKIP
        True

    Raises:
        ValueError: For an unknown framework.

    """
    runs: dict[str, _RunFn] = {"langchain": _langchain_run, "llama-index": _llama_index_run, "haystack": _haystack_run}
    if framework not in runs:
        msg = f"framework must be one of {', '.join(runs)}; got {framework!r}"
        raise ValueError(msg)
    return runs[framework](dataset, model, device, batch_size, k, progress)


def _langchain_run(
    dataset: RetrievalDataset, model: str, device: str | None, batch_size: int, k: int, progress: bool
) -> Run:
    from langchain_core.vectorstores import InMemoryVectorStore

    from bge_integrations.langchain import BGEEmbeddings

    embeddings = BGEEmbeddings(model_name=model, device=device, batch_size=batch_size, show_progress=progress)
    store = InMemoryVectorStore(embedding=embeddings)
    store.add_texts(dataset.doc_texts, ids=dataset.doc_ids)
    run: Run = {}
    for query_id, query in _searching(dataset, progress):
        hits = store.similarity_search_with_score(query, k=k)
        run[query_id] = ([str(doc.id) for doc, _ in hits], [float(score) for _, score in hits])
    return run


def _llama_index_run(
    dataset: RetrievalDataset, model: str, device: str | None, batch_size: int, k: int, progress: bool
) -> Run:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.schema import TextNode

    from bge_integrations.llama_index import BGEEmbedding

    embed_model = BGEEmbedding(model, device=device, batch_size=batch_size)
    # Nodes go in as they are: no node parser runs, and with no metadata the embedded text is the text.
    nodes = [TextNode(id_=doc_id, text=text) for doc_id, text in zip(dataset.doc_ids, dataset.doc_texts, strict=True)]
    index = VectorStoreIndex(nodes=nodes, embed_model=embed_model, show_progress=progress)
    retriever = index.as_retriever(similarity_top_k=k)
    run: Run = {}
    for query_id, query in _searching(dataset, progress):
        hits = retriever.retrieve(query)
        run[query_id] = ([hit.node.node_id for hit in hits], [float(hit.score or 0.0) for hit in hits])
    return run


def _haystack_run(
    dataset: RetrievalDataset, model: str, device: str | None, batch_size: int, k: int, progress: bool
) -> Run:
    from haystack import Document
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from bge_integrations.haystack import BGEDocumentEmbedder, BGETextEmbedder

    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    doc_embedder = BGEDocumentEmbedder(model=model, device=device, batch_size=batch_size, progress_bar=progress)
    documents = [
        Document(id=doc_id, content=text) for doc_id, text in zip(dataset.doc_ids, dataset.doc_texts, strict=True)
    ]
    store.write_documents(doc_embedder.run(documents=documents)["documents"])
    text_embedder = BGETextEmbedder(model=model, device=device, batch_size=batch_size)
    retriever = InMemoryEmbeddingRetriever(document_store=store, top_k=k, scale_score=False)
    run: Run = {}
    for query_id, query in _searching(dataset, progress):
        embedding = text_embedder.run(text=query)["embedding"]
        hits = retriever.run(query_embedding=embedding)["documents"]
        run[query_id] = ([doc.id for doc in hits], [float(doc.score or 0.0) for doc in hits])
    return run


def _searching(dataset: RetrievalDataset, progress: bool) -> Iterator[tuple[str, str]]:
    return progress_bar(
        dataset.queries.items(), enabled=progress, desc="Searching", unit="query", total=len(dataset.queries)
    )


def _core_rerank(
    model: str, device: str | None, batch_size: int, settings: dict[str, Any]
) -> Callable[[str, list[str]], list[float]]:
    from bge_integrations.core.reranker import BGEReranker

    return BGEReranker(model, device=device, batch_size=batch_size, **settings).score


__all__ = ["FRAMEWORKS", "Framework", "Run", "evaluate_through", "retrieve_through", "score_run"]
