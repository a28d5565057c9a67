"""Hard-negative mining the FlagEmbedding way (``scripts/hn_mine.py``), seeded and with exact search.

For each query, the embedder ranks a candidate pool; negatives are sampled from the ranks
``[start, end)`` (near misses, but past the top, where unjudged positives crowd), never a
positive nor the query itself. An optional reranker drops candidates it finds too relevant
(likely false negatives) and scores what is kept, for distillation.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import islice
from typing import Any

import numpy as np

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.notices import warn_user
from bge_integrations.core.progress import progress_bar, progress_iter
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.core.validation import check_items, check_texts
from bge_integrations.training.examples import TrainingExample

_SEARCH_CELLS = 1 << 25
"""Query x candidate scores held at once while searching (128 MiB of float32)."""


def mine_hard_negatives(
    examples: Sequence[TrainingExample],
    embedder: BGEEmbedder,
    *,
    corpus: Sequence[str] | None = None,
    sample_range: tuple[int, int] = (10, 100),
    negatives: int = 7,
    reranker: BGEReranker | None = None,
    max_negative_score: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> list[TrainingExample]:
    """Give each example ``negatives`` hard negatives mined with the embedder (FlagEmbedding's ``find_knn_neg``).

    Steps, as in FlagEmbedding's ``scripts/hn_mine.py``:

    1. Candidate pool: ``corpus``, or without one the ``pos`` and ``neg`` texts of all examples;
       duplicates are removed (first occurrence kept).
    2. Queries are embedded with ``embed_queries`` (the embedder's query instruction), the pool
       with ``embed_documents``; each query ranks the pool by inner product of the L2-normalised
       vectors.
    3. Candidates of a query: the texts at ranks ``[start, end)`` (0-based) that are not one of
       its ``pos`` texts and not the query text itself.
    4. ``negatives`` of them are sampled. When fewer are left, the rest is filled up with texts
       sampled from the whole pool (again no positive, no query, no repeat).

    Every input example gets exactly one output example, in input order: the same query,
    ``pos``, ``prompt`` and ``type``, with the mined ``neg`` replacing the input ``neg`` (which,
    without a corpus, are only candidates, as in FlagEmbedding). Input ``pos_scores``/``neg_scores`` belonged to the old
    negatives and are dropped, unless a reranker writes new ones.

    Where this differs from FlagEmbedding, and why:

    - Seeded: one ``random.Random(seed)`` draws a seed per example, so the output depends only
      on the inputs and ``seed`` (FlagEmbedding uses the global ``random`` state, and a
      ``set()`` order of the pool that changes from run to run).
    - Exact search in numpy, ties broken by pool position (FlagEmbedding: faiss ``IndexFlatIP``,
      the same ranking up to ties, without the faiss dependency). Queries are searched in chunks
      of at most 2**25 scores; ``evaluation.retrieval.exact_search`` is not used because it
      de-duplicates the whole pool's vectors on every call, too slow per chunk for a large pool.
    - The fill-up never repeats a chosen negative nor picks the query text (FlagEmbedding's may),
      so every ``neg`` list holds distinct texts. If the pool has too few texts for that, an
      example gets fewer negatives, with a warning (FlagEmbedding would fail in ``random.sample``).
    - Defaults: ranks 10-100 and 7 negatives (FlagEmbedding's script: 10-210 and 15), which
      fits the ``TrainingSettings.negatives`` default of 7.
    - The optional reranker filter (below) is not in ``hn_mine.py``; its scores are the
      ``pos_scores``/``neg_scores`` that FlagEmbedding's ``add_reranker_score.py`` writes, but
      on the calibrated 0..1 scale.

    Args:
        examples: The examples to mine negatives for.
        embedder: Ranks the pool for each query.
        corpus: The candidate pool (e.g. the corpus texts of
            :func:`~bge_integrations.training.examples.examples_from_beir`). None: the examples'
            own ``pos`` and ``neg`` texts.
        sample_range: Ranks ``(start, end)`` that candidates are sampled from, ``0 <= start < end``.
        negatives: Negatives per example, at least 1.
        reranker: Scores (query, text) pairs on the calibrated scale (sigmoid, 0..1, whatever its
            ``normalize`` setting). Given: each example gets ``pos_scores`` and ``neg_scores``.
        max_negative_score: With a reranker: candidates it scores above this (0..1) are
            dropped as likely false negatives, before sampling and during the fill-up. None:
            nothing dropped.
        seed: Seed of the sampling.
        progress: Show progress bars (standard error) for the search and the reranker filter.

    Returns:
        One example per input example, in input order.

    Raises:
        TypeError: If examples, embedder, corpus or reranker has the wrong type (named).
        ValueError: If sample_range, negatives, max_negative_score or seed is out of range
            (the bad value named), max_negative_score is given without a reranker, or the pool is empty.

    Warns:
        UserWarning: If the pool was too small to give some examples ``negatives`` negatives.

    Example:
        >>> embedder = BGEEmbedder("BAAI/bge-small-en-v1.5")
        >>> examples, corpus = examples_from_beir(load_beir("scifact", query_lines="odd"))  # doctest: +SKIP
        >>> mined = mine_hard_negatives(examples, embedder, corpus=corpus, seed=1)  # doctest: +SKIP
        >>> [len(example.neg) for example in mined[:3]]  # doctest: +SKIP
        [7, 7, 7]
        >>> mine_hard_negatives([], embedder, sample_range=(10, 10))
        Traceback (most recent call last):
        ...
        ValueError: sample_range must be (start, end) with 0 <= start < end, got (10, 10)

    """
    items = list(
        check_items(
            examples,
            TrainingExample,
            name="examples",
            sequence="a sequence of TrainingExample",
            item="a TrainingExample",
        )
    )
    if not isinstance(embedder, BGEEmbedder):
        msg = f"embedder must be a BGEEmbedder, got {type(embedder).__name__}: {embedder!r:.80}"
        raise TypeError(msg)
    start, end = _check_range(sample_range)
    negatives = _check_int(negatives, name="negatives", low=1)
    seed = _check_int(seed, name="seed", low=None)
    if reranker is not None and not isinstance(reranker, BGEReranker):
        msg = f"reranker must be a BGEReranker or None, got {type(reranker).__name__}: {reranker!r:.80}"
        raise TypeError(msg)
    threshold = _check_threshold(max_negative_score, reranker)
    if not isinstance(progress, bool):
        msg = f"progress must be True or False, got {progress!r}"
        raise TypeError(msg)
    for index, example in enumerate(items):
        if not example.pos:
            msg = f"examples[{index}] has no positive (pos is empty): {example.query!r:.80}"
            raise ValueError(msg)
    if corpus is None:
        pool = list(dict.fromkeys(text for example in items for text in (*example.pos, *example.neg)))
    else:
        pool = list(dict.fromkeys(check_texts(corpus, name="corpus")))
        if not pool:
            msg = f"corpus must hold at least one text, got {corpus!r:.80}"
            raise ValueError(msg)
    if not items:
        return []

    ranked = _rank(embedder, [example.query for example in items], pool, top_k=end, progress=progress)
    master = random.Random(seed)  # noqa: S311 - sampling, not secrets
    queues = [
        _candidates(example, ranked[row][start:end], pool, random.Random(master.getrandbits(64)))  # noqa: S311
        for row, example in enumerate(items)
    ]
    if reranker is None:
        chosen = [list(islice(queue, negatives)) for queue in queues]
        outputs = [
            replace(example, neg=[pool[i] for i in picked], pos_scores=None, neg_scores=None)
            for example, picked in zip(items, chosen, strict=True)
        ]
    else:
        outputs = _with_reranker(items, queues, pool, reranker, negatives, threshold, progress=progress)
    short = sum(len(example.neg) < negatives for example in outputs)
    if short:
        warn_user(
            f"{short} of {len(outputs)} examples got fewer than {negatives} negatives: the candidate pool "
            f"({len(pool)} texts) has too few texts that are not a positive or the query"
            + ("" if threshold is None else f" and score <= max_negative_score ({threshold})"),
            UserWarning,
        )
    return outputs


def _rank(embedder: BGEEmbedder, queries: list[str], pool: list[str], *, top_k: int, progress: bool) -> np.ndarray:
    """Pool indices ranked per query, best first (top_k at most), by inner product of normalised vectors."""
    docs = _normalized(embedder.embed_documents(pool))
    vectors = _normalized(embedder.embed_queries(queries))
    top_k = min(top_k, len(pool))
    step = max(1, _SEARCH_CELLS // len(pool))
    parts = []
    for begin in progress_iter(range(0, len(queries), step), enabled=progress, desc="Searching", unit="batch"):
        scores = vectors[begin : begin + step] @ docs.T
        top = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
        rows = np.arange(scores.shape[0])[:, None]
        order = np.lexsort((top, -scores[rows, top]), axis=1)
        parts.append(top[rows, order])
    return np.concatenate(parts)


def _normalized(vectors: list[list[float]]) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.where(norms > 0, norms, 1.0)


def _candidates(example: TrainingExample, ranks: np.ndarray, pool: list[str], rng: random.Random) -> Iterator[int]:
    """Pool indices to try as negatives, in order: the in-range candidates shuffled, then the fill-up.

    Taking the first n of them is sampling n of the in-range candidates (FlagEmbedding's
    ``random.sample``), filled up from the rest of the pool when the range holds fewer. The
    fill-up's shuffle of the whole pool is made only when it is reached.
    """
    excluded = {*example.pos, example.query}
    in_range = [int(index) for index in ranks if pool[index] not in excluded]
    yield from rng.sample(in_range, len(in_range))
    tried = set(in_range)
    rest = [index for index, text in enumerate(pool) if index not in tried and text not in excluded]
    yield from rng.sample(rest, len(rest))


def _with_reranker(
    items: list[TrainingExample],
    queues: list[Iterator[int]],
    pool: list[str],
    reranker: BGEReranker,
    negatives: int,
    threshold: float | None,
    *,
    progress: bool,
) -> list[TrainingExample]:
    """Walk each example's candidates in rounds, scoring only as many as it still needs."""
    pos_pairs = [(example.query, text) for example in items for text in example.pos]
    pos_flat = iter(reranker.score_pairs(pos_pairs, normalize=True))
    pos_scores = [[next(pos_flat) for _ in example.pos] for example in items]
    chosen: list[list[tuple[int, float]]] = [[] for _ in items]
    open_rows = list(range(len(items)))
    with progress_bar(len(items), enabled=progress, unit="query", desc="Reranking") as advance:
        while open_rows:
            batch: list[tuple[int, int]] = []
            exhausted: set[int] = set()
            for row in open_rows:
                wanted = negatives - len(chosen[row])
                drawn = [(row, index) for index in islice(queues[row], wanted)]
                if len(drawn) < wanted:
                    exhausted.add(row)
                batch.extend(drawn)
            scores = reranker.score_pairs([(items[row].query, pool[index]) for row, index in batch], normalize=True)
            for (row, index), score in zip(batch, scores, strict=True):
                if threshold is None or score <= threshold:
                    chosen[row].append((index, score))
            still = [row for row in open_rows if len(chosen[row]) < negatives and row not in exhausted]
            if advance is not None:
                advance(len(open_rows) - len(still))
            open_rows = still
    return [
        replace(
            example,
            neg=[pool[index] for index, _ in picked],
            pos_scores=scores_of_pos,
            neg_scores=[score for _, score in picked],
        )
        for example, picked, scores_of_pos in zip(items, chosen, pos_scores, strict=True)
    ]


def _check_range(value: Any) -> tuple[int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or any(isinstance(bound, bool) or not isinstance(bound, int) for bound in value)
        or not 0 <= value[0] < value[1]
    ):
        msg = f"sample_range must be (start, end) with 0 <= start < end, got {value!r}"
        raise ValueError(msg)
    return int(value[0]), int(value[1])


def _check_int(value: Any, *, name: str, low: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int, got {type(value).__name__}: {value!r:.80}"
        raise TypeError(msg)
    if low is not None and value < low:
        msg = f"{name} must be >= {low}, got {value!r}"
        raise ValueError(msg)
    return int(value)


def _check_threshold(value: Any, reranker: BGEReranker | None) -> float | None:
    if value is None:
        return None
    if reranker is None:
        msg = f"max_negative_score needs a reranker to score the candidates, got {value!r} with reranker=None"
        raise ValueError(msg)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        msg = f"max_negative_score must be a number from 0 to 1 (the reranker's sigmoid scale) or None, got {value!r}"
        raise ValueError(msg)
    return float(value)


__all__ = ["mine_hard_negatives"]
