"""Reranking evaluation in the MTEB / C-MTEB style: query, positive and negative passages in, MAP and MRR@10 out.

A reranking set is JSON Lines (optionally gzipped), one sample per line, as MTEB's and C-MTEB's
reranking tasks (T2Reranking, MMarcoReranking, CMedQAv1/v2, SciDocsRR, ...) store them::

    {"query": "...", "positive": ["relevant passage", ...], "negative": ["irrelevant passage", ...]}

Each sample's passages (positives first, then negatives, as listed) are scored against its query
by a cross-encoder (:class:`~bge_integrations.BGEReranker` on the raw query and passage, as
C-MTEB's ``ChineseRerankingEvaluator`` calls ``compute_score``) or an embedder
(:class:`~bge_integrations.BGEEmbedder`: queries through ``embed_queries``, with their
instruction, passages through ``embed_documents``, cosine similarity, as MTEB's
``RerankingEvaluator`` encodes queries with the query prompt and passages with the document
prompt). Metrics follow MTEB v1's ``RerankingEvaluator`` (checked against
``mteb/evaluation/evaluators/RerankingEvaluator.py`` of mteb 1.39.7 and FlagEmbedding's
``research/C_MTEB`` evaluator), whose ``map`` is the main score of the C-MTEB reranking tasks:

* **MAP**: the mean over samples of scikit-learn's ``average_precision_score(is_relevant,
  scores)``: passages sorted by score, and AP = sum over distinct score values t (best first)
  of (recall(t) - recall(previous t)) * precision(t), where precision and recall at t count
  every passage scoring >= t. Passages that tie share one step, so ties cost the same whatever
  their order. See :func:`average_precision`.
* **MRR@10**: the mean of 1/rank of the first positive within the top 10, else 0. MTEB sorts
  with an unstable ``torch.argsort`` (C-MTEB's cross-encoder path: ``np.argsort``), so its
  order of tied passages is unspecified; here ties keep the sample's order (positives first),
  which is what torch 2.13's CPU sort gives for up to 16 passages. The report counts the
  samples where a positive and a negative tie (``tied_samples``); only there can it matter.
  See :func:`reciprocal_rank`.
* Samples without a positive or without a negative are skipped, as MTEB drops them; here they
  are counted and listed in the report (``skipped_samples``), never dropped silently.

MTEB v2 turned reranking tasks into retrieval tasks scored with pytrec_eval (``map_at_1000``);
the published C-MTEB reranking numbers of the BGE models come from the v1 definition above.
"""

from __future__ import annotations

import gzip
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO, get_args

import numpy as np

from bge_integrations.core.progress import progress_iter as progress_bar
from bge_integrations.evaluation.beir import RetrievalDataset, load_beir

NegativeSource = Literal["bm25", "random", "judged"]
NEGATIVE_SOURCES: tuple[str, ...] = get_args(NegativeSource)
SKIP_REASONS = {
    (False, True): "no positive passage",
    (True, False): "no negative passage",
    (False, False): "no passage",
}
"""(has a positive, has a negative) to why a sample is skipped."""


@dataclass(frozen=True)
class RerankingSample:
    """One query with its relevant (positive) and irrelevant (negative) passages.

    Args:
        query: The query, as given (an embedder adds its query instruction itself).
        positive: Relevant passages.
        negative: Irrelevant passages.
        origin: Where the sample came from, for messages: ``"line 7"``, ``"query 42"``.

    Example:
        >>> RerankingSample("where do pandas live?", ["Pandas live in China."], ["Paris is in France."])
        RerankingSample(query='where do pandas live?', positive=['Pandas live in China.'], ...)

    """

    query: str
    positive: list[str]
    negative: list[str]
    origin: str | None = None

    @property
    def passages(self) -> list[str]:
        """Positives then negatives: the order scores come in."""
        return [*self.positive, *self.negative]

    @property
    def scorable(self) -> bool:
        """True if it has a positive and a negative (MTEB skips the others)."""
        return bool(self.positive) and bool(self.negative)


@dataclass(frozen=True)
class RerankingSet:
    """A named list of reranking samples.

    Args:
        name: Short name, e.g. the file name without ``.jsonl.gz``.
        samples: The samples, in file order.
        description: How the set was made (file path, or the BEIR derivation settings).

    Example:
        >>> data = RerankingSet("toy", [RerankingSample("q", ["relevant"], ["irrelevant"])])
        >>> data.name, len(data.samples)
        ('toy', 1)

    """

    name: str
    samples: list[RerankingSample]
    description: str = ""


def load_reranking_set(path: str | Path, *, limit: int | None = None) -> RerankingSet:
    """Read a reranking set from JSON Lines (``.jsonl``, or gzipped ``.jsonl.gz``).

    Each non-blank line is one object with ``"query"`` (a string), ``"positive"`` and
    ``"negative"`` (lists of strings, possibly empty); other fields are ignored.

    Args:
        path: The file.
        limit: Keep only the first ``limit`` samples.

    Raises:
        FileNotFoundError: If path is not a file.
        ValueError: Naming the line and field, for a line that is not such an object, or a file
            with no sample.

    Example:
        >>> data = load_reranking_set("cmedqa-v2.jsonl.gz", limit=100)  # doctest: +SKIP
        >>> data.samples[0].origin  # doctest: +SKIP
        'line 1'

    """
    source = Path(path)
    if source.is_dir():
        msg = f"{str(source)!r} is a folder; pass a .jsonl or .jsonl.gz file (or --from-beir for a BEIR collection)"
        raise FileNotFoundError(msg)
    if not source.is_file():
        msg = f"no reranking set at {str(source)!r}"
        raise FileNotFoundError(msg)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        msg = f"limit must be an int > 0 or None, got {limit!r}"
        raise ValueError(msg)
    samples: list[RerankingSample] = []
    with _open_text(source, "r") as handle:
        for number, line in enumerate(handle, start=1):
            if limit is not None and len(samples) >= limit:
                break
            if line.strip():
                samples.append(_parse_sample(line, number, source))
    if not samples:
        msg = f"no samples in {str(source)!r}"
        raise ValueError(msg)
    name = source.name.removesuffix(".gz").removesuffix(".jsonl").removesuffix(".json")
    return RerankingSet(name, samples, str(source))


def write_reranking_set(data: RerankingSet, path: str | Path) -> Path:
    """Write a reranking set as JSON Lines (gzipped when path ends in ``.gz``); returns the path.

    Example:
        >>> import tempfile
        >>> data = RerankingSet("toy", [RerankingSample("where do pandas live?", ["In China."], ["In Paris."])])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_reranking_set(data, Path(folder) / "toy.jsonl.gz")
        ...     path.name, load_reranking_set(path).samples[0].negative
        ('toy.jsonl.gz', ['In Paris.'])

    """
    target = Path(path)
    with _open_text(target, "w") as handle:
        for sample in data.samples:
            record = {"query": sample.query, "positive": sample.positive, "negative": sample.negative}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return target


def reranking_set_from_beir(
    data: str | Path | RetrievalDataset,
    *,
    negatives: NegativeSource = "bm25",
    num_negatives: int = 20,
    min_grade: int = 1,
    limit: int | None = None,
    seed: int = 0,
    split: str = "test",
) -> RerankingSet:
    """Derive a reranking set from a BEIR collection: one sample per judged query.

    Positives are the documents judged with grade >= ``min_grade``, in qrels order. Negatives
    are documents not judged relevant (unjudged, or graded below ``min_grade``; BEIR counts
    unjudged documents as irrelevant), picked by ``negatives``:

    * ``"bm25"``: the ``num_negatives`` best by BM25 (:mod:`~bge_integrations.evaluation.bm25`,
      Lucene scoring, k1=1.2, b=0.75) among those with a BM25 score > 0 - hard negatives
      from a first stage that is not the model under test;
    * ``"random"``: ``num_negatives`` drawn uniformly, reproducibly from ``seed``;
    * ``"judged"``: only documents judged below ``min_grade`` (grade-0 rows), at most
      ``num_negatives``, in qrels order. Collections without such rows give samples with no
      negative, which the evaluation skips and reports.

    Never a negative: a document whose id equals the query id (MTEB ignores those), or whose
    text equals a positive's (NFCorpus has exact duplicates; a copy of a positive is no
    negative). A document with the query's id is no positive either.

    Args:
        data: A BEIR folder or a loaded :class:`RetrievalDataset`.
        negatives: ``"bm25"``, ``"random"`` or ``"judged"``.
        num_negatives: Negatives per query at most.
        min_grade: Lowest grade that counts as relevant.
        limit: Keep the first ``limit`` judged queries (in ``queries.jsonl`` order).
        seed: Seed for ``"random"``.
        split: The qrels file (``qrels/{split}.tsv``) when data is a folder.

    Raises:
        ValueError: For an unknown negatives source, a bad count or grade, or qrels naming a
            document the corpus lacks.

    Example:
        >>> data = RetrievalDataset(
        ...     "toy",
        ...     doc_ids=["d1", "d2", "d3"],
        ...     doc_texts=["Pandas live in China.", "Pandas eat bamboo in zoos.", "Paris is in France."],
        ...     queries={"q1": "where do pandas live?"},
        ...     qrels={"q1": {"d1": 1}},
        ... )  # or a BEIR folder: reranking_set_from_beir("scifact", num_negatives=10)
        >>> sample = reranking_set_from_beir(data).samples[0]  # d3 shares no word with the query: no BM25 negative
        >>> sample.origin, sample.positive, sample.negative
        ('query q1', ['Pandas live in China.'], ['Pandas eat bamboo in zoos.'])

    """
    if negatives not in NEGATIVE_SOURCES:
        msg = f"negatives must be one of {', '.join(NEGATIVE_SOURCES)}; got {negatives!r}"
        raise ValueError(msg)
    _check_count(num_negatives, "num_negatives")
    if limit is not None:
        _check_count(limit, "limit")
    if isinstance(min_grade, bool) or not isinstance(min_grade, int) or min_grade < 1:
        msg = f"min_grade must be an int >= 1, got {min_grade!r}"
        raise ValueError(msg)
    dataset = data if isinstance(data, RetrievalDataset) else load_beir(data, split=split)
    position = {doc_id: i for i, doc_id in enumerate(dataset.doc_ids)}
    query_ids = list(dataset.queries)[:limit]
    index = None
    if negatives == "bm25":
        from bge_integrations.evaluation.bm25 import BM25

        index = BM25(dataset.doc_texts)
    rng = np.random.default_rng(seed)
    samples: list[RerankingSample] = []
    for query_id in query_ids:
        judged = dataset.qrels[query_id]
        missing = [doc for doc in judged if doc not in position]
        if missing:
            msg = f"qrels of query {query_id!r} name documents missing from the corpus: {missing[:3]}"
            raise ValueError(msg)
        positive_ids = [doc for doc, grade in judged.items() if grade >= min_grade and doc != query_id]
        excluded = {doc for doc, grade in judged.items() if grade >= min_grade} | {query_id}
        positive_texts = {dataset.doc_texts[position[doc]] for doc in positive_ids}
        chosen: list[int] = []
        if negatives == "judged":
            candidates = [position[doc] for doc, grade in judged.items() if grade < min_grade]
        elif index is not None:
            scores = index.scores(dataset.queries[query_id])
            candidates = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]
        else:
            candidates = [int(i) for i in rng.permutation(len(dataset.doc_ids))]
        for i in candidates:
            if len(chosen) == num_negatives:
                break
            if dataset.doc_ids[i] not in excluded and dataset.doc_texts[i] not in positive_texts:
                chosen.append(i)
        samples.append(
            RerankingSample(
                query=dataset.queries[query_id],
                positive=[dataset.doc_texts[position[doc]] for doc in positive_ids],
                negative=[dataset.doc_texts[i] for i in chosen],
                origin=f"query {query_id}",
            )
        )
    description = (
        f"{dataset.name}: {len(samples)} judged queries; positives grade >= {min_grade}; "
        f"up to {num_negatives} {negatives} negatives per query" + (f" (seed {seed})" if negatives == "random" else "")
    )
    return RerankingSet(dataset.name, samples, description)


def average_precision(relevant: Sequence[bool], scores: Sequence[float]) -> float:
    """Average precision of one scored sample, as scikit-learn's ``average_precision_score``.

    Sort by score, best first. At each distinct score t, precision(t) and recall(t) count every
    passage scoring >= t (a group of tied passages enters at once); AP is the sum of
    (recall(t) - recall(previous t)) * precision(t). Without any relevant passage it is 0.0
    (scikit-learn also warns); MTEB never asks, as it skips such samples.

    Args:
        relevant: Per passage, whether it is relevant.
        scores: Per passage, the model's score (higher is more relevant).

    Raises:
        ValueError: If the lengths differ, there is no passage, or a score is not finite.

    Example:
        >>> average_precision([True, False, True], [0.9, 0.8, 0.7])  # (1/1 + 2/3) / 2
        0.8333333333333333
        >>> average_precision([True, False], [0.5, 0.5])  # one tied group: precision 1/2
        0.5

    """
    order = _checked_order(relevant, scores)
    total = sum(1 for flag in relevant if flag)
    if total == 0:
        return 0.0
    result, hits, previous_hits, index = 0.0, 0, 0, 0
    while index < len(order):
        value = scores[order[index]]
        while index < len(order) and scores[order[index]] == value:
            hits += bool(relevant[order[index]])
            index += 1
        result += (hits - previous_hits) / total * (hits / index)
        previous_hits = hits
    return result


def reciprocal_rank(relevant: Sequence[bool], scores: Sequence[float], k: int = 10) -> float:
    """1/rank of the first relevant passage among the k best scored, else 0 (MTEB's MRR@k).

    Ties keep input order (MTEB's unstable sort leaves it unspecified; see the module docs).

    Raises:
        ValueError: If the lengths differ, there is no passage, a score is not finite, or
            k is not an int > 0.

    Example:
        >>> reciprocal_rank([False, True, False], [0.9, 0.8, 0.1])
        0.5
        >>> reciprocal_rank([True, False], [0.5, 0.5])  # tie: input order
        1.0

    """
    _check_count(k, "k")
    order = _checked_order(relevant, scores)
    for rank, i in enumerate(order[:k], start=1):
        if relevant[i]:
            return 1.0 / rank
    return 0.0


@dataclass(frozen=True)
class SkippedSample:
    """A sample that could not be scored: its position, origin and why.

    Example:
        >>> report_from_scores([RerankingSample("q", [], ["n"], "line 4"), RerankingSample("r", ["p"], ["n"])],
        ...                    [[], [0.9, 0.1]]).skipped_samples
        [SkippedSample(index=0, origin='line 4', reason='no positive passage')]

    """

    index: int
    origin: str | None
    reason: str


@dataclass(frozen=True)
class SampleResult:
    """One scored sample's average precision and reciprocal rank (cut at the report's k).

    Example:
        >>> report_from_scores([RerankingSample("q", ["p"], ["n"], "line 1")], [[0.2, 0.9]]).per_sample
        [SampleResult(index=0, origin='line 1', average_precision=0.5, reciprocal_rank=0.5)]

    """

    index: int
    origin: str | None
    average_precision: float
    reciprocal_rank: float


@dataclass(frozen=True)
class RerankingReport:
    """MAP and MRR@k over the scored samples, what was skipped, and how long it took.

    Example:
        >>> from bge_integrations import BGEReranker
        >>> reranker = BGEReranker("BAAI/bge-reranker-base", normalize=False)
        >>> report = evaluate_reranking(load_reranking_set("set.jsonl"), reranker=reranker)  # doctest: +SKIP
        >>> report.to_dict()["map"], report.to_dict()["mrr@10"], report.skipped  # doctest: +SKIP
        (0.812..., 0.851..., 0)

    """

    name: str
    map: float
    mrr: float
    k: int
    samples: int
    """Samples scored (with a positive and a negative)."""
    passages: int
    """Passages scored, over all scored samples."""
    tied_samples: int
    """Scored samples where a positive and a negative got exactly the same score."""
    skipped_samples: list[SkippedSample] = field(default_factory=list)
    per_sample: list[SampleResult] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    @property
    def skipped(self) -> int:
        """How many samples were skipped."""
        return len(self.skipped_samples)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: ``map``, ``mrr@{k}``, counts, skipped and per-sample values."""
        return {
            "dataset": self.name,
            "map": self.map,
            f"mrr@{self.k}": self.mrr,
            "samples": self.samples,
            "skipped": self.skipped,
            "passages": self.passages,
            "tied_samples": self.tied_samples,
            "skipped_samples": [vars(s) for s in self.skipped_samples],
            "seconds": self.seconds,
            "per_sample": [
                {"index": r.index, "origin": r.origin, "ap": r.average_precision, f"rr@{self.k}": r.reciprocal_rank}
                for r in self.per_sample
            ],
        }


class PassageScorer(Protocol):
    """Anything with ``score(query, passages) -> scores``, such as :class:`~bge_integrations.BGEReranker`.

    Example:
        >>> class Overlap:  # a toy cross-encoder: shared words
        ...     def score(self, query: str, documents: list[str]) -> list[float]:
        ...         return [float(len(set(query.split()) & set(d.split()))) for d in documents]
        >>> evaluate_reranking([RerankingSample("red fox", ["a red fox"], ["a blue car"])], reranker=Overlap()).map
        1.0

    """

    def score(self, query: str, documents: list[str]) -> list[float]:
        """One score per passage, in order."""
        ...


class TextEmbedder(Protocol):
    """Anything with BGEEmbedder's ``embed_queries`` and ``embed_documents``.

    Example:
        >>> from bge_integrations import BGEEmbedder
        >>> embedder: TextEmbedder = BGEEmbedder("BAAI/bge-small-en-v1.5")  # or a framework adapter's core
        >>> evaluate_reranking(load_reranking_set("set.jsonl"), embedder=embedder).mrr  # doctest: +SKIP
        0.87...

    """

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        """One vector per query (instruction added by the embedder)."""
        ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per passage."""
        ...


def cross_encoder_scores(
    samples: Sequence[RerankingSample], reranker: PassageScorer, *, progress: bool = False
) -> list[list[float]]:
    """Per sample, the reranker's score of each passage (positives, then negatives) for its query.

    One ``score`` call per sample, with the raw query. ``progress`` draws a bar over samples.
    Give a :class:`~bge_integrations.BGEReranker` ``normalize=False`` to score raw logits, as
    C-MTEB does (FlagReranker's ``compute_score`` default): the float32 sigmoid rounds every
    logit above about 16.6 to exactly 1.0, and such ties change MAP and MRR.

    Raises:
        ValueError: If the reranker returns a different number of scores than passages.

    Example:
        >>> from bge_integrations import BGEReranker
        >>> samples = [RerankingSample("where do pandas live?", ["In China."], ["In Paris."])]
        >>> cross_encoder_scores(samples, BGEReranker("BAAI/bge-reranker-base"))  # doctest: +SKIP
        [[0.93..., 0.02...]]

    """
    out: list[list[float]] = []
    items = progress_bar(samples, enabled=progress, desc="Reranking", unit="query", total=len(samples))
    for number, sample in enumerate(items):
        passages = sample.passages
        scores = [float(s) for s in reranker.score(sample.query, passages)]
        if len(scores) != len(passages):
            msg = f"the reranker returned {len(scores)} scores for {len(passages)} passages of sample {number}"
            raise ValueError(msg)
        out.append(scores)
    return out


def bi_encoder_scores(samples: Sequence[RerankingSample], embedder: TextEmbedder) -> list[list[float]]:
    """Per sample, the cosine of its query's vector with each passage's (positives, then negatives).

    As MTEB's batched ``RerankingEvaluator``: every query goes to ``embed_queries`` in one call
    and every passage of every sample to ``embed_documents`` in one call (so a passage shared by
    samples, or repeated in one, gets one vector); cosine as ``mteb``'s ``cos_sim`` (vectors
    scaled to unit length, zero vectors left at zero), in float64.

    Example:
        >>> from bge_integrations import BGEEmbedder
        >>> samples = [RerankingSample("where do pandas live?", ["In China."], ["In Paris."])]
        >>> bi_encoder_scores(samples, BGEEmbedder("BAAI/bge-small-en-v1.5"))  # doctest: +SKIP
        [[0.71..., 0.64...]]

    """
    if not samples:
        return []
    queries = _unit_rows(embedder.embed_queries([s.query for s in samples]), len(samples), "queries")
    passages = [p for s in samples for p in s.passages]
    vectors = _unit_rows(embedder.embed_documents(passages), len(passages), "passages")
    out: list[list[float]] = []
    start = 0
    for row, sample in enumerate(samples):
        # One score per distinct text: a BLAS product may round the same row differently at
        # another position, and a passage repeated as positive and negative must tie exactly.
        first: dict[str, int] = {}
        for offset, passage in enumerate(sample.passages):
            first.setdefault(passage, start + offset)
        rows = list(first.values())
        by_text = dict(zip(first, (vectors[rows] @ queries[row]).tolist(), strict=True))
        out.append([by_text[p] for p in sample.passages])
        start += len(sample.passages)
    return out


def report_from_scores(
    data: RerankingSet | Sequence[RerankingSample],
    scores: Sequence[Sequence[float]],
    *,
    k: int = 10,
    seconds: float = 0.0,
) -> RerankingReport:
    """MAP and MRR@k from given scores: one list per sample, aligned with its passages.

    Samples without a positive or a negative are skipped (their entry is not read; ``[]`` will
    do) and listed in the report.

    Raises:
        ValueError: If scores do not align 1:1 with samples and passages, a score is not finite,
            or no sample can be scored.

    Example:
        >>> samples = [RerankingSample("q", ["p"], ["n1", "n2"]), RerankingSample("r", [], ["n"])]
        >>> report = report_from_scores(samples, [[0.2, 0.9, 0.1], []])
        >>> report.map, report.mrr, report.samples, report.skipped  # AP = 1/2, first positive at rank 2
        (0.5, 0.5, 1, 1)

    """
    _check_count(k, "k")
    samples = data.samples if isinstance(data, RerankingSet) else list(data)
    name = data.name if isinstance(data, RerankingSet) else "samples"
    if len(scores) != len(samples):
        msg = f"got score lists for {len(scores)} samples, but there are {len(samples)}"
        raise ValueError(msg)
    skipped: list[SkippedSample] = []
    results: list[SampleResult] = []
    passages = tied = 0
    for index, (sample, sample_scores) in enumerate(zip(samples, scores, strict=True)):
        if not sample.scorable:
            reason = SKIP_REASONS[bool(sample.positive), bool(sample.negative)]
            skipped.append(SkippedSample(index, sample.origin, reason))
            continue
        where = f"sample {index}" + (f" ({sample.origin})" if sample.origin else "")
        count = len(sample.positive) + len(sample.negative)
        if len(sample_scores) != count:
            msg = f"{where} has {count} passages but {len(sample_scores)} scores"
            raise ValueError(msg)
        values = [float(s) for s in sample_scores]
        relevant = [True] * len(sample.positive) + [False] * len(sample.negative)
        try:
            ap = average_precision(relevant, values)
            rr = reciprocal_rank(relevant, values, k)
        except ValueError as exc:
            msg = f"{where}: {exc}"
            raise ValueError(msg) from None
        results.append(SampleResult(index, sample.origin, ap, rr))
        passages += count
        tied += not set(values[: len(sample.positive)]).isdisjoint(values[len(sample.positive) :])
    if not results:
        reasons = sorted({s.reason for s in skipped})
        msg = f"no sample has both a positive and a negative passage ({len(skipped)} skipped: {', '.join(reasons)})"
        raise ValueError(msg)
    return RerankingReport(
        name=name,
        map=float(np.mean([r.average_precision for r in results])),
        mrr=float(np.mean([r.reciprocal_rank for r in results])),
        k=k,
        samples=len(results),
        passages=passages,
        tied_samples=tied,
        skipped_samples=skipped,
        per_sample=results,
        seconds=seconds,
    )


def evaluate_reranking(
    data: RerankingSet | Sequence[RerankingSample],
    *,
    reranker: PassageScorer | None = None,
    embedder: TextEmbedder | None = None,
    k: int = 10,
    progress: bool = False,
) -> RerankingReport:
    """Score every scorable sample with a cross-encoder or an embedder; MAP and MRR@k.

    Args:
        data: The samples (e.g. from :func:`load_reranking_set` or :func:`reranking_set_from_beir`).
        reranker: A cross-encoder such as :class:`~bge_integrations.BGEReranker`, best with
            ``normalize=False`` (raw logits, as C-MTEB; see :func:`cross_encoder_scores`).
        embedder: An embedder such as :class:`~bge_integrations.BGEEmbedder` (see
            :func:`bi_encoder_scores`); give exactly one of reranker and embedder.
        k: The MRR cut-off.
        progress: A bar over samples for the reranker. An embedder draws its own bars
            (``BGEEmbedder(show_progress_bar=True)``).

    Returns:
        A :class:`RerankingReport`; ``seconds`` covers scoring (and a model's first load).

    Raises:
        ValueError: If not exactly one model is given, or as :func:`report_from_scores`.

    Example:
        >>> from bge_integrations import BGEReranker
        >>> data = load_reranking_set("cmedqa-v2.jsonl.gz")  # doctest: +SKIP
        >>> reranker = BGEReranker("BAAI/bge-reranker-base", normalize=False)  # raw logits, as C-MTEB
        >>> evaluate_reranking(data, reranker=reranker).map  # doctest: +SKIP
        0.84...

    """
    msg = "give exactly one of reranker and embedder"
    if (reranker is None) == (embedder is None):
        raise ValueError(msg)
    _check_count(k, "k")
    samples = data.samples if isinstance(data, RerankingSet) else list(data)
    start = time.perf_counter()
    scorable = [i for i, sample in enumerate(samples) if sample.scorable]
    chosen = [samples[i] for i in scorable]
    if reranker is not None:
        scored = cross_encoder_scores(chosen, reranker, progress=progress)
    elif embedder is not None:
        scored = bi_encoder_scores(chosen, embedder)
    else:  # refused above; keeps the type checker sure that scored is set
        raise ValueError(msg)
    scores: list[list[float]] = [[] for _ in samples]
    for i, sample_scores in zip(scorable, scored, strict=True):
        scores[i] = sample_scores
    return report_from_scores(data, scores, k=k, seconds=time.perf_counter() - start)


def _checked_order(relevant: Sequence[bool], scores: Sequence[float]) -> list[int]:
    if len(relevant) != len(scores):
        msg = f"got {len(relevant)} relevance flags but {len(scores)} scores"
        raise ValueError(msg)
    if not scores:
        msg = "no passage to score"
        raise ValueError(msg)
    for i, score in enumerate(scores):
        if not math.isfinite(score):
            msg = f"score {i} is not a finite number: {score!r}"
            raise ValueError(msg)
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def _unit_rows(vectors: list[list[float]], expected: int, what: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != expected:
        msg = f"the embedder returned {array.shape[0] if array.ndim else 0} vectors for {expected} {what}"
        raise ValueError(msg)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    unit: np.ndarray = array / np.maximum(norms, 1e-12)
    return unit


def _check_count(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        msg = f"{name} must be an int > 0, got {value!r}"
        raise ValueError(msg)


def _open_text(path: Path, mode: Literal["r", "w"]) -> TextIO:
    if path.suffix != ".gz":
        return path.open(mode, encoding="utf-8")
    if mode == "r":
        return gzip.open(path, "rt", encoding="utf-8")
    return gzip.open(path, "wt", encoding="utf-8")


def _parse_sample(line: str, number: int, source: Path) -> RerankingSample:
    where = f"line {number} of {source}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        msg = f"{where} is not valid JSON: {exc.msg} (column {exc.colno})"
        raise ValueError(msg) from None
    if not isinstance(record, dict):
        msg = f"{where} must be a JSON object with query, positive and negative, got {type(record).__name__}"
        raise ValueError(msg)
    if "query" not in record:
        msg = f"{where} has no 'query' field"
        raise ValueError(msg)
    query = record["query"]
    if not isinstance(query, str):
        msg = f"{where}: 'query' must be a string, got {type(query).__name__}: {query!r:.80}"
        raise ValueError(msg)
    lists: dict[str, list[str]] = {}
    for key in ("positive", "negative"):
        if key not in record:
            msg = f"{where} has no {key!r} field (a list of strings, possibly empty)"
            raise ValueError(msg)
        value = record[key]
        if not isinstance(value, list):
            msg = f"{where}: {key!r} must be a list of strings, got {type(value).__name__}: {value!r:.80}"
            raise ValueError(msg)
        for i, item in enumerate(value):
            if not isinstance(item, str):
                msg = f"{where}: {key}[{i}] must be a string, got {type(item).__name__}: {item!r:.80}"
                raise ValueError(msg)
        lists[key] = value
    return RerankingSample(query, lists["positive"], lists["negative"], f"line {number}")


__all__ = [
    "NEGATIVE_SOURCES",
    "NegativeSource",
    "PassageScorer",
    "RerankingReport",
    "RerankingSample",
    "RerankingSet",
    "SampleResult",
    "SkippedSample",
    "TextEmbedder",
    "average_precision",
    "bi_encoder_scores",
    "cross_encoder_scores",
    "evaluate_reranking",
    "load_reranking_set",
    "reciprocal_rank",
    "report_from_scores",
    "reranking_set_from_beir",
    "write_reranking_set",
]
