"""Every way of running the same model that the benchmarks compare.

Each contestant is built from a model folder and offers the calls the workloads time. Ours go
through the public API of the core and of each adapter; the others through their integration's
public API with the same model, device and batch size.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BATCH_SIZE = 32

SMALL_BATCH = 10
"""The others' best batch size for documents on a CPU (LlamaIndex's default): they run it too."""

PURE_BUDGET = 2048
"""Padded tokens per batch of the pure-compute reference's best-shape row (our CPU default's budget)."""


@dataclass
class Embedder:
    """One way to embed: documents, one query, and (when it has one) its async query path."""

    name: str
    ours: bool
    embed_documents: Callable[[list[str]], Any]
    embed_query: Callable[[str], Any]
    aembed_query: Callable[[str], Any] | None = None
    embed_queries: Callable[[list[str]], Any] | None = None


@dataclass
class Reranker:
    """One way to rerank: score a query's candidates and keep the best ``top_n``."""

    name: str
    ours: bool
    rerank: Callable[[str, list[str]], Any]
    arerank: Callable[[str, list[str]], Any] | None = None
    notes: list[str] = field(default_factory=list)


TOP_N = 10

OPT_IN = {"bge core (openvino)", "bge core (auto)", "bge core (truncating)"}
"""Contestants that run only when named in ``--contestants``: a CPU backend (exported on first use),
and the reranker reading only the first window of each passage, as the other integrations do."""


def embedders(path: str, *, device: str = "cpu", which: set[str] | None = None) -> list[Embedder]:
    """Build the embedding contestants for the model at path (only those in which, if given)."""
    builders: dict[str, Callable[[], Embedder]] = {
        "pure compute": lambda: _pure_embedder(path, device),
        "pure compute (2,048-token batches)": lambda: _pure_embedder(path, device, max_tokens=PURE_BUDGET),
        "bge core": lambda: _our_core(path, device),
        "bge core (openvino)": lambda: _our_core(path, device, backend="openvino"),
        "bge core (auto)": lambda: _our_core(path, device, backend="auto"),
        "bge langchain": lambda: _our_langchain(path, device),
        "bge llama-index": lambda: _our_llama_index(path, device),
        "bge haystack": lambda: _our_haystack(path, device),
        "sentence-transformers": lambda: _sentence_transformers(path, device),
        "sentence-transformers (batch 10)": lambda: _sentence_transformers(path, device, SMALL_BATCH),
        "langchain HuggingFaceEmbeddings": lambda: _langchain_hf(path, device),
        "llama-index HuggingFaceEmbedding": lambda: _llama_index_hf(path, device),
        "llama-index HuggingFaceEmbedding (batch 10)": lambda: _llama_index_hf(path, device, SMALL_BATCH),
        "haystack SentenceTransformers": lambda: _haystack_st(path, device),
    }
    if which is None:
        which = set(builders) - OPT_IN
    return [build() for name, build in builders.items() if name in which]


def rerankers(path: str, *, device: str = "cpu", which: set[str] | None = None) -> list[Reranker]:
    """Build the reranking contestants for the cross-encoder at path."""
    builders: dict[str, Callable[[], Reranker]] = {
        "pure compute": lambda: _pure_reranker(path, device),
        "bge core": lambda: _our_core_reranker(path, device),
        "bge core (truncating)": lambda: _our_core_reranker(path, device, windows=False),
        "bge langchain": lambda: _our_langchain_reranker(path, device),
        "bge llama-index": lambda: _our_llama_index_reranker(path, device),
        "bge haystack": lambda: _our_haystack_reranker(path, device),
        "sentence-transformers CrossEncoder": lambda: _st_cross_encoder(path, device),
        "sentence-transformers CrossEncoder (batch 10)": lambda: _st_cross_encoder(path, device, SMALL_BATCH),
        "langchain CrossEncoderReranker": lambda: _langchain_cross_encoder(path, device),
        "llama-index SentenceTransformerRerank": lambda: _llama_index_sbert(path, device),
        "haystack SentenceTransformersSimilarityRanker": lambda: _haystack_similarity(path, device),
    }
    if which is None:
        which = set(builders) - OPT_IN
    return [build() for name, build in builders.items() if name in which]


# --- the pure-compute limit: pre-tokenised, length-sorted batches through the model -------------


class PureEmbedder:
    """The model's own forward pass over inputs tokenised ahead of time (excluded from timing)."""

    def __init__(self, path: str, device: str, max_tokens: int | None = None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        self.torch = torch
        self.model = SentenceTransformer(path, device=device)
        self.model.eval()
        self.tokenizer = self.model.tokenizer
        self.max_length = int(self.model.max_seq_length)
        self.device = device
        self.max_tokens = max_tokens
        self._prepared: dict[int, list[dict[str, Any]]] = {}

    def prepare(self, texts: list[str]) -> list[dict[str, Any]]:
        """Tokenise texts, sort by token count, cut into padded batches of 32 (and max_tokens); kept for reuse."""
        from bge_integrations.core.batching import plan_batches

        key = hash(tuple(texts))
        if key not in self._prepared:
            lengths = [
                len(ids) for ids in self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
            ]
            batches = []
            for planned in plan_batches(lengths, max_items=BATCH_SIZE, max_tokens=self.max_tokens):
                rows = [texts[i] for i in planned]
                features = self.tokenizer(
                    rows, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                batches.append({name: value.to(self.device) for name, value in features.items()})
            self._prepared[key] = batches
        return self._prepared[key]

    def run(self, texts: list[str]) -> list[Any]:
        """Forward every prepared batch of texts; returns the embeddings (sorted order)."""
        out = []
        with self.torch.inference_mode():
            for features in self.prepare(texts):
                out.append(self.model(dict(features))["sentence_embedding"].float().cpu())
        return out


def _pure_embedder(path: str, device: str, max_tokens: int | None = None) -> Embedder:
    pure = PureEmbedder(path, device, max_tokens)
    return Embedder(
        "pure compute" if max_tokens is None else f"pure compute ({max_tokens:,}-token batches)",
        ours=False,
        embed_documents=pure.run,
        embed_query=lambda text: pure.run([text]),
        embed_queries=pure.run,
    )


class PureReranker:
    """The cross-encoder's forward pass over pairs tokenised ahead of time."""

    def __init__(self, path: str, device: str) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        self.device = device
        self._prepared: dict[int, list[dict[str, Any]]] = {}

    def prepare(self, query: str, texts: list[str]) -> list[dict[str, Any]]:
        """Tokenise the pairs (truncating passages at 512), sort by length, cut into batches."""
        key = hash((query, *texts))
        if key not in self._prepared:
            encoded = self.tokenizer([query] * len(texts), texts, truncation="only_second", max_length=512)
            order = sorted(range(len(texts)), key=lambda i: -len(encoded["input_ids"][i]))
            batches = []
            for start in range(0, len(order), BATCH_SIZE):
                rows = order[start : start + BATCH_SIZE]
                features = self.tokenizer(
                    [query] * len(rows),
                    [texts[i] for i in rows],
                    padding=True,
                    truncation="only_second",
                    max_length=512,
                    return_tensors="pt",
                )
                batches.append({name: value.to(self.device) for name, value in features.items()})
            self._prepared[key] = batches
        return self._prepared[key]

    def run(self, query: str, texts: list[str]) -> list[Any]:
        """Forward every prepared batch; returns the logits (sorted order)."""
        with self.torch.inference_mode():
            return [self.model(**features).logits[:, 0].float().cpu() for features in self.prepare(query, texts)]


def _pure_reranker(path: str, device: str) -> Reranker:
    pure = PureReranker(path, device)
    return Reranker("pure compute", ours=False, rerank=pure.run)


# --- ours ---------------------------------------------------------------------------------------


def _our_core(path: str, device: str, backend: str = "torch") -> Embedder:
    from bge_integrations import BGEEmbedder

    model = BGEEmbedder(path, device=device, batch_size=BATCH_SIZE, backend=backend)  # type: ignore[arg-type]
    model.warm_up()
    return Embedder(
        "bge core" if backend == "torch" else f"bge core ({backend})",
        ours=True,
        embed_documents=model.embed_documents,
        embed_query=model.embed_query,
        aembed_query=model.aembed_query,
        embed_queries=model.embed_queries,
    )


def _our_langchain(path: str, device: str) -> Embedder:
    from bge_integrations.langchain import BGEEmbeddings

    model = BGEEmbeddings(model_name=path, device=device, batch_size=BATCH_SIZE)
    model.embed_query("warm up")
    return Embedder("bge langchain", True, model.embed_documents, model.embed_query, model.aembed_query)


def _our_llama_index(path: str, device: str) -> Embedder:
    from bge_integrations.llama_index import BGEEmbedding

    model = BGEEmbedding(path, device=device, embed_batch_size=BATCH_SIZE)
    model.get_query_embedding("warm up")
    return Embedder(
        "bge llama-index",
        True,
        model.get_text_embedding_batch,
        model.get_query_embedding,
        model.aget_query_embedding,
    )


def _our_haystack(path: str, device: str) -> Embedder:
    from haystack import Document

    from bge_integrations.haystack import BGEDocumentEmbedder, BGETextEmbedder

    documents = BGEDocumentEmbedder(model=path, device=device, batch_size=BATCH_SIZE, progress_bar=False)
    text = BGETextEmbedder(model=path, device=device, batch_size=BATCH_SIZE)
    documents.warm_up()
    text.warm_up()

    async def aembed(query: str) -> Any:
        return await text.run_async(text=query)

    return Embedder(
        "bge haystack",
        True,
        lambda texts: documents.run(documents=[Document(content=t) for t in texts]),
        lambda query: text.run(text=query),
        aembed,
    )


def _our_core_reranker(path: str, device: str, *, windows: bool = True) -> Reranker:
    from bge_integrations import BGEReranker

    model = BGEReranker(path, device=device, batch_size=BATCH_SIZE, windows=windows)
    model.warm_up()
    return Reranker(
        "bge core" if windows else "bge core (truncating)",
        True,
        lambda query, texts: model.rank(query, texts, top_n=TOP_N),
        lambda query, texts: model.arank(query, texts, top_n=TOP_N),
    )


def _our_langchain_reranker(path: str, device: str) -> Reranker:
    from langchain_core.documents import Document

    from bge_integrations.langchain import BGERerank

    model = BGERerank(model_name=path, device=device, top_n=TOP_N, batch_size=BATCH_SIZE)
    model.compress_documents([Document(page_content="warm up")], "warm up")
    return Reranker(
        "bge langchain",
        True,
        lambda query, texts: model.compress_documents([Document(page_content=t) for t in texts], query),
        lambda query, texts: model.acompress_documents([Document(page_content=t) for t in texts], query),
    )


def _our_llama_index_reranker(path: str, device: str) -> Reranker:
    from llama_index.core.schema import NodeWithScore, TextNode

    from bge_integrations.llama_index import BGERerank

    model = BGERerank(model=path, device=device, top_n=TOP_N, batch_size=BATCH_SIZE)

    def nodes(texts: list[str]) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=t), score=0.0) for t in texts]

    model.postprocess_nodes(nodes(["warm up"]), query_str="warm up")
    return Reranker(
        "bge llama-index",
        True,
        lambda query, texts: model.postprocess_nodes(nodes(texts), query_str=query),
        lambda query, texts: model.apostprocess_nodes(nodes(texts), query_str=query),
    )


def _our_haystack_reranker(path: str, device: str) -> Reranker:
    from haystack import Document

    from bge_integrations.haystack import BGERanker

    model = BGERanker(model=path, device=device, top_k=TOP_N, batch_size=BATCH_SIZE)
    model.warm_up()
    return Reranker(
        "bge haystack",
        True,
        lambda query, texts: model.run(query=query, documents=[Document(content=t) for t in texts]),
        lambda query, texts: model.run_async(query=query, documents=[Document(content=t) for t in texts]),
    )


# --- the other integrations ---------------------------------------------------------------------


def _named(name: str, batch_size: int) -> str:
    """A contestant's name, with its batch size when it is not the common one."""
    return name if batch_size == BATCH_SIZE else f"{name} (batch {batch_size})"


def _sentence_transformers(path: str, device: str, batch_size: int = BATCH_SIZE) -> Embedder:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device=device)

    def embed(texts: list[str]) -> Any:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True)

    return Embedder(
        _named("sentence-transformers", batch_size),
        False,
        embed,
        lambda query: model.encode([query], batch_size=batch_size, normalize_embeddings=True),
        embed_queries=embed,
    )


def _langchain_hf(path: str, device: str) -> Embedder:
    from langchain_huggingface import HuggingFaceEmbeddings

    model = HuggingFaceEmbeddings(
        model_name=path,
        model_kwargs={"device": device},
        encode_kwargs={"batch_size": BATCH_SIZE, "normalize_embeddings": True},
    )
    return Embedder(
        "langchain HuggingFaceEmbeddings", False, model.embed_documents, model.embed_query, model.aembed_query
    )


def _llama_index_hf(path: str, device: str, batch_size: int = BATCH_SIZE) -> Embedder:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    model = HuggingFaceEmbedding(model_name=path, device=device, embed_batch_size=batch_size, normalize=True)
    return Embedder(
        _named("llama-index HuggingFaceEmbedding", batch_size),
        False,
        model.get_text_embedding_batch,
        model.get_query_embedding,
        model.aget_query_embedding,
    )


def _haystack_st(path: str, device: str) -> Embedder:
    from haystack import Document
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )

    where = ComponentDevice.from_str(device)
    documents = SentenceTransformersDocumentEmbedder(
        model=path, device=where, batch_size=BATCH_SIZE, normalize_embeddings=True, progress_bar=False
    )
    text = SentenceTransformersTextEmbedder(
        model=path, device=where, batch_size=BATCH_SIZE, normalize_embeddings=True, progress_bar=False
    )
    documents.warm_up()
    text.warm_up()

    async def aembed(query: str) -> Any:
        # What Haystack's AsyncPipeline does with a component that has no run_async.
        return await asyncio.to_thread(text.run, text=query)

    return Embedder(
        "haystack SentenceTransformers",
        False,
        lambda texts: documents.run(documents=[Document(content=t) for t in texts]),
        lambda query: text.run(text=query),
        aembed,
    )


def _st_cross_encoder(path: str, device: str, batch_size: int = BATCH_SIZE) -> Reranker:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(path, device=device, max_length=512)
    return Reranker(
        _named("sentence-transformers CrossEncoder", batch_size),
        False,
        lambda query, texts: model.rank(query, texts, top_k=TOP_N, batch_size=batch_size),
    )


def _langchain_cross_encoder(path: str, device: str) -> Reranker:
    import warnings

    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_core.documents import Document

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder

    model = CrossEncoderReranker(
        model=HuggingFaceCrossEncoder(model_name=path, model_kwargs={"device": device}), top_n=TOP_N
    )
    return Reranker(
        "langchain CrossEncoderReranker",
        False,
        lambda query, texts: model.compress_documents([Document(page_content=t) for t in texts], query),
        lambda query, texts: model.acompress_documents([Document(page_content=t) for t in texts], query),
    )


def _llama_index_sbert(path: str, device: str) -> Reranker:
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, TextNode

    model = SentenceTransformerRerank(model=path, top_n=TOP_N, device=device)

    def nodes(texts: list[str]) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=t), score=0.0) for t in texts]

    return Reranker(
        "llama-index SentenceTransformerRerank",
        False,
        lambda query, texts: model.postprocess_nodes(nodes(texts), query_str=query),
        lambda query, texts: model.apostprocess_nodes(nodes(texts), query_str=query),
    )


def _haystack_similarity(path: str, device: str) -> Reranker:
    from haystack import Document
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.rankers.sentence_transformers import SentenceTransformersSimilarityRanker

    model = SentenceTransformersSimilarityRanker(
        model=path, device=ComponentDevice.from_str(device), top_k=TOP_N, batch_size=BATCH_SIZE
    )
    model.warm_up()

    async def arerank(query: str, texts: list[str]) -> Any:
        return await asyncio.to_thread(model.run, query=query, documents=[Document(content=t) for t in texts])

    return Reranker(
        "haystack SentenceTransformersSimilarityRanker",
        False,
        lambda query, texts: model.run(query=query, documents=[Document(content=t) for t in texts]),
        arerank,
    )
