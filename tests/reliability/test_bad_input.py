"""Bad input at every entry point: the tests behind the table in docs/reliability.md ("Bad input").

Each test takes one kind of input (a row of the table) through every entry point that can receive
it: the core engines, each adapter (sync and async) and the CLI. Accepted input must give exactly
one result per input, in input order, each equal (1e-5) to what the core gives for that text sent
alone; rejected input must raise the documented error, naming the bad value and its position.

The models are built once per session and kept loaded for the whole module (the conftest's
per-test registry reset is overridden below; truncation warnings are still reset per test).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from haystack import Document as HaystackDocument
from langchain_core.documents import Document as LangChainDocument
from langchain_core.runnables import RunnableLambda
from llama_index.core.schema import MetadataMode as LlamaMetadataMode
from llama_index.core.schema import Node, NodeWithScore, QueryBundle, TextNode

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.cli import main
from bge_integrations.core.notices import TruncationMonitor, TruncationWarning
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
from bge_integrations.langchain import BGECrossEncoder, BGEEmbeddings
from bge_integrations.langchain import BGERerank as LangChainRerank
from bge_integrations.llama_index import BGEEmbedding
from bge_integrations.llama_index import BGERerank as LlamaRerank

TOLERANCE = 1e-5
QUERY = "Where do giant pandas live?"
A = "The giant panda is a bear species endemic to China."
B = "Paris is the capital and most populous city of France."


def _five_megabytes() -> str:
    sentences = " ".join(A.split()[:6] + B.split()[:5]) + ". "
    return (sentences * (5 * 2**20 // len(sentences) + 1))[: 5 * 2**20]


FIVE_MB = _five_megabytes()
OVER_WINDOW = " ".join(["giant panda bamboo forest China"] * 150)
"""About 800 tokens: longer than the embedder's 512 and the reranker's 384 query tokens."""


@dataclass(frozen=True)
class Text:
    """An accepted input: the text given, whether it is longer than the window, what is read if not it."""

    given: str
    long: bool = False
    replaced: str | None = None

    @property
    def read_as(self) -> str:
        """The text the model reads (the core's result for it alone is the expected one)."""
        return self.given if self.replaced is None else self.replaced


ACCEPTED = {
    "empty": Text(""),
    "whitespace_only": Text(" \t\n\r\u00a0\u3000 "),
    "nul_bytes": Text("nul\x00in the\x00middle"),
    "control_chars": Text("bell\x07 esc\x1b[31m del\x7f zw\u200b bom\ufeff ls\u2028end"),
    "right_to_left": Text("שלום עולם — مرحبا بالعالم \u202eevil\u202c \u2067isolate\u2069"),
    "mixed_scripts": Text("Giant panda, большая панда, πάντα, 大熊猫, パンダ, 판다, पांडा"),
    "emoji": Text("🐼 eats 🎋 👍🏽 👨‍👩‍👧 🇨🇳"),
    "chinese": Text("大熊猫是中国特有的熊科动物，生活在山区竹林里。"),
    "lone_surrogates": Text(
        "half a pair \ud83d, a low one \udc3c, a whole pair \ud83d\udc3c",
        replaced="half a pair \ufffd, a low one \ufffd, a whole pair \U0001f43c",
    ),
    "over_window": Text(OVER_WINDOW, long=True),
    "five_megabytes": Text(FIVE_MB, long=True),
}
TEXTS = list(ACCEPTED)
PASSAGES = [name for name in ACCEPTED if name != "five_megabytes"]
"""A 5 MB passage is read in about 2,400 windows (45 s on the tiny reranker): see test_five_megabytes_*."""
REJECTED_ITEMS = {"none": None, "int": 5, "bytes": b"bytes", "dict": {"text": "a"}}
REJECTED_COLLECTIONS = {"none": None, "a_string": "one text", "a_set": {"a", "b"}, "an_int": 5}


# ----------------------------------------------------------------------------------------------
# Models, built once, and reference results: each text sent alone to the core.


@dataclass
class Models:
    embedder_path: str
    reranker_path: str
    embedder: BGEEmbedder
    reranker: BGEReranker
    lc_embeddings: BGEEmbeddings
    lc_rerank: LangChainRerank
    lc_cross: BGECrossEncoder
    li_embedding: BGEEmbedding
    li_rerank: LlamaRerank
    hs_text: BGETextEmbedder
    hs_docs: BGEDocumentEmbedder
    hs_ranker: BGERanker
    reference_embedder: BGEEmbedder
    reference_reranker: BGEReranker
    _vectors: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    _scores: dict[tuple[str, str], float] = field(default_factory=dict)

    def vector(self, text: str, role: str) -> list[float]:
        """The core's vector for text alone (as a query or a document)."""
        key = (role, text)
        if key not in self._vectors:
            embedder = self.reference_embedder
            with quiet():
                vector = embedder.embed_query(text) if role == "query" else embedder.embed_documents([text])[0]
            self._vectors[key] = vector
        return self._vectors[key]

    def score(self, query: str, passage: str) -> float:
        """The core's score for passage alone against query."""
        key = (query, passage)
        if key not in self._scores:
            with quiet():
                self._scores[key] = self.reference_reranker.score(query, [passage])[0]
        return self._scores[key]

    def lc_rerank_with(self, top_n: int | None) -> LangChainRerank:
        if top_n is None:
            return self.lc_rerank
        return LangChainRerank(model_name=self.reranker_path, device="cpu", top_n=top_n)

    def li_rerank_with(self, top_n: int | None) -> LlamaRerank:
        if top_n is None:
            return self.li_rerank
        return LlamaRerank(model=self.reranker_path, device="cpu", top_n=top_n)


@pytest.fixture(scope="session")
def models(tiny_embedder_path: str, tiny_reranker_path: str) -> Models:
    emb, rr = tiny_embedder_path, tiny_reranker_path
    return Models(
        embedder_path=emb,
        reranker_path=rr,
        embedder=BGEEmbedder(emb, device="cpu"),
        reranker=BGEReranker(rr, device="cpu"),
        lc_embeddings=BGEEmbeddings(model_name=emb, device="cpu"),
        lc_rerank=LangChainRerank(model_name=rr, device="cpu", top_n=None),
        lc_cross=BGECrossEncoder(model_name=rr, device="cpu"),
        li_embedding=BGEEmbedding(emb, device="cpu"),
        li_rerank=LlamaRerank(model=rr, device="cpu", top_n=None),
        hs_text=BGETextEmbedder(model=emb, device="cpu"),
        hs_docs=BGEDocumentEmbedder(model=emb, device="cpu", progress_bar=False),
        hs_ranker=BGERanker(model=rr, device="cpu", top_k=1000),
        reference_embedder=BGEEmbedder(emb, device="cpu"),
        reference_reranker=BGEReranker(rr, device="cpu"),
    )


@pytest.fixture(autouse=True)
def _fresh_state() -> None:
    """Overrides the conftest's: models stay loaded across this module; warnings start fresh."""
    TruncationMonitor.reset_warnings()


@contextmanager
def quiet() -> Iterator[None]:
    """No truncation warning (references are computed outside what a test checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        yield


@contextmanager
def truncation(expected: bool) -> Iterator[None]:
    """Expect a TruncationWarning, or make one an error."""
    TruncationMonitor.reset_warnings()
    if expected:
        with pytest.warns(TruncationWarning):
            yield
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)
            yield


def close(got: list[float], expected: list[float]) -> bool:
    return bool(np.abs(np.asarray(got) - np.asarray(expected)).max() <= TOLERANCE)


def names(value: Any, message: str) -> bool:
    """Whether an error message names what was given (its type, or None as such)."""
    return type(value).__name__ in message or (value is None and "got None" in message)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def as_list(items: Any, wrap: Callable[[int, str], Any]) -> Any:
    """Wrap the strings of a list in a framework's type; anything else (bad input) goes as is."""
    if not isinstance(items, list):
        return items
    return [wrap(i, item) if isinstance(item, str) else item for i, item in enumerate(items)]


# ----------------------------------------------------------------------------------------------
# Entry points that embed a list of texts (or framework documents holding them).


def _hs_docs(items: Any) -> Any:
    return as_list(items, lambda i, text: HaystackDocument(content=text, id=f"d{i}"))


def _li_nodes(items: Any) -> Any:
    return as_list(items, lambda i, text: TextNode(text=text, id_=f"n{i}"))


def _hs_vectors(out: dict[str, list[HaystackDocument]], given: list[Any]) -> list[list[float]]:
    assert [doc.id for doc in out["documents"]] == [f"d{i}" for i in range(len(given))]
    return [doc.embedding for doc in out["documents"]]


def _li_vectors(nodes: Any) -> list[list[float]]:
    return [node.embedding for node in nodes]


@dataclass(frozen=True)
class Embed:
    """An entry point that embeds a list: its name, role, how errors name an item, and a call."""

    name: str
    role: str
    item: str
    call: Callable[[Models, Any], list[list[float]]]

    def __str__(self) -> str:
        return self.name


EMBED = [
    Embed("core.embed_documents", "document", "texts", lambda m, t: m.embedder.embed_documents(t)),
    Embed("core.embed_queries", "query", "texts", lambda m, t: m.embedder.embed_queries(t)),
    Embed("core.aembed_documents", "document", "texts", lambda m, t: run(m.embedder.aembed_documents(t))),
    Embed("core.aembed_queries", "query", "texts", lambda m, t: run(m.embedder.aembed_queries(t))),
    Embed("langchain.embed_documents", "document", "texts", lambda m, t: m.lc_embeddings.embed_documents(t)),
    Embed("langchain.aembed_documents", "document", "texts", lambda m, t: run(m.lc_embeddings.aembed_documents(t))),
    Embed(
        "llama_index.get_text_embedding_batch",
        "document",
        "texts",
        lambda m, t: m.li_embedding.get_text_embedding_batch(t),
    ),
    Embed(
        "llama_index.aget_text_embedding_batch",
        "document",
        "texts",
        lambda m, t: run(m.li_embedding.aget_text_embedding_batch(t)),
    ),
    Embed("llama_index.__call__(nodes)", "document", "nodes", lambda m, t: _li_vectors(m.li_embedding(_li_nodes(t)))),
    Embed(
        "llama_index.acall(nodes)",
        "document",
        "nodes",
        lambda m, t: _li_vectors(run(m.li_embedding.acall(_li_nodes(t)))),
    ),
    Embed(
        "haystack.BGEDocumentEmbedder.run",
        "document",
        "documents",
        lambda m, t: _hs_vectors(m.hs_docs.run(documents=_hs_docs(t)), t),
    ),
    Embed(
        "haystack.BGEDocumentEmbedder.run_async",
        "document",
        "documents",
        lambda m, t: _hs_vectors(run(m.hs_docs.run_async(documents=_hs_docs(t))), t),
    ),
]


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize("entry", EMBED, ids=str)
def test_embed_accepted_text_keeps_its_place(models: Models, entry: Embed, name: str) -> None:
    text = ACCEPTED[name]
    expected = [models.vector(t, entry.role) for t in (A, text.read_as, B)]
    with truncation(text.long):
        got = entry.call(models, [A, text.given, B])
    assert len(got) == 3
    assert all(close(g, e) for g, e in zip(got, expected, strict=True))


@pytest.mark.parametrize("bad", REJECTED_ITEMS)
@pytest.mark.parametrize("entry", EMBED, ids=str)
def test_embed_rejected_item_is_named_by_position(models: Models, entry: Embed, bad: str) -> None:
    value = REJECTED_ITEMS[bad]
    with pytest.raises(TypeError, match=rf"{entry.item}\[1\]") as error:
        entry.call(models, [A, value, B])
    assert names(value, str(error.value))


@pytest.mark.parametrize("bad", REJECTED_COLLECTIONS)
@pytest.mark.parametrize("entry", EMBED, ids=str)
def test_embed_rejected_collection_is_named(models: Models, entry: Embed, bad: str) -> None:
    value = REJECTED_COLLECTIONS[bad]
    with pytest.raises(TypeError) as error:
        entry.call(models, value)
    message = str(error.value)
    assert entry.item in message or "Documents" in message
    assert names(value, message)


@pytest.mark.parametrize("entry", EMBED, ids=str)
def test_embed_empty_list_gives_empty_list(models: Models, entry: Embed) -> None:
    assert entry.call(models, []) == []


@pytest.mark.parametrize("entry", EMBED, ids=str)
def test_embed_duplicates_each_get_their_vector(models: Models, entry: Embed) -> None:
    got = entry.call(models, [A, B, A, A])
    assert len(got) == 4
    for vector, text in zip(got, [A, B, A, A], strict=True):
        assert close(vector, models.vector(text, entry.role))
    assert got[0] == got[2] == got[3]


# ----------------------------------------------------------------------------------------------
# Entry points that embed one text.


@dataclass(frozen=True)
class Single:
    """An entry point that embeds one text: its name, role, the argument's name, and a call."""

    name: str
    role: str
    argument: str
    call: Callable[[Models, Any], list[float]]

    def __str__(self) -> str:
        return self.name


SINGLE = [
    Single("core.embed_query", "query", "text", lambda m, t: m.embedder.embed_query(t)),
    Single("core.aembed_query", "query", "text", lambda m, t: run(m.embedder.aembed_query(t))),
    Single("langchain.embed_query", "query", "text", lambda m, t: m.lc_embeddings.embed_query(t)),
    Single("langchain.aembed_query", "query", "text", lambda m, t: run(m.lc_embeddings.aembed_query(t))),
    Single("llama_index.get_query_embedding", "query", "query", lambda m, t: m.li_embedding.get_query_embedding(t)),
    Single(
        "llama_index.aget_query_embedding",
        "query",
        "query",
        lambda m, t: run(m.li_embedding.aget_query_embedding(t)),
    ),
    Single("llama_index.get_text_embedding", "document", "text", lambda m, t: m.li_embedding.get_text_embedding(t)),
    Single(
        "llama_index.aget_text_embedding",
        "document",
        "text",
        lambda m, t: run(m.li_embedding.aget_text_embedding(t)),
    ),
    Single("haystack.BGETextEmbedder.run", "query", "text", lambda m, t: m.hs_text.run(text=t)["embedding"]),
    Single(
        "haystack.BGETextEmbedder.run_async",
        "query",
        "text",
        lambda m, t: run(m.hs_text.run_async(text=t))["embedding"],
    ),
]


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize("entry", SINGLE, ids=str)
def test_single_accepted_text_embeds_as_the_core(models: Models, entry: Single, name: str) -> None:
    text = ACCEPTED[name]
    expected = models.vector(text.read_as, entry.role)
    with truncation(text.long):
        got = entry.call(models, text.given)
    assert close(got, expected)


@pytest.mark.parametrize("bad", REJECTED_ITEMS)
@pytest.mark.parametrize("entry", SINGLE, ids=str)
def test_single_rejected_value_is_named(models: Models, entry: Single, bad: str) -> None:
    value = REJECTED_ITEMS[bad]
    with pytest.raises(TypeError, match=rf"\b{entry.argument}\b") as error:
        entry.call(models, value)
    assert f"got {type(value).__name__}" in str(error.value)


# ----------------------------------------------------------------------------------------------
# Entry points that rerank passages for a query.


def _lc_docs(items: Any) -> Any:
    return as_list(items, lambda i, text: LangChainDocument(page_content=text, metadata={"i": i}))


def _lc_ranked(docs: Any) -> list[tuple[int, float]]:
    return [(doc.metadata["i"], doc.metadata["relevance_score"]) for doc in docs]


def _li_scored(items: Any) -> Any:
    return as_list(items, lambda i, text: NodeWithScore(node=TextNode(text=text, id_=f"n{i}"), score=0.5))


def _li_ranked(nodes: list[NodeWithScore]) -> list[tuple[int, float]]:
    return [(int(scored.node.id_[1:]), float(scored.score or 0.0)) for scored in nodes]


def _hs_ranked(out: dict[str, list[HaystackDocument]]) -> list[tuple[int, float]]:
    return [(int(str(doc.id)[1:]), float(doc.score or 0.0)) for doc in out["documents"]]


def _in_order(scores: list[float]) -> list[tuple[int, float]]:
    return list(enumerate(scores))


def _lc_retriever(m: Models, query: Any, docs: Any, top_n: int | None, *, sync: bool) -> list[tuple[int, float]]:
    retriever = m.lc_rerank_with(top_n).as_retriever(RunnableLambda(lambda _: _lc_docs(docs)))
    return _lc_ranked(retriever.invoke(query) if sync else run(retriever.ainvoke(query)))


def _cross_pairs(query: Any, docs: Any) -> Any:
    return [(query, doc) for doc in docs] if isinstance(docs, list) else docs


def _hs_top_k(top_n: int | None) -> int:
    return 1000 if top_n is None else top_n


RerankCall = Callable[[Models, Any, Any, "int | None"], list[tuple[int, float]]]


@dataclass(frozen=True)
class Rerank:
    """A reranking entry point: how errors name a passage and the query, its top-n setting, a call.

    ``top_n`` is None for entry points that score every passage in input order (no ranking).
    """

    name: str
    item: str
    query: str
    top_n: str | None
    call: RerankCall

    @property
    def ranks(self) -> bool:
        return self.top_n is not None

    def __str__(self) -> str:
        return self.name


RERANK = [
    Rerank("core.score", "documents", "query", None, lambda m, q, d, n: _in_order(m.reranker.score(q, d))),
    Rerank("core.ascore", "documents", "query", None, lambda m, q, d, n: _in_order(run(m.reranker.ascore(q, d)))),
    Rerank(
        "core.rank",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: [(r.index, r.score) for r in m.reranker.rank(q, d, n)],
    ),
    Rerank(
        "core.arank",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: [(r.index, r.score) for r in run(m.reranker.arank(q, d, n))],
    ),
    Rerank(
        "langchain.BGERerank.compress_documents",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: _lc_ranked(m.lc_rerank_with(n).compress_documents(_lc_docs(d), q)),
    ),
    Rerank(
        "langchain.BGERerank.acompress_documents",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: _lc_ranked(run(m.lc_rerank_with(n).acompress_documents(_lc_docs(d), q))),
    ),
    Rerank(
        "langchain.BGERerankRetriever.invoke",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: _lc_retriever(m, q, d, n, sync=True),
    ),
    Rerank(
        "langchain.BGERerankRetriever.ainvoke",
        "documents",
        "query",
        "top_n",
        lambda m, q, d, n: _lc_retriever(m, q, d, n, sync=False),
    ),
    Rerank(
        "langchain.BGECrossEncoder.score",
        "text_pairs",
        r"text_pairs\[0\]\[0\]",
        None,
        lambda m, q, d, n: _in_order(m.lc_cross.score(_cross_pairs(q, d))),
    ),
    Rerank(
        "llama_index.BGERerank.postprocess_nodes",
        "nodes",
        "query",
        "top_n",
        lambda m, q, d, n: _li_ranked(m.li_rerank_with(n).postprocess_nodes(_li_scored(d), QueryBundle(q))),
    ),
    Rerank(
        "llama_index.BGERerank.apostprocess_nodes",
        "nodes",
        "query",
        "top_n",
        lambda m, q, d, n: _li_ranked(run(m.li_rerank_with(n).apostprocess_nodes(_li_scored(d), QueryBundle(q)))),
    ),
    Rerank(
        "haystack.BGERanker.run",
        "documents",
        "query",
        "top_k",
        lambda m, q, d, n: _hs_ranked(m.hs_ranker.run(query=q, documents=_hs_docs(d), top_k=_hs_top_k(n))),
    ),
    Rerank(
        "haystack.BGERanker.run_async",
        "documents",
        "query",
        "top_k",
        lambda m, q, d, n: _hs_ranked(run(m.hs_ranker.run_async(query=q, documents=_hs_docs(d), top_k=_hs_top_k(n)))),
    ),
]
RANKING = [entry for entry in RERANK if entry.top_n is not None]
TAKES_A_LIST = [entry for entry in RERANK if "Retriever" not in entry.name]
"""The retriever's passages come from its base retriever, not from the caller."""


def check_ranked(ranks: bool, got: list[tuple[int, float]], expected: list[float], top_n: int | None = None) -> None:
    """One result per passage (or the best top_n), each with the score of its passage alone.

    ranks: whether got is best first (a ranking), or one score per passage in input order.
    """
    indices = [index for index, _ in got]
    if not ranks:
        assert indices == list(range(len(expected)))
    else:
        best_first = sorted(range(len(expected)), key=lambda i: -expected[i])
        assert len(got) == min(len(expected), top_n or len(expected))
        assert len(set(indices)) == len(indices)
        assert sorted(expected[i] for i in indices) == sorted(expected[i] for i in best_first[: len(got)])
        assert [score for _, score in got] == sorted((score for _, score in got), reverse=True)
    for index, score in got:
        assert abs(score - expected[index]) <= TOLERANCE


@pytest.mark.parametrize("name", PASSAGES)
@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_accepted_passage_keeps_its_place(models: Models, entry: Rerank, name: str) -> None:
    text = ACCEPTED[name]
    passages = [A, text.given, B]
    expected = [models.score(QUERY, t) for t in (A, text.read_as, B)]
    with truncation(False):  # long passages are read as windows, never cut
        got = entry.call(models, QUERY, passages, None)
    check_ranked(entry.ranks, got, expected)


@pytest.mark.parametrize("name", TEXTS)
@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_accepted_query(models: Models, entry: Rerank, name: str) -> None:
    text = ACCEPTED[name]
    expected = [models.score(text.read_as, t) for t in (A, B)]
    with truncation(text.long):  # the query is cut to max_query_length
        got = entry.call(models, text.given, [A, B], None)
    check_ranked(entry.ranks, got, expected)


@pytest.mark.parametrize("bad", REJECTED_ITEMS)
@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_rejected_passage_is_named_by_position(models: Models, entry: Rerank, bad: str) -> None:
    value = REJECTED_ITEMS[bad]
    with pytest.raises(TypeError, match=rf"{entry.item}\[1\]") as error:
        entry.call(models, QUERY, [A, value, B], None)
    assert names(value, str(error.value))


@pytest.mark.parametrize("bad", REJECTED_ITEMS)
@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_rejected_query_is_named(models: Models, entry: Rerank, bad: str) -> None:
    value = REJECTED_ITEMS[bad]
    with pytest.raises(TypeError, match=entry.query) as error:
        entry.call(models, value, [A, B], None)
    assert names(value, str(error.value))


@pytest.mark.parametrize("bad", REJECTED_COLLECTIONS)
@pytest.mark.parametrize("entry", TAKES_A_LIST, ids=str)
def test_rerank_rejected_collection_is_named(models: Models, entry: Rerank, bad: str) -> None:
    value = REJECTED_COLLECTIONS[bad]
    with pytest.raises(TypeError, match=re.compile(entry.item, re.IGNORECASE)) as error:
        entry.call(models, QUERY, value, None)
    assert names(value, str(error.value))


@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_empty_list_gives_empty_list(models: Models, entry: Rerank) -> None:
    assert entry.call(models, QUERY, [], None) == []


@pytest.mark.parametrize("entry", RERANK, ids=str)
def test_rerank_duplicates_are_all_kept_and_scored_alike(models: Models, entry: Rerank) -> None:
    got = entry.call(models, QUERY, [A, B, A, A], None)
    check_ranked(entry.ranks, got, [models.score(QUERY, t) for t in (A, B, A, A)])
    scores = dict(got)
    assert scores[0] == scores[2] == scores[3]
    a_positions = [index for index, _ in got if index != 1]
    assert a_positions == [0, 2, 3]  # ties keep input order


@pytest.mark.parametrize("top_n", [0, -1])
@pytest.mark.parametrize("entry", RANKING, ids=str)
def test_top_n_zero_or_negative_is_refused_naming_it(models: Models, entry: Rerank, top_n: int) -> None:
    # Every framework's convention: Haystack's rankers raise ValueError for top_k <= 0; LangChain and
    # LlamaIndex fields are pydantic (a ValidationError, which is a ValueError).
    with pytest.raises(ValueError) as error:  # noqa: PT011  # the message is checked below
        entry.call(models, QUERY, [A, B, A], top_n)
    message = str(error.value)
    assert entry.top_n in message
    assert f"got {top_n}" in message or f"input_value={top_n}" in message


@pytest.mark.parametrize("top_n", [2, 3, 10])
@pytest.mark.parametrize("entry", RANKING, ids=str)
def test_top_n_keeps_the_best_and_at_most_all(models: Models, entry: Rerank, top_n: int) -> None:
    passages = [A, B, "Pandas eat bamboo in the mountains of Sichuan."]
    got = entry.call(models, QUERY, passages, top_n)
    check_ranked(entry.ranks, got, [models.score(QUERY, t) for t in passages], top_n)


def test_five_megabytes_costs_milliseconds_to_tokenize(models: Models) -> None:
    # The text is read only up to its window (or its windows=False passage window): tokenising it
    # all first took seconds. Timed after a first call, so loading is not counted.
    fast = BGEReranker(models.reranker_path, device="cpu", windows=False)
    calls = {
        "embed": lambda: models.embedder.embed_documents([A, FIVE_MB]),
        "rerank query": lambda: models.reranker.score(FIVE_MB, [A, B]),
        "rerank passage, windows=False": lambda: fast.score(QUERY, [A, FIVE_MB]),
    }
    for what, call in calls.items():
        with quiet():
            call()
            started = time.perf_counter()
            call()
        assert time.perf_counter() - started < 1.0, what


def _assert_cut_and_aligned(reranker: BGEReranker) -> None:
    """A 5 MB passage between two short ones: cut (warned), and every score as when scored alone."""
    with quiet():
        expected = [reranker.score(QUERY, [text])[0] for text in (A, FIVE_MB, B)]
    with truncation(True):
        got = reranker.score(QUERY, [A, FIVE_MB, B])
    assert all(abs(g - e) <= TOLERANCE for g, e in zip(got, expected, strict=True))


def test_five_megabyte_passage_without_windows_is_cut_and_aligned(models: Models) -> None:
    _assert_cut_and_aligned(BGEReranker(models.reranker_path, device="cpu", windows=False))


def test_five_megabyte_passage_with_max_windows_reads_its_first_windows_aligned(models: Models) -> None:
    bounded = BGEReranker(models.reranker_path, device="cpu", max_windows=3)
    encoder = bounded._loaded().pair_encoder(512, 384, 64)
    batch = encoder.encode(QUERY, [A, FIVE_MB, B], windows=True, max_windows=3)
    assert batch.owners == [0, 1, 1, 1, 2]
    assert batch.cut_passages == [1]
    _assert_cut_and_aligned(bounded)


def test_long_query_with_long_passage_stays_small(models: Models) -> None:
    # post_process combined every overflowing part of the truncated query with every one of the
    # truncated passage (and copied the passage's for each): here about a billion tokens, which
    # exhausted memory. The pair is now joined from the post-processor's layout.
    small = BGEReranker(models.reranker_path, device="cpu", max_length=128, max_query_length=64)
    query, passage = OVER_WINDOW * 10, " ".join([A, B] * 300)
    with quiet():
        started = time.perf_counter()
        got = small.score(query, [A, passage, B])
        assert time.perf_counter() - started < 30
        expected = [small.score(query, [text])[0] for text in (A, passage, B)]
    assert all(abs(g - e) <= TOLERANCE for g, e in zip(got, expected, strict=True))


# ----------------------------------------------------------------------------------------------
# Each framework's document type: empty or missing content, metadata that is not JSON.


class Opaque:
    """Neither JSON nor copyable."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return "Opaque()"


def non_json_metadata() -> dict[str, Any]:
    return {"when": datetime.datetime(2024, 1, 2, 3, 4, 5), "lock": threading.Lock(), "opaque": Opaque()}


def test_langchain_empty_content_and_uncopyable_metadata(models: Models) -> None:
    docs = [
        LangChainDocument(page_content=A, metadata={"i": 0, **non_json_metadata()}),
        LangChainDocument(page_content="", metadata={"i": 1}),
        LangChainDocument(page_content=B, metadata={"i": 2}),
    ]
    expected = [models.score(QUERY, t) for t in (A, "", B)]
    compressed = models.lc_rerank.compress_documents(docs, QUERY)
    retrieved = models.lc_rerank.as_retriever(RunnableLambda(lambda _: docs)).invoke(QUERY)
    for out in (compressed, retrieved):
        check_ranked(True, _lc_ranked(out), expected)
        first = next(doc for doc in out if doc.metadata["i"] == 0)
        assert first.metadata["when"] == docs[0].metadata["when"]
        assert first.metadata["lock"] is docs[0].metadata["lock"]  # cannot be copied: shared
    assert "relevance_score" not in docs[0].metadata  # the inputs are not changed


def test_llama_index_empty_text_missing_text_and_non_json_metadata(models: Models) -> None:
    nodes = [
        TextNode(text=A, id_="n0", metadata=non_json_metadata()),
        TextNode(text="", id_="n1"),
        Node(id_="n2"),  # no text at all: read as ""
        TextNode(text=B, id_="n3"),
    ]
    texts = [node.get_content(metadata_mode=LlamaMetadataMode.EMBED) for node in nodes]
    assert texts[0].startswith("when: 2024-01-02 03:04:05")
    assert texts[1:3] == ["", ""]

    out = models.li_rerank.postprocess_nodes([NodeWithScore(node=n, score=0.5) for n in nodes], query_str=QUERY)
    check_ranked(True, _li_ranked(out), [models.score(QUERY, t) for t in texts])

    embedded = models.li_embedding(nodes)
    for node, text in zip(embedded, texts, strict=True):
        assert close(node.embedding, models.vector(text, "document"))


def test_llama_index_postprocessor_names_a_bare_node(models: Models) -> None:
    with pytest.raises(
        TypeError, match=r"nodes\[0\] must be a NodeWithScore, got TextNode.*NodeWithScore\(node=node\)"
    ):
        models.li_rerank.postprocess_nodes([TextNode(text=A)], query_str=QUERY)


@pytest.mark.parametrize("content", [None, ""])
def test_haystack_document_without_content_is_read_as_empty(models: Models, content: str | None) -> None:
    # As Haystack's SentenceTransformers embedder and ranker do: `doc.content or ""`.
    docs = [
        HaystackDocument(content=A, id="d0"),
        HaystackDocument(content=content, id="d1"),
        HaystackDocument(content=B, id="d2"),
    ]
    vectors = _hs_vectors(models.hs_docs.run(documents=docs), docs)
    assert all(close(v, models.vector(t, "document")) for v, t in zip(vectors, (A, "", B), strict=True))
    ranked = _hs_ranked(models.hs_ranker.run(query=QUERY, documents=docs))
    check_ranked(True, ranked, [models.score(QUERY, t) for t in (A, "", B)])


def test_haystack_non_json_meta_is_embedded_as_text(models: Models) -> None:
    meta = non_json_metadata()
    fields = ["when", "opaque", "missing"]
    embedder = BGEDocumentEmbedder(
        model=models.embedder_path, device="cpu", progress_bar=False, meta_fields_to_embed=fields
    )
    ranker = BGERanker(model=models.reranker_path, device="cpu", meta_fields_to_embed=fields)
    docs = [HaystackDocument(content=A, meta=meta, id="d0"), HaystackDocument(content=B, id="d1")]
    read = ["2024-01-02 03:04:05\nOpaque()\n" + A, B]

    out = embedder.run(documents=docs)["documents"]
    assert all(close(d.embedding, models.vector(t, "document")) for d, t in zip(out, read, strict=True))
    assert out[0].meta["lock"] is meta["lock"]
    ranked = _hs_ranked(ranker.run(query=QUERY, documents=docs))
    check_ranked(True, ranked, [models.score(QUERY, t) for t in read])


@pytest.mark.parametrize("component", ["embedder", "ranker"])
def test_haystack_non_string_content_is_named(models: Models, component: str) -> None:
    with pytest.raises(ValueError, match="content"):  # Haystack's own check, at construction
        HaystackDocument(content=5)  # type: ignore[arg-type]
    changed = HaystackDocument(content=B, id="d1")
    object.__setattr__(changed, "content", 5)  # changed after construction: only ours catches it
    docs = [HaystackDocument(content=A, id="d0"), changed]
    call = models.hs_docs.run if component == "embedder" else partial(models.hs_ranker.run, query=QUERY)
    with pytest.raises(TypeError, match=r"documents\[1\] \(id 'd1'\) has content of type int"):
        call(documents=docs)


# ----------------------------------------------------------------------------------------------
# The command line: `embed` reads texts from a file, `demo` from --query.


def _embed_cli(
    models: Models, tmp_path: Path, lines: list[str], *extra: str, raw: bytes | None = None
) -> tuple[int, Path]:
    tmp_path.mkdir(exist_ok=True)
    source = tmp_path / "in.jsonl"
    if raw is None:
        source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    else:
        source.write_bytes(raw)
    out = tmp_path / "out"
    argv = ["embed", str(source), str(out), "--model", models.embedder_path, "--device", "cpu", "--no-progress"]
    return main([*argv, *extra]), out


def _row(identifier: str, text: Any) -> str:
    return json.dumps({"id": identifier, "text": text})  # ensure_ascii: surrogates as \ud83d escapes


@pytest.mark.parametrize("name", TEXTS)
def test_cli_embed_accepted_text_keeps_its_row(models: Models, tmp_path: Path, name: str) -> None:
    text = ACCEPTED[name]
    expected = [models.vector(t, "document") for t in (A, text.read_as, B)]
    with truncation(text.long):
        status, out = _embed_cli(models, tmp_path, [_row("a", A), _row("weird", text.given), _row("b", B)])
    assert status == 0
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["a", "weird", "b"]
    vectors = table.column("embedding").to_pylist()
    assert all(close(v, e) for v, e in zip(vectors, expected, strict=True))


BAD_ROWS = {
    "none": ('{"id": "x", "text": null}', "text is None"),
    "int": ('{"id": "x", "text": 5}', "text is int: 5"),
    "dict": ('{"id": "x", "text": {"a": 1}}', "text is dict: {'a': 1}"),
    "list": ('{"id": "x", "text": ["a"]}', "text is list: ['a']"),
    "missing": ('{"id": "x"}', "no 'text' field"),
}


@pytest.mark.parametrize("bad", BAD_ROWS)
def test_cli_embed_bad_row_stops_or_is_reported(
    models: Models, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    line, reason = BAD_ROWS[bad]
    lines = [_row("a", A), line, _row("b", B)]
    status, out = _embed_cli(models, tmp_path, lines)
    assert status == 2
    assert f"1 bad row in in.jsonl: id 'x' (row 1, line 2): {reason}" in capsys.readouterr().err
    assert not out.exists()  # checked before anything is embedded

    status, out = _embed_cli(models, tmp_path, lines, "--on-bad-rows", "report")
    assert status == 0
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == ["a", "x", "b"]
    assert table.column("error").to_pylist() == [None, reason, None]
    vectors = table.column("embedding").to_pylist()
    assert vectors[1] is None
    assert close(vectors[0], models.vector(A, "document"))
    assert close(vectors[2], models.vector(B, "document"))


def test_cli_embed_empty_file_and_duplicates(
    models: Models, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = _embed_cli(models, tmp_path / "empty", [])
    assert status == 0
    assert capsys.readouterr().out.startswith("0 rows in 0 parts")

    status, out = _embed_cli(models, tmp_path / "dup", [_row("1", A), _row("2", B), _row("3", A), _row("4", A)])
    assert status == 0
    vectors = pq.read_table(out).column("embedding").to_pylist()
    assert len(vectors) == 4
    assert vectors[0] == vectors[2] == vectors[3]
    assert close(vectors[1], models.vector(B, "document"))


def test_cli_embed_names_a_line_that_is_not_utf8(
    models: Models, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = (_row("a", A) + "\n").encode() + b'{"id": "b", "text": "caf\xe9"}\n'
    status, _ = _embed_cli(models, tmp_path, [], raw=raw)
    assert status == 2
    assert "in.jsonl, line 2 is not valid UTF-8 (byte 0xe9 at character 25)" in capsys.readouterr().err


def test_cli_embed_names_an_id_holding_a_lone_surrogate(
    models: Models, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = _embed_cli(models, tmp_path, [_row("a", A), _row("b\ud800", B)])
    assert status == 2
    assert "in.jsonl, line 2: the id 'b\\ud800' holds a lone surrogate" in capsys.readouterr().err


def _demo(models: Models, *extra: str) -> int:
    argv = ["demo", "--model", models.embedder_path, "--reranker", models.reranker_path, "--device", "cpu"]
    return main([*argv, *extra])


@pytest.mark.parametrize("name", TEXTS)
def test_cli_demo_accepted_query(models: Models, capsys: pytest.CaptureFixture[str], name: str) -> None:
    text = ACCEPTED[name]
    with truncation(text.long):
        assert _demo(models, "--query", text.given, "--top-n", "2") == 0
    out = capsys.readouterr().out
    assert f"\nQ: {text.read_as}\n" in out
    assert out.count("  rerank ") == 2


@pytest.mark.parametrize("option", ["--top-n", "--candidates"])
@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_cli_demo_counts_must_be_positive(
    models: Models, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        _demo(models, option, value)
    assert exited.value.code == 2
    assert f"argument {option}: must be an int > 0, got '{value}'" in capsys.readouterr().err


def test_cli_demo_top_n_above_the_candidates_shows_them_all(models: Models, capsys: pytest.CaptureFixture[str]) -> None:
    assert _demo(models, "--query", QUERY, "--candidates", "4", "--top-n", "50") == 0
    assert capsys.readouterr().out.count("  rerank ") == 4
