from __future__ import annotations

import math

import pytest

from bge_integrations.evaluation.bm25 import BM25, tokenize

CORPUS = ["pandas eat bamboo", "paris is in france", "bamboo grows fast and bamboo is tall", ""]


def lucene_bm25(query: str, doc: str, corpus: list[str], k1: float = 1.2, b: float = 0.75) -> float:
    """BM25 for one document, straight from the formula."""
    docs = [tokenize(text) for text in corpus]
    mean_length = sum(map(len, docs)) / len(docs)
    words = tokenize(doc)
    total = 0.0
    for term in tokenize(query):
        df = sum(term in d for d in docs)
        if df == 0:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        tf = words.count(term)
        total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / mean_length))
    return total


def test_tokenize_lowercases_word_runs() -> None:
    assert tokenize("Giant PANDAS, eat-bamboo! 42x") == ["giant", "pandas", "eat", "bamboo", "42x"]
    assert tokenize("") == []


@pytest.mark.parametrize("query", ["bamboo", "pandas eat bamboo", "is bamboo bamboo", "nothing matches", ""])
def test_scores_equal_the_formula(query: str) -> None:
    scores = BM25(CORPUS).scores(query)
    assert scores.tolist() == pytest.approx([lucene_bm25(query, doc, CORPUS) for doc in CORPUS], abs=1e-12)


def test_parameters_change_scores() -> None:
    flat = BM25(CORPUS, b=0.0).scores("bamboo")
    assert flat.tolist() == pytest.approx([lucene_bm25("bamboo", d, CORPUS, b=0.0) for d in CORPUS], abs=1e-12)
    assert flat.tolist() != BM25(CORPUS).scores("bamboo").tolist()


def test_top_orders_by_score_and_keeps_corpus_order_for_ties() -> None:
    index = BM25(["a b", "c", "a b", "a"])
    assert index.top("a b", 3) == [0, 2, 3]
    assert index.top("zzz", 2) == [0, 1]  # all zero: corpus order


def test_empty_corpus_and_bad_settings() -> None:
    assert BM25([]).scores("a").tolist() == []
    with pytest.raises(ValueError, match="k1 must be >= 0, got -1"):
        BM25(CORPUS, k1=-1)
    with pytest.raises(ValueError, match=r"b must be in 0\.\.1, got 1\.5"):
        BM25(CORPUS, b=1.5)
