"""A retrieval-augmented generation (RAG) app in LlamaIndex: Qdrant + BGE embeddings + BGE reranker.

What it shows: passages are embedded with ``BGEEmbedding`` (no instruction on texts) into a
``VectorStoreIndex`` on a Qdrant collection in local mode (in memory, or in a folder); each
question (embedded with the BGE query instruction) retrieves ``--top-k`` candidates, the
``BGERerank`` node postprocessor reranks them with a BGE cross-encoder and keeps ``--top-n``,
and a response synthesizer asks an ``OpenAILike`` LLM to answer from them. These are the three
parts of a query engine, which runs them in one call::

    engine = index.as_query_engine(
        llm=llm, similarity_top_k=top_k, node_postprocessors=[rerank], text_qa_template=QA_TEMPLATE
    )
    response = engine.query(question)  # response.source_nodes: the reranked passages

Here they run one by one, so each step can be printed, and so nothing but retrieval and
reranking runs when no LLM is configured.

Install::

    pip install "bge-integrations[llama-index]" llama-index-vector-stores-qdrant llama-index-llms-openai-like

Run::

    python examples/llama_index_rag.py                      # the demo questions on the demo corpus
    python examples/llama_index_rag.py "Where do giant pandas live?" --top-k 10 --top-n 3
    python examples/llama_index_rag.py --store-dir ./qdrant-db   # index once, reuse on the next run
    python examples/llama_index_rag.py --passages my_passages.txt "my question"   # one passage per line

``--store-dir`` keeps the Qdrant collection on disk: a later run with the same folder reuses it
without embedding anything again (delete the folder after changing ``--model`` or the passages).
Qdrant's local mode lets one process at a time open a folder.

Answer generation is off unless ``BGE_RAG_LLM_MODEL`` names a chat model; the script then
calls the OpenAI-compatible endpoint at ``OPENAI_BASE_URL`` (default: OpenAI's) with the key in
``OPENAI_API_KEY`` ("not-needed" when unset, which local servers accept)::

    export BGE_RAG_LLM_MODEL=gpt-4o-mini OPENAI_API_KEY=sk-...                        # OpenAI
    export BGE_RAG_LLM_MODEL=llama3.2 OPENAI_BASE_URL=http://localhost:11434/v1        # Ollama
    export BGE_RAG_LLM_MODEL=Qwen/Qwen2.5-1.5B-Instruct OPENAI_BASE_URL=http://localhost:8000/v1  # vLLM

Without it, the script prints the context it would send, word for word.

Offline: the models are BAAI/bge-small-en-v1.5 and BAAI/bge-reranker-base from the Hugging Face
hub, downloaded on first use. Once they are cached (or with local folders passed to ``--model``
and ``--reranker``), ``HF_HUB_OFFLINE=1`` runs everything without a network: Qdrant runs in
process, LlamaIndex counts tokens with the tiktoken file it ships, and no LLM is called unless
configured.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.response_synthesizers import BaseSynthesizer, ResponseMode, get_response_synthesizer
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from llama_index.llms.openai_like import OpenAILike
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.llama_index import RETRIEVAL_SCORE_KEY, BGEEmbedding, BGERerank

COLLECTION = "bge_rag"
SYSTEM_PROMPT = (
    "Answer the question using only the context below. "
    "If the context does not contain the answer, say that you do not know."
)
QA_TEMPLATE = ChatPromptTemplate(
    [
        ChatMessage(role=MessageRole.SYSTEM, content=SYSTEM_PROMPT),
        ChatMessage(role=MessageRole.USER, content="Context:\n{context_str}\n\nQuestion: {query_str}"),
    ]
)


@dataclass(frozen=True)
class Passage:
    """A passage with its scores.

    Args:
        text: The passage.
        retrieval_score: Cosine similarity between the question and the passage embeddings.
        rerank_score: The reranker's score (sigmoid, 0..1); None for candidates not reranked.

    """

    text: str
    retrieval_score: float
    rerank_score: float | None = None


@dataclass(frozen=True)
class RagResult:
    """What the app found for one question.

    Args:
        question: The question.
        candidates: The passages the vector store returned, most similar first.
        reranked: The ``top_n`` best candidates according to the reranker, best first.
        context: The context for the LLM, exactly as it is sent.
        answer: The LLM's answer; None when generation is off.

    """

    question: str
    candidates: list[Passage]
    reranked: list[Passage]
    context: str
    answer: str | None


def open_index(
    client: QdrantClient, embed_model: BGEEmbedding, passages: Sequence[str]
) -> tuple[VectorStoreIndex, int]:
    """The index on the Qdrant collection, filled with passages if it is empty; and how many were added."""
    # Cosine distance. Payload indexes do nothing in Qdrant's local mode (and it warns): keep
    # index_doc_id=True with a Qdrant server.
    vector_store = QdrantVectorStore(collection_name=COLLECTION, client=client, index_doc_id=False)
    if client.collection_exists(COLLECTION) and client.count(COLLECTION).count > 0:
        return VectorStoreIndex.from_vector_store(vector_store, embed_model=embed_model), 0
    storage_context = StorageContext.from_defaults(vector_store=vector_store)
    documents = [Document(text=text) for text in passages]
    index = VectorStoreIndex.from_documents(documents, storage_context=storage_context, embed_model=embed_model)
    return index, len(passages)


def format_context(nodes: Sequence[NodeWithScore]) -> str:
    """The context for the LLM, as the synthesizer builds it (``compact`` mode, when it fits the window)."""
    return "\n\n".join(node.node.get_content(metadata_mode=MetadataMode.LLM).strip() for node in nodes)


def response_synthesizer() -> BaseSynthesizer | None:
    """A synthesizer answering with an ``OpenAILike`` LLM when ``BGE_RAG_LLM_MODEL`` is set, else None."""
    model = os.environ.get("BGE_RAG_LLM_MODEL")
    if not model:
        return None
    llm = OpenAILike(
        model=model,
        api_base=os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        api_key=os.environ.get("OPENAI_API_KEY") or "not-needed",
        is_chat_model=True,  # /v1/chat/completions
    )
    # "compact" (the query engine's default) sends the passages in one prompt when they fit the LLM's
    # window (context_window, 3900 tokens unless set). Avoid "simple_summarize": llama-index-core
    # 0.14 sends its context as a Python list repr ("['...']").
    return get_response_synthesizer(llm=llm, text_qa_template=QA_TEMPLATE, response_mode=ResponseMode.COMPACT)


def main(
    questions: Sequence[str] | None = None,
    *,
    model: str = "BAAI/bge-small-en-v1.5",
    reranker: str = "BAAI/bge-reranker-base",
    device: str | None = None,
    store_dir: str | None = None,
    top_k: int = 10,
    top_n: int = 3,
    passages: Sequence[str] = PASSAGES,
) -> list[RagResult]:
    """Index passages (unless store_dir already holds them), then answer each question.

    Args:
        questions: The questions; None asks the demo questions.
        model: BGE embedding model (hub id or local folder).
        reranker: BGE reranker (hub id or local folder).
        device: ``"cuda"``, ``"cpu"``, ...; None picks CUDA, then MPS, then CPU.
        store_dir: Folder keeping the Qdrant collection; None keeps it in memory.
        top_k: Candidates retrieved from the vector store.
        top_n: Candidates kept after reranking, sent to the LLM.
        passages: The corpus, one passage per item (ignored when store_dir already holds one).

    Returns:
        One result per question, in order.

    """
    client = QdrantClient(location=":memory:") if store_dir is None else QdrantClient(path=store_dir)
    try:
        index, added = open_index(client, BGEEmbedding(model, device=device), passages)
        where = store_dir or "memory"
        print(f"Indexed {added} passages in Qdrant ({where})" if added else f"Reusing the Qdrant collection in {where}")
        retriever = index.as_retriever(similarity_top_k=top_k)
        rerank = BGERerank(model=reranker, top_n=top_n, device=device)
        synthesizer = response_synthesizer()
        results = []
        for question in QUERIES if questions is None else questions:
            results.append(ask(question, retriever, rerank, synthesizer))
            print_result(results[-1])
    finally:
        client.close()  # releases the folder's lock
    return results


def ask(question: str, retriever: BaseRetriever, rerank: BGERerank, synthesizer: BaseSynthesizer | None) -> RagResult:
    """Retrieve candidates for question, rerank them, and answer from the best when synthesizer is set."""
    bundle = QueryBundle(question)
    candidates = retriever.retrieve(bundle)
    reranked = rerank.postprocess_nodes(candidates, query_bundle=bundle)  # keeps metadata["retrieval_score"]
    answer = None if synthesizer is None else str(synthesizer.synthesize(bundle, nodes=reranked))
    return RagResult(
        question=question,
        candidates=[Passage(node.node.get_content(), node.get_score(raise_error=True)) for node in candidates],
        reranked=[
            Passage(
                node.node.get_content(),
                float(node.node.metadata[RETRIEVAL_SCORE_KEY]),
                node.get_score(raise_error=True),
            )
            for node in reranked
        ],
        context=format_context(reranked),
        answer=answer,
    )


def print_result(result: RagResult) -> None:
    """Print the candidates count, the reranked passages with their scores, then the answer or the context."""
    print(f"\nQuestion: {result.question}")
    print(f"Retrieved {len(result.candidates)} candidates; the reranker kept {len(result.reranked)}:")
    for rank, passage in enumerate(result.reranked, start=1):
        print(f"  {rank}. rerank {passage.rerank_score:.4f}  retrieval {passage.retrieval_score:.4f}  {passage.text}")
    if result.answer is None:
        print("Context for the LLM (set BGE_RAG_LLM_MODEL to generate an answer, see the module docstring):")
        print(result.context)
    else:
        print(f"Answer: {result.answer}")


def positive_int(value: str) -> int:
    """Argparse type: an int > 0."""
    number = int(value)
    if number <= 0:
        msg = f"must be > 0, got {number}"
        raise argparse.ArgumentTypeError(msg)
    return number


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("questions", nargs="*", help="questions to answer (default: the demo questions)")
    parser.add_argument("--model", default="BAAI/bge-small-en-v1.5", help="BGE embedding model (hub id or folder)")
    parser.add_argument("--reranker", default="BAAI/bge-reranker-base", help="BGE reranker (hub id or folder)")
    parser.add_argument("--device", default=None, help='"cuda", "cpu", ... (default: the best available)')
    parser.add_argument("--store-dir", default=None, help="keep the vector store here (default: in memory)")
    parser.add_argument("--top-k", type=positive_int, default=10, help="candidates retrieved (default: 10)")
    parser.add_argument("--top-n", type=positive_int, default=3, help="candidates kept after reranking (default: 3)")
    parser.add_argument("--passages", type=Path, default=None, help="UTF-8 text file, one passage per line")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    corpus = PASSAGES
    if args.passages is not None:
        corpus = tuple(line.strip() for line in args.passages.read_text(encoding="utf-8").splitlines() if line.strip())
    main(
        args.questions or None,
        model=args.model,
        reranker=args.reranker,
        device=args.device,
        store_dir=args.store_dir,
        top_k=args.top_k,
        top_n=args.top_n,
        passages=corpus,
    )
