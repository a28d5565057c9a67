"""A tiny RAG retriever in LangChain: BGE embeddings find candidates, a BGE reranker orders them.

Run it with ``python examples/langchain_rerank_retriever.py`` (downloads bge-small-en-v1.5 and
bge-reranker-base on first use). Needs ``pip install "bge-integrations[langchain]"``.
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore

from bge_integrations.langchain import BGEEmbeddings, BGERerank

PASSAGES = [
    "The giant panda is a bear species endemic to China, living in the mountain forests of Sichuan.",
    "Pandas eat almost nothing but bamboo, up to 38 kilograms a day.",
    "Paris is the capital and most populous city of France, on the river Seine.",
    "Mitochondria produce most of the chemical energy (ATP) that a cell needs.",
    "A cross-encoder reads the query and the passage together and outputs one relevance score.",
    "BGE (BAAI General Embedding) models map text to dense vectors for retrieval.",
]
QUESTION = "Where do giant pandas live?"


def main(
    model: str = "BAAI/bge-small-en-v1.5",
    reranker: str = "BAAI/bge-reranker-base",
    device: str | None = None,
) -> list[Document]:
    """Index PASSAGES, retrieve 4 candidates for QUESTION, rerank them, print and return the best 2."""
    embeddings = BGEEmbeddings(model_name=model, device=device)  # the query instruction is the model's own
    store = InMemoryVectorStore(embeddings)
    store.add_documents([Document(text, metadata={"source": f"passage-{i}"}) for i, text in enumerate(PASSAGES)])

    retriever = BGERerank(model_name=reranker, top_n=2, device=device).as_retriever(store, k=4)
    hits = retriever.invoke(QUESTION)

    print(f"Q: {QUESTION}")
    for hit in hits:
        print(f"  {hit.metadata['relevance_score']:.3f}  [{hit.metadata['source']}] {hit.page_content}")
    return hits


if __name__ == "__main__":
    main()
