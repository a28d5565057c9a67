r"""Okapi BM25 over an in-memory corpus, with NumPy: a model-free first stage.

Used to pick hard negatives when a reranking set is derived from a BEIR collection
(:func:`~bge_integrations.evaluation.reranking.reranking_set_from_beir`): the negatives then
come from lexical retrieval, not from the model under test, which would otherwise be graded on
the very mistakes it chose.

Tokens are lower-cased runs of word characters (``re.findall(r"\w+")``): no stemming, no stop
words. Scoring is Lucene's BM25: ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` times
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean_length))``, summed over the query's
tokens (a repeated query token counts each time).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """The lower-cased word tokens of text, as BM25 here reads them.

    Example:
        >>> tokenize("Giant pandas eat bamboo, mostly.")
        ['giant', 'pandas', 'eat', 'bamboo', 'mostly']

    """
    return _TOKEN.findall(text.lower())


class BM25:
    """A BM25 index over a list of texts; scores every text against a query at once.

    Args:
        texts: The corpus, one string per document.
        k1: Term-frequency saturation (>= 0).
        b: Length normalisation, 0 (none) to 1 (full).

    Raises:
        ValueError: For k1 < 0 or b outside 0..1.

    Example:
        >>> index = BM25(["pandas eat bamboo", "paris is in france", "bamboo grows fast"])
        >>> index.top("what do pandas eat with bamboo", 2)
        [0, 2]

    """

    def __init__(self, texts: Sequence[str], *, k1: float = 1.2, b: float = 0.75) -> None:
        if not k1 >= 0:
            msg = f"k1 must be >= 0, got {k1!r}"
            raise ValueError(msg)
        if not 0 <= b <= 1:
            msg = f"b must be in 0..1, got {b!r}"
            raise ValueError(msg)
        self.size = len(texts)
        counts = [Counter(tokenize(text)) for text in texts]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        mean_length = float(lengths.mean()) if self.size and lengths.sum() > 0 else 1.0
        norm = k1 * (1 - b + b * lengths / mean_length)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for doc, count in enumerate(counts):
            for term, tf in count.items():
                docs, tfs = postings.setdefault(term, ([], []))
                docs.append(doc)
                tfs.append(tf)
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, (docs, tfs) in postings.items():
            idf = math.log(1 + (self.size - len(docs) + 0.5) / (len(docs) + 0.5))
            doc_array = np.array(docs, dtype=np.int64)
            tf_array = np.array(tfs, dtype=np.float64)
            self._postings[term] = (doc_array, idf * tf_array * (k1 + 1) / (tf_array + norm[doc_array]))

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every text for query, in corpus order (0 where no token matches)."""
        out = np.zeros(self.size, dtype=np.float64)
        for term in tokenize(query):
            posting = self._postings.get(term)
            if posting is not None:
                docs, weights = posting
                out[docs] += weights  # a term's postings name each document once
        return out

    def top(self, query: str, k: int) -> list[int]:
        """Indices of the k best-scoring texts, best first; ties keep corpus order."""
        scores = self.scores(query)
        return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


__all__ = ["BM25", "tokenize"]
