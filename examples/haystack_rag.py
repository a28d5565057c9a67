"""A retrieval-augmented generation (RAG) app in Haystack: Qdrant + BGE embedders + BGE ranker.

What it shows: an indexing pipeline (``BGEDocumentEmbedder`` -> ``DocumentWriter``) embeds the
passages, without instruction, into a ``QdrantDocumentStore`` in local mode (in memory, or in a
folder); a query pipeline embeds each question with ``BGETextEmbedder`` (which adds the BGE query
instruction), retrieves ``--top-k`` candidates with ``QdrantEmbeddingRetriever``, reranks them
with ``BGERanker`` (a BGE cross-encoder) keeping ``--top-n``, joins them into the context
(``OutputAdapter``), fills a ``ChatPromptBuilder`` and, when configured, asks an
``OpenAIChatGenerator``.

Install::

    pip install "bge-integrations[haystack]" qdrant-haystack

Run::

    python examples/haystack_rag.py                      # the demo questions on the demo corpus
    python examples/haystack_rag.py "Where do giant pandas live?" --top-k 10 --top-n 3
    python examples/haystack_rag.py --store-dir ./qdrant-db   # index once, reuse on the next run
    python examples/haystack_rag.py --passages my_passages.txt "my question"   # one passage per line

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
process and no LLM is called unless configured. (Haystack's anonymous telemetry, on by default,
tries to reach PostHog; ``HAYSTACK_TELEMETRY_ENABLED=False`` turns it off.)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack import Document, Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.converters import OutputAdapter
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.components.writers import DocumentWriter
from haystack.dataclasses import ChatMessage
from haystack.document_stores.types import DuplicatePolicy
from haystack.utils import Secret
from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder

COLLECTION = "bge_rag"
SYSTEM_PROMPT = (
    "Answer the question using only the context below. "
    "If the context does not contain the answer, say that you do not know."
)
PROMPT_TEMPLATE = [
    ChatMessage.from_system(SYSTEM_PROMPT),
    ChatMessage.from_user("Context:\n{{ context }}\n\nQuestion: {{ question }}"),
]
CONTEXT_TEMPLATE = "{{ documents | map(attribute='content') | join('\n\n') }}"
"""The context for the LLM: the passages, best first, separated by blank lines."""


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


def open_store(store_dir: str | None, embedding_dim: int) -> QdrantDocumentStore:
    """The Qdrant document store (cosine similarity): in store_dir, or in memory when None."""
    settings: dict[str, Any] = {
        "index": COLLECTION,
        "embedding_dim": embedding_dim,
        "similarity": "cosine",
        "progress_bar": False,
    }
    if store_dir is None:
        return QdrantDocumentStore(location=":memory:", **settings)
    return QdrantDocumentStore(path=store_dir, **settings)


def index_passages(store: QdrantDocumentStore, passages: Sequence[str], model: str, device: str | None) -> int:
    """Embed and write passages unless the store already holds documents; return how many were written."""
    if store.count_documents() > 0:
        return 0
    indexing = Pipeline()
    indexing.add_component("embedder", BGEDocumentEmbedder(model=model, device=device, progress_bar=False))
    indexing.add_component("writer", DocumentWriter(document_store=store, policy=DuplicatePolicy.OVERWRITE))
    indexing.connect("embedder.documents", "writer.documents")
    result = indexing.run({"embedder": {"documents": [Document(content=text) for text in passages]}})
    written: int = result["writer"]["documents_written"]
    return written


def chat_generator() -> OpenAIChatGenerator | None:
    """An ``OpenAIChatGenerator`` when ``BGE_RAG_LLM_MODEL`` is set, else None."""
    model = os.environ.get("BGE_RAG_LLM_MODEL")
    if not model:
        return None
    key = "OPENAI_API_KEY"
    return OpenAIChatGenerator(
        model=model,
        api_base_url=os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
        api_key=Secret.from_env_var(key) if os.environ.get(key) else Secret.from_token("not-needed"),
    )


def rag_pipeline(
    store: QdrantDocumentStore,
    text_embedder: BGETextEmbedder,
    ranker: BGERanker,
    top_k: int,
    generator: OpenAIChatGenerator | None,
) -> Pipeline:
    """Embed the question, retrieve top_k, rerank, build the context and the prompt, and answer if generator."""
    rag = Pipeline()
    rag.add_component("embedder", text_embedder)
    rag.add_component("retriever", QdrantEmbeddingRetriever(document_store=store, top_k=top_k))
    rag.add_component("ranker", ranker)
    rag.add_component("context", OutputAdapter(template=CONTEXT_TEMPLATE, output_type=str))
    rag.add_component("prompt_builder", ChatPromptBuilder(template=PROMPT_TEMPLATE))
    rag.connect("embedder.embedding", "retriever.query_embedding")
    rag.connect("retriever.documents", "ranker.documents")
    rag.connect("ranker.documents", "context.documents")
    rag.connect("context.output", "prompt_builder.context")
    if generator is not None:
        rag.add_component("llm", generator)
        rag.connect("prompt_builder.prompt", "llm.messages")
    return rag


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
        top_k: Candidates retrieved from the document store.
        top_n: Candidates kept after reranking, sent to the LLM.
        passages: The corpus, one passage per item (ignored when store_dir already holds one).

    Returns:
        One result per question, in order.

    """
    text_embedder = BGETextEmbedder(model=model, device=device)
    store = open_store(store_dir, embedding_dim=text_embedder.embedder.dimension)
    try:
        added = index_passages(store, passages, model, device)
        where = store_dir or "memory"
        print(f"Indexed {added} passages in Qdrant ({where})" if added else f"Reusing the Qdrant collection in {where}")
        ranker = BGERanker(model=reranker, device=device, top_k=top_n)
        rag = rag_pipeline(store, text_embedder, ranker, top_k, chat_generator())
        results = []
        for question in QUERIES if questions is None else questions:
            results.append(ask(rag, question))
            print_result(results[-1])
    finally:
        store.close()  # releases the folder's lock
    return results


def ask(rag: Pipeline, question: str) -> RagResult:
    """Run the RAG pipeline on question, keeping the candidates, the reranked passages and the context."""
    output = rag.run(
        {"embedder": {"text": question}, "ranker": {"query": question}, "prompt_builder": {"question": question}},
        include_outputs_from={"retriever", "ranker", "context"},
    )
    candidates: list[Document] = output["retriever"]["documents"]
    reranked: list[Document] = output["ranker"]["documents"]
    retrieval_scores = {doc.id: _score(doc) for doc in candidates}  # the ranker replaces the score
    return RagResult(
        question=question,
        candidates=[Passage(doc.content or "", _score(doc)) for doc in candidates],
        reranked=[Passage(doc.content or "", retrieval_scores[doc.id], _score(doc)) for doc in reranked],
        context=output["context"]["output"],
        answer=output["llm"]["replies"][0].text if "llm" in output else None,
    )


def _score(document: Document) -> float:
    if document.score is None:
        msg = f"document {document.id} has no score"
        raise ValueError(msg)
    return document.score


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
