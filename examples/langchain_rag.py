"""A retrieval-augmented generation (RAG) app in LangChain: Chroma + BGE embeddings + BGE reranker.

What it shows: passages are embedded with ``BGEEmbeddings`` (no instruction on documents) into a
Chroma collection (cosine space); each question (embedded with the BGE query instruction)
retrieves ``--top-k`` candidates, ``BGERerank`` (a LangChain document compressor) reranks them
with a BGE cross-encoder and keeps ``--top-n``, and those become the context of an LCEL chain
``prompt | ChatOpenAI | StrOutputParser``. ``BGERerank(...).as_retriever(store, k=top_k)`` does
retrieval and reranking in one retriever; here they run one by one so each step can be printed.

Install::

    pip install "bge-integrations[langchain]" langchain-chroma langchain-openai

Run::

    python examples/langchain_rag.py                      # the demo questions on the demo corpus
    python examples/langchain_rag.py "Where do giant pandas live?" --top-k 10 --top-n 3
    python examples/langchain_rag.py --store-dir ./chroma-db   # index once, reuse on the next run
    python examples/langchain_rag.py --passages my_passages.txt "my question"   # one passage per line

``--store-dir`` keeps the Chroma collection on disk: a later run with the same folder reuses it
without embedding anything again (delete the folder after changing ``--model`` or the passages).

Answer generation is off unless ``BGE_RAG_LLM_MODEL`` names a chat model; the script then
calls the OpenAI-compatible endpoint at ``OPENAI_BASE_URL`` (default: OpenAI's) with the key in
``OPENAI_API_KEY`` ("not-needed" when unset, which local servers accept)::

    export BGE_RAG_LLM_MODEL=gpt-4o-mini OPENAI_API_KEY=sk-...                        # OpenAI
    export BGE_RAG_LLM_MODEL=llama3.2 OPENAI_BASE_URL=http://localhost:11434/v1        # Ollama
    export BGE_RAG_LLM_MODEL=Qwen/Qwen2.5-1.5B-Instruct OPENAI_BASE_URL=http://localhost:8000/v1  # vLLM

Without it, the script prints the context it would send, word for word.

Offline: the models are BAAI/bge-small-en-v1.5 and BAAI/bge-reranker-base from the Hugging Face
hub, downloaded on first use. Once they are cached (or with local folders passed to ``--model``
and ``--reranker``), ``HF_HUB_OFFLINE=1`` runs everything without a network: Chroma is embedded
(anonymized telemetry off) and no LLM is called unless configured.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import chromadb
from chromadb.config import Settings
from langchain_chroma import Chroma
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.langchain import BGEEmbeddings, BGERerank

COLLECTION = "bge_rag"
SYSTEM_PROMPT = (
    "Answer the question using only the context below. "
    "If the context does not contain the answer, say that you do not know."
)
USER_PROMPT = "Context:\n{context}\n\nQuestion: {question}"


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


def open_store(embeddings: BGEEmbeddings, store_dir: str | None) -> Chroma:
    """Open the Chroma collection: on disk in store_dir, or in memory (and empty) when None."""
    settings = Settings(anonymized_telemetry=False)
    if store_dir is None:
        client = chromadb.EphemeralClient(settings=settings)
    else:
        client = chromadb.PersistentClient(path=store_dir, settings=settings)
    store = Chroma(
        collection_name=COLLECTION,
        embedding_function=embeddings,
        client=client,
        collection_metadata={"hnsw:space": "cosine"},
    )
    if store_dir is None:
        store.reset_collection()  # in-memory Chroma clients share one database per process: start empty
    return store


def index_passages(store: Chroma, passages: Sequence[str]) -> int:
    """Embed and add passages unless the collection already holds documents; return how many were added."""
    if store.get(limit=1, include=[])["ids"]:
        return 0
    ids = [f"passage-{number}" for number in range(len(passages))]
    store.add_texts(list(passages), metadatas=[{"passage": number} for number in range(len(passages))], ids=ids)
    return len(passages)


def retrieve(store: Chroma, question: str, top_k: int) -> list[Document]:
    """The top_k passages most similar to question, with the similarity in ``metadata["retrieval_score"]``."""
    hits = store.similarity_search_with_score(question, k=top_k)  # cosine distance, smallest first
    return [
        doc.model_copy(update={"metadata": {**doc.metadata, "retrieval_score": 1.0 - distance}})
        for doc, distance in hits
    ]


def format_context(documents: Sequence[Document]) -> str:
    """The context for the LLM: the passages, best first, separated by blank lines."""
    return "\n\n".join(doc.page_content for doc in documents)


def answer_chain() -> Runnable[dict[str, str], str] | None:
    """The LCEL chain ``prompt | llm | parser`` when ``BGE_RAG_LLM_MODEL`` is set, else None."""
    model = os.environ.get("BGE_RAG_LLM_MODEL")
    if not model:
        return None
    llm = ChatOpenAI(
        model=model,
        base_url=os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        api_key=SecretStr(os.environ.get("OPENAI_API_KEY") or "not-needed"),
        use_responses_api=False,  # /v1/chat/completions, which every OpenAI-compatible server offers
    )
    prompt = ChatPromptTemplate.from_messages([("system", SYSTEM_PROMPT), ("human", USER_PROMPT)])
    return prompt | llm | StrOutputParser()


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
        store_dir: Folder keeping the Chroma collection; None keeps it in memory.
        top_k: Candidates retrieved from the vector store.
        top_n: Candidates kept after reranking, sent to the LLM.
        passages: The corpus, one passage per item (ignored when store_dir already holds one).

    Returns:
        One result per question, in order.

    """
    store = open_store(BGEEmbeddings(model_name=model, device=device), store_dir)
    added = index_passages(store, passages)
    where = store_dir or "memory"
    print(f"Indexed {added} passages in Chroma ({where})" if added else f"Reusing the Chroma collection in {where}")
    rerank = BGERerank(model_name=reranker, top_n=top_n, device=device)
    chain = answer_chain()

    results = []
    for question in QUERIES if questions is None else questions:
        candidates = retrieve(store, question, top_k)
        reranked = rerank.compress_documents(candidates, question)
        context = format_context(reranked)
        answer = None if chain is None else chain.invoke({"context": context, "question": question})
        result = RagResult(
            question=question,
            candidates=[Passage(doc.page_content, doc.metadata["retrieval_score"]) for doc in candidates],
            reranked=[
                Passage(doc.page_content, doc.metadata["retrieval_score"], doc.metadata["relevance_score"])
                for doc in reranked
            ],
            context=context,
            answer=answer,
        )
        print_result(result)
        results.append(result)
    return results


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
