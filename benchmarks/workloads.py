"""The inputs the benchmarks run on, all from SciFact in ``../shared/data`` (or any BEIR folder).

* documents: abstracts as MTEB embeds them, ``(title + " " + text).strip()``, a seeded sample;
* queries: SciFact's test claims;
* candidates: for each query, the 100 abstracts a TF-IDF retriever ranks first over the whole
  corpus: the lengths a reranker reads after first-stage retrieval;
* long passages: four consecutive candidates joined, 600-1,500 tokens: longer than the window.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bge_integrations.evaluation.beir import load_beir

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Workload:
    """Texts for every benchmark, fixed by a seed."""

    documents: list[str]
    queries: list[str]
    candidates: list[list[str]]
    long_passages: list[list[str]]


def load_workload(
    data: Path = DEFAULT_DATA,
    *,
    documents: int = 256,
    queries: int = 64,
    rerank_queries: int = 4,
    candidates: int = 100,
    seed: int = 0,
) -> Workload:
    """Sample the benchmark texts from a BEIR collection."""
    collection = load_beir(data)
    corpus = collection.doc_texts
    query_texts = list(collection.queries.values())
    rng = random.Random(seed)
    sample = rng.sample(corpus, min(documents, len(corpus)))
    asked = rng.sample(query_texts, min(max(queries, rerank_queries), len(query_texts)))
    rerank_asked = asked[:rerank_queries]
    retrieved = [_tfidf_top(query, corpus, candidates) for query in rerank_asked]
    long_passages = [[" ".join(ranked[i : i + 4]) for i in range(0, min(len(ranked), 80), 4)] for ranked in retrieved]
    return Workload(
        documents=sample,
        queries=asked[:queries],
        candidates=retrieved,
        long_passages=long_passages,
    )


def _tfidf_top(query: str, corpus: list[str], k: int) -> list[str]:
    tokenized = [Counter(_WORD.findall(text.lower())) for text in corpus]
    frequency: Counter[str] = Counter()
    for counts in tokenized:
        frequency.update(counts.keys())
    size = len(corpus)
    terms = set(_WORD.findall(query.lower()))
    weights = {term: math.log(size / (1 + frequency[term])) for term in terms}

    def score(counts: Counter[str]) -> float:
        return sum(weights[t] * (1 + math.log(counts[t])) for t in terms if counts[t]) / math.sqrt(1 + len(counts))

    ranked = sorted(range(size), key=lambda i: -score(tokenized[i]))
    return [corpus[i] for i in ranked[:k]]
