"""Haystack with BGE: index passages, then retrieve with the embedder and rerank with the reranker.

Run: ``python examples/haystack_pipeline.py`` (downloads BAAI/bge-small-en-v1.5 and
BAAI/bge-reranker-base on first use).
"""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.document_stores.in_memory import InMemoryDocumentStore

from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder

PASSAGES = [
    ("Giant panda", "The giant panda is a bear species endemic to China, living in mountain forests."),
    ("Paris", "Paris is the capital and most populous city of France."),
    ("BGE", "BGE models map text to dense vectors for retrieval."),
    ("Cross-encoders", "A cross-encoder reads the query and the passage together and scores the pair."),
    ("Red panda", "The red panda lives in the eastern Himalayas and southwestern China."),
]
QUERY = "Where do pandas live?"


def main(
    model: str = "BAAI/bge-small-en-v1.5",
    reranker: str = "BAAI/bge-reranker-base",
    device: str | None = None,
) -> list[Document]:
    """Index PASSAGES, answer QUERY, print the candidates and the reranked documents; return the latter."""
    store = InMemoryDocumentStore(embedding_similarity_function="cosine", shared=False)

    indexing = Pipeline()
    indexing.add_component(
        "embedder", BGEDocumentEmbedder(model=model, device=device, meta_fields_to_embed=["title"], progress_bar=False)
    )
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    documents = [Document(content=text, meta={"title": title}) for title, text in PASSAGES]
    indexing.run({"embedder": {"documents": documents}})

    query = Pipeline()
    query.add_component("embedder", BGETextEmbedder(model=model, device=device))  # adds the query instruction
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=4))
    query.add_component("ranker", BGERanker(model=reranker, device=device, top_k=3, meta_fields_to_embed=["title"]))
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("retriever.documents", "ranker.documents")
    result = query.run({"embedder": {"text": QUERY}, "ranker": {"query": QUERY}}, include_outputs_from={"retriever"})

    candidates: list[Document] = result["retriever"]["documents"]
    ranked: list[Document] = result["ranker"]["documents"]
    print(f"Query: {QUERY}")
    print("Retrieved by embedding:", ", ".join(doc.meta["title"] for doc in candidates))
    print("Reranked by the cross-encoder:")
    for rank, doc in enumerate(ranked, start=1):
        print(f"{rank}. {doc.score:.4f}  [{doc.meta['title']}] {doc.content}")
    return ranked


if __name__ == "__main__":
    main()
