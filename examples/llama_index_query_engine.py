"""A LlamaIndex query engine that retrieves with a BGE embedder and reranks with a BGE reranker.

Run it: ``python examples/llama_index_query_engine.py`` (downloads the two BGE models once).
Without an LLM it answers with LlamaIndex's ``MockLLM``; the point is the reranked sources.
"""

from __future__ import annotations

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.response.schema import RESPONSE_TYPE
from llama_index.core.llms import LLM, MockLLM

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.llama_index import RETRIEVAL_SCORE_KEY, BGEEmbedding, BGERerank


def main(
    model: str = "BAAI/bge-small-en-v1.5",
    reranker: str = "BAAI/bge-reranker-base",
    device: str | None = None,
    llm: LLM | None = None,
) -> RESPONSE_TYPE:
    """Index the demo passages, ask the first demo question, print the reranked sources.

    Args:
        model: BGE embedding model (hub id or local path).
        reranker: BGE reranker (hub id or local path).
        device: ``"cuda"``, ``"cpu"``... None picks the best available.
        llm: The LLM that writes the answer; None uses ``MockLLM`` (no network, no key).

    Returns:
        The query engine's response; its ``source_nodes`` are the reranked passages.

    """
    embed_model = BGEEmbedding(model, device=device)
    index = VectorStoreIndex.from_documents([Document(text=text) for text in PASSAGES], embed_model=embed_model)
    engine = index.as_query_engine(
        llm=llm or MockLLM(),
        similarity_top_k=6,
        node_postprocessors=[BGERerank(model=reranker, device=device, top_n=3)],
    )
    question = QUERIES[0]
    response = engine.query(question)
    print(f"Q: {question}")
    for rank, source in enumerate(response.source_nodes, start=1):
        retrieval = source.node.metadata[RETRIEVAL_SCORE_KEY]
        print(f"{rank}. rerank {source.score:.3f} | retrieval {retrieval:.3f} | {source.node.get_content()[:70]}")
    return response


if __name__ == "__main__":
    main()
