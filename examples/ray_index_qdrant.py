"""Index a corpus on Ray, bulk-load the vectors into Qdrant, then search it with LangChain and rerank.

What it shows: ``embed_dataset`` embeds the passages on a pool of Ray actors (one BGE model per
actor; documents get no instruction); the vectors stream out of Ray batch by batch straight into
a Qdrant collection (cosine), as precomputed points, so nothing is embedded twice. Each question
is embedded with ``BGEEmbeddings`` (the BGE query instruction), searched in that collection
through a small LangChain retriever (``QdrantRetriever`` below), and its ``--top-k`` candidates
are reranked by ``BGERerank``, which keeps ``--top-n``.

Install::

    pip install "bge-integrations[ray,langchain]" qdrant-client

Run::

    python examples/ray_index_qdrant.py                          # demo corpus, a local Ray with 2 CPU actors
    python examples/ray_index_qdrant.py "Where do giant pandas live?" --top-k 10 --top-n 3
    python examples/ray_index_qdrant.py --passages my_passages.txt --store-dir ./qdrant-db
    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python examples/ray_index_qdrant.py --num-actors 8 --num-gpus-per-actor 1 --store-dir /mnt/shared/qdrant

``--store-dir`` keeps the collection on disk; a later run with that folder searches it without
embedding anything. On a cluster the script runs as a Ray job (above): the actors embed, the
driver loads Qdrant, and ``ray.init()`` joins the cluster the job runs on. For a real corpus,
read it with Ray instead of a list (``ray.data.read_parquet("s3://bucket/passages/")``) and point
``QdrantClient`` at a Qdrant server (``QdrantClient(url=...)``): the bulk-load loop stays the same.

Offline: the models are BAAI/bge-small-en-v1.5 and BAAI/bge-reranker-base from the Hugging Face
hub, downloaded on first use (by every Ray node). With them cached, or with local folders passed
to ``--model`` and ``--reranker``, ``HF_HUB_OFFLINE=1`` runs everything without a network.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
import ray.data
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict
from qdrant_client import QdrantClient
from qdrant_client.models import Distance, PointStruct, VectorParams

from bge_integrations.demo_corpus import PASSAGES, QUERIES
from bge_integrations.langchain import BGEEmbeddings, BGERerank
from bge_integrations.ray import embed_dataset

COLLECTION = "bge_ray"
POINT_IDS = uuid.UUID("6f1d4a52-0d3c-4b8e-9a57-3b8f0c6e2a10")
"""Namespace of the Qdrant point ids: uuid5(namespace, passage id), so a rerun overwrites, never duplicates."""


@dataclass(frozen=True)
class Hit:
    """A passage found for a question.

    Args:
        id: The passage's id in the corpus.
        text: The passage.
        retrieval_score: Cosine similarity between the question and the passage embeddings.
        rerank_score: The reranker's score (sigmoid, 0..1).

    """

    id: int
    text: str
    retrieval_score: float
    rerank_score: float


@dataclass(frozen=True)
class SearchResult:
    """The question and the passages the reranker kept, best first."""

    question: str
    hits: list[Hit]


class QdrantRetriever(BaseRetriever):
    """A LangChain retriever over a Qdrant collection of precomputed vectors.

    The question is embedded with ``embeddings.embed_query``; each hit becomes a ``Document``
    with ``metadata["id"]`` and ``metadata["retrieval_score"]`` (cosine).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: QdrantClient
    """The Qdrant client (local mode or server)."""
    collection: str
    """The collection to search."""
    embeddings: Embeddings
    """Embeds the question (BGEEmbeddings adds the query instruction)."""
    k: int = 10
    """Hits returned."""

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        vector = self.embeddings.embed_query(query)
        points = self.client.query_points(self.collection, query=vector, limit=self.k, with_payload=True).points
        return [
            Document(
                page_content=point.payload["text"],
                metadata={"id": point.payload["id"], "retrieval_score": point.score},
            )
            for point in points
            if point.payload is not None
        ]


def bulk_load(client: QdrantClient, vectors: ray.data.Dataset, *, batch_size: int = 256) -> int:
    """Stream the dataset's (id, text, embedding) rows into the collection; return how many were loaded."""
    loaded = 0
    for batch in vectors.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
        column = batch.column("embedding").combine_chunks()
        dimension = column.type.list_size
        if not client.collection_exists(COLLECTION):
            client.create_collection(COLLECTION, vectors_config=VectorParams(size=dimension, distance=Distance.COSINE))
        matrix = np.asarray(column.flatten(), dtype=np.float32).reshape(-1, dimension)
        points = [
            PointStruct(id=str(uuid.uuid5(POINT_IDS, str(pid))), vector=row.tolist(), payload={"id": pid, "text": text})
            for pid, text, row in zip(
                batch.column("id").to_pylist(), batch.column("text").to_pylist(), matrix, strict=True
            )
        ]
        client.upsert(COLLECTION, points=points)
        loaded += len(points)
    return loaded


def main(
    questions: Sequence[str] | None = None,
    *,
    model: str = "BAAI/bge-small-en-v1.5",
    reranker: str = "BAAI/bge-reranker-base",
    device: str | None = None,
    passages: Sequence[str] = PASSAGES,
    num_actors: int = 2,
    num_gpus_per_actor: float = 0,
    store_dir: str | None = None,
    top_k: int = 10,
    top_n: int = 3,
) -> list[SearchResult]:
    """Embed passages on Ray into Qdrant (unless store_dir holds them already), then answer each question.

    Args:
        questions: The questions; None asks the demo questions.
        model: BGE embedding model (hub id or local folder, reachable from every Ray node).
        reranker: BGE reranker (hub id or local folder).
        device: Device of the question embedder and the reranker (this process) and, when set,
            of the actors; None: the actors use ``"cuda"`` with GPUs, else ``"cpu"``.
        passages: The corpus, one passage per item; its position is its id.
        num_actors: Ray actors embedding the corpus, one model each.
        num_gpus_per_actor: GPUs per actor (0: CPU actors).
        store_dir: Folder keeping the Qdrant collection; None keeps it in memory.
        top_k: Candidates retrieved from Qdrant.
        top_n: Candidates kept after reranking.

    Returns:
        One result per question, in order.

    """
    if not ray.is_initialized():
        ray.init()  # RAY_ADDRESS set: that cluster; else a local Ray on this machine
    client = QdrantClient(location=":memory:") if store_dir is None else QdrantClient(path=store_dir)
    try:
        if client.collection_exists(COLLECTION) and client.count(COLLECTION).count > 0:
            print(f"Reusing the Qdrant collection in {store_dir}")
        else:
            corpus = ray.data.from_items([{"id": i, "text": text} for i, text in enumerate(passages)])
            settings: dict[str, Any] = {} if device is None else {"device": device}
            vectors = embed_dataset(
                corpus, model=model, num_actors=num_actors, num_gpus_per_actor=num_gpus_per_actor, **settings
            )
            print(f"Embedded and loaded {bulk_load(client, vectors)} passages into Qdrant ({store_dir or 'memory'})")
        search = QdrantRetriever(
            client=client, collection=COLLECTION, embeddings=BGEEmbeddings(model_name=model, device=device)
        )
        retriever = BGERerank(model_name=reranker, top_n=top_n, device=device).as_retriever(search, k=top_k)
        results = []
        for question in QUERIES if questions is None else questions:
            documents = retriever.invoke(question)
            hits = [
                Hit(d.metadata["id"], d.page_content, d.metadata["retrieval_score"], d.metadata["relevance_score"])
                for d in documents
            ]
            results.append(SearchResult(question, hits))
            print_result(results[-1])
    finally:
        client.close()  # releases the folder's lock
    return results


def print_result(result: SearchResult) -> None:
    """Print the question and the reranked passages with both scores."""
    print(f"\nQuestion: {result.question}")
    for rank, hit in enumerate(result.hits, start=1):
        print(f"  {rank}. rerank {hit.rerank_score:.4f}  retrieval {hit.retrieval_score:.4f}  [{hit.id}] {hit.text}")


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
    parser.add_argument("--device", default=None, help='"cuda", "cpu", ... (default: see main())')
    parser.add_argument("--passages", type=Path, default=None, help="UTF-8 text file, one passage per line")
    parser.add_argument("--num-actors", type=positive_int, default=2, help="Ray actors embedding (default: 2)")
    parser.add_argument("--num-gpus-per-actor", type=float, default=0, help="GPUs per actor (default: 0, CPU)")
    parser.add_argument("--store-dir", default=None, help="keep the Qdrant collection here (default: in memory)")
    parser.add_argument("--top-k", type=positive_int, default=10, help="candidates retrieved (default: 10)")
    parser.add_argument("--top-n", type=positive_int, default=3, help="candidates kept after reranking (default: 3)")
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
        passages=corpus,
        num_actors=args.num_actors,
        num_gpus_per_actor=args.num_gpus_per_actor,
        store_dir=args.store_dir,
        top_k=args.top_k,
        top_n=args.top_n,
    )
