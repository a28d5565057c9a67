"""Reranking evaluation: MTEB v1 / C-MTEB MAP and MRR@10, set loading, derivation from BEIR, both model paths."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.evaluation import RetrievalDataset, load_beir
from bge_integrations.evaluation.bm25 import BM25
from bge_integrations.evaluation.reranking import (
    RerankingSample,
    RerankingSet,
    average_precision,
    bi_encoder_scores,
    cross_encoder_scores,
    evaluate_reranking,
    load_reranking_set,
    reciprocal_rank,
    report_from_scores,
    reranking_set_from_beir,
    write_reranking_set,
)

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "scifact"


# --- Reference definitions, written independently of the module ---------------------------


def brute_force_ap(relevant: list[bool], scores: list[float]) -> float:
    """scikit-learn's AP, spelled out: for every distinct score t, precision and recall of {score >= t}."""
    total = sum(relevant)
    if total == 0:
        return 0.0
    ap, previous_recall = 0.0, 0.0
    for t in sorted(set(scores), reverse=True):
        above = [r for r, s in zip(relevant, scores, strict=True) if s >= t]
        recall = sum(above) / total
        ap += (recall - previous_recall) * (sum(above) / len(above))
        previous_recall = recall
    return ap


def textbook_ap(relevant: list[bool], scores: list[float]) -> float:
    """Without ties: the mean, over relevant passages, of precision at their rank."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    hits, precisions = 0, []
    for rank, i in enumerate(order, start=1):
        if relevant[i]:
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(precisions)


def mteb_mrr(relevant: list[bool], scores: list[float], k: int = 10) -> float:
    """MTEB's mrr_at_k_score on an argsort that keeps input order for ties."""
    ranking = np.argsort(-np.array(scores), kind="stable")
    for rank, index in enumerate(ranking[:k]):
        if relevant[index]:
            return 1 / (rank + 1)
    return 0.0


def random_case(rng: random.Random, *, ties: bool) -> tuple[list[bool], list[float]]:
    n = rng.randint(2, 30)
    relevant = [rng.random() < 0.3 for _ in range(n)]
    relevant[rng.randrange(n)] = True
    scores = [float(rng.randint(0, 4)) if ties else rng.random() for _ in range(n)]
    return relevant, scores


# --- Metric definitions ----------------------------------------------------------------------


class TestAveragePrecision:
    def test_hand_computed(self) -> None:
        assert average_precision([True, False, True], [0.9, 0.8, 0.7]) == pytest.approx((1 + 2 / 3) / 2)
        assert average_precision([False, False, True], [0.9, 0.8, 0.7]) == pytest.approx(1 / 3)
        assert average_precision([False, True, True], [0.1, 0.8, 0.7]) == 1.0
        assert average_precision([True], [0.3]) == 1.0

    def test_ties_form_one_step(self) -> None:
        # One tied group holding 1 positive of 2: precision 1/2 whatever the input order.
        assert average_precision([True, False], [0.5, 0.5]) == 0.5
        assert average_precision([False, True], [0.5, 0.5]) == 0.5
        assert average_precision([True, False, False], [1.0, 1.0, 1.0]) == pytest.approx(1 / 3)
        # 0.9: one positive, precision 1; then the tie {p, n} adds the second at precision 2/3.
        assert average_precision([True, True, False, False], [0.9, 0.5, 0.5, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
        # Ties cost: the same ranking without the tie, positive first, scores higher.
        assert average_precision([False, True], [0.5, 0.5]) < average_precision([False, True], [0.5, 0.6])

    def test_invariant_to_the_order_of_tied_passages(self) -> None:
        rng = random.Random(3)
        for _ in range(50):
            relevant, scores = random_case(rng, ties=True)
            order = list(range(len(scores)))
            rng.shuffle(order)
            shuffled = average_precision([relevant[i] for i in order], [scores[i] for i in order])
            assert shuffled == pytest.approx(average_precision(relevant, scores), abs=1e-12)

    def test_no_positive_is_zero_as_in_scikit_learn(self) -> None:
        assert average_precision([False, False], [0.4, 0.2]) == 0.0

    @pytest.mark.parametrize("ties", [False, True])
    def test_equals_brute_force_reference(self, ties: bool) -> None:
        rng = random.Random(7)
        for _ in range(300):
            relevant, scores = random_case(rng, ties=ties)
            assert average_precision(relevant, scores) == pytest.approx(brute_force_ap(relevant, scores), abs=1e-12)
            if not ties:
                assert average_precision(relevant, scores) == pytest.approx(textbook_ap(relevant, scores), abs=1e-12)

    def test_equals_scikit_learn(self) -> None:
        # scikit-learn is what MTEB calls; sentence-transformers installs it, we do not depend on it.
        metrics = pytest.importorskip("sklearn.metrics")
        rng = random.Random(11)
        for ties in (False, True):
            for _ in range(200):
                relevant, scores = random_case(rng, ties=ties)
                expected = metrics.average_precision_score(relevant, scores)
                assert average_precision(relevant, scores) == pytest.approx(expected, abs=1e-12)

    @pytest.mark.parametrize(
        ("relevant", "scores", "match"),
        [
            ([True], [0.1, 0.2], "got 1 relevance flags but 2 scores"),
            ([], [], "no passage to score"),
            ([True, False], [0.1, float("nan")], "score 1 is not a finite number: nan"),
            ([True, False], [float("inf"), 0.1], "score 0 is not a finite number: inf"),
        ],
    )
    def test_bad_input(self, relevant: list[bool], scores: list[float], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            average_precision(relevant, scores)


class TestReciprocalRank:
    def test_hand_computed(self) -> None:
        assert reciprocal_rank([False, True, False], [0.9, 0.8, 0.1]) == 0.5
        assert reciprocal_rank([False, False, True], [0.9, 0.8, 0.7]) == pytest.approx(1 / 3)
        assert reciprocal_rank([True, True], [0.2, 0.9]) == 1.0

    def test_cut_at_k(self) -> None:
        negatives = [False] * 10
        scores_11th = [1.0 - i / 100 for i in range(10)] + [0.5]
        assert reciprocal_rank([*negatives, True], scores_11th) == 0.0
        assert reciprocal_rank([*negatives, True], scores_11th, k=11) == pytest.approx(1 / 11)
        scores_10th = [1.0 - i / 100 for i in range(9)] + [0.5]
        assert reciprocal_rank([*negatives[:9], True], scores_10th) == pytest.approx(0.1)

    def test_ties_keep_input_order(self) -> None:
        assert reciprocal_rank([True, False], [0.5, 0.5]) == 1.0
        assert reciprocal_rank([False, True], [0.5, 0.5]) == 0.5
        assert reciprocal_rank([False, True, False], [0.9, 0.5, 0.5]) == 0.5
        assert reciprocal_rank([False, False, True], [0.9, 0.5, 0.5]) == pytest.approx(1 / 3)

    def test_equals_mteb_on_random_cases(self) -> None:
        rng = random.Random(5)
        for ties in (False, True):
            for _ in range(300):
                relevant, scores = random_case(rng, ties=ties)
                assert reciprocal_rank(relevant, scores) == mteb_mrr(relevant, scores)

    def test_bad_k(self) -> None:
        with pytest.raises(ValueError, match="k must be an int > 0, got 0"):
            reciprocal_rank([True], [0.1], k=0)


# --- Aggregation over samples ----------------------------------------------------------------


def test_report_means_over_scored_samples_and_lists_the_skipped() -> None:
    samples = [
        RerankingSample("q1", ["p"], ["n1", "n2"], origin="line 1"),
        RerankingSample("q2", [], ["n"], origin="line 2"),
        RerankingSample("q3", ["p1", "p2"], ["n"], origin="line 3"),
        RerankingSample("q4", ["p"], [], origin="line 4"),
        RerankingSample("q5", [], [], origin="line 5"),
    ]
    scores = [[0.2, 0.9, 0.1], [], [0.9, 0.5, 0.5], [], []]
    report = report_from_scores(RerankingSet("toy", samples), scores)
    # q1: positive second -> AP 1/2, RR 1/2. q3: p1 first, then the tie {p2, n} -> AP (1 + 2/3) / 2, RR 1.
    assert report.map == pytest.approx((0.5 + (1 + 2 / 3) / 2) / 2)
    assert report.mrr == pytest.approx((0.5 + 1.0) / 2)
    assert (report.samples, report.skipped, report.passages, report.tied_samples) == (2, 3, 6, 1)
    assert [(s.index, s.origin, s.reason) for s in report.skipped_samples] == [
        (1, "line 2", "no positive passage"),
        (3, "line 4", "no negative passage"),
        (4, "line 5", "no passage"),
    ]
    assert [(r.index, r.origin) for r in report.per_sample] == [(0, "line 1"), (2, "line 3")]
    data = report.to_dict()
    assert (data["dataset"], data["map"], data["mrr@10"], data["samples"], data["skipped"]) == (
        "toy",
        report.map,
        report.mrr,
        2,
        3,
    )
    assert data["skipped_samples"][0] == {"index": 1, "origin": "line 2", "reason": "no positive passage"}
    assert json.loads(json.dumps(data)) == data


def test_report_refuses_misaligned_scores() -> None:
    samples = [RerankingSample("q", ["p"], ["n"], origin="line 1"), RerankingSample("r", ["p"], ["n1", "n2"])]
    with pytest.raises(ValueError, match="got score lists for 1 samples, but there are 2"):
        report_from_scores(samples, [[0.1, 0.2]])
    with pytest.raises(ValueError, match="sample 1 has 3 passages but 2 scores"):
        report_from_scores(samples, [[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(ValueError, match=r"sample 0 \(line 1\): score 1 is not a finite number: nan"):
        report_from_scores(samples, [[0.1, float("nan")], [0.3, 0.4, 0.5]])


def test_nothing_scorable_is_an_error_not_nan() -> None:
    with pytest.raises(ValueError, match=r"no sample has both a positive and a negative passage \(2 skipped"):
        report_from_scores([RerankingSample("q", [], ["n"]), RerankingSample("r", ["p"], [])], [[], []])


# --- Reading and writing sets ------------------------------------------------------------------

ROWS = [
    {"query": "where do pandas live?", "positive": ["Pandas live in China."], "negative": ["Paris is in France."]},
    {"query": "capital of France", "positive": ["Paris is the capital of France."], "negative": [], "id": 7},
]


def write_lines(path: Path, lines: list[str]) -> Path:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)
    return path


@pytest.mark.parametrize("name", ["set.jsonl", "set.jsonl.gz"])
def test_load_reads_samples_with_their_lines(tmp_path: Path, name: str) -> None:
    path = write_lines(tmp_path / name, [json.dumps(ROWS[0]), "", json.dumps(ROWS[1])])
    data = load_reranking_set(path)
    assert data.name == "set"
    assert data.samples == [
        RerankingSample(ROWS[0]["query"], ROWS[0]["positive"], ROWS[0]["negative"], "line 1"),
        RerankingSample(ROWS[1]["query"], ROWS[1]["positive"], [], "line 3"),
    ]
    assert load_reranking_set(path, limit=1).samples == data.samples[:1]


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    samples = [RerankingSample("为这个句子", ["相关文章"], ["b", "c"]), RerankingSample("q", [], ["n"])]
    path = write_reranking_set(RerankingSet("zh", samples), tmp_path / "zh.jsonl.gz")
    loaded = load_reranking_set(path)
    assert [(s.query, s.positive, s.negative) for s in loaded.samples] == [
        (s.query, s.positive, s.negative) for s in samples
    ]


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"query": "q", "positive": ["p"]', r"line 2 of .*set\.jsonl is not valid JSON"),
        ('["q", ["p"], ["n"]]', "line 2 of .* must be a JSON object with query, positive and negative, got list"),
        ('{"positive": ["p"], "negative": ["n"]}', "line 2 of .* has no 'query' field"),
        ('{"query": ["q1", "q2"], "positive": [], "negative": []}', "line 2 .*: 'query' must be a string, got list"),
        ('{"query": "q", "positive": "p", "negative": []}', "line 2 .*: 'positive' must be a list of strings, got str"),
        ('{"query": "q", "positive": ["p", 3], "negative": []}', r"line 2 .*: positive\[1\] must be a string, got int"),
        ('{"query": "q", "positive": ["p"]}', "line 2 of .* has no 'negative' field"),
        ('{"query": "q", "positive": ["p"], "negative": null}', "line 2 of .*: 'negative' must be a list of strings"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, line: str, match: str) -> None:
    path = write_lines(tmp_path / "set.jsonl", [json.dumps(ROWS[0]), line])
    with pytest.raises(ValueError, match=match):
        load_reranking_set(path)


def test_load_refuses_missing_empty_and_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no reranking set at"):
        load_reranking_set(tmp_path / "missing.jsonl")
    with pytest.raises(FileNotFoundError, match="is a folder"):
        load_reranking_set(tmp_path)
    with pytest.raises(ValueError, match="no samples in"):
        load_reranking_set(write_lines(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(ValueError, match="limit must be an int > 0 or None, got 0"):
        load_reranking_set(write_lines(tmp_path / "one.jsonl", [json.dumps(ROWS[0])]), limit=0)


# --- Scoring with models -------------------------------------------------------------------------

SAMPLES = [
    RerankingSample("Where do giant pandas live?", ["The giant panda lives in China."], ["Paris is in France.", ""]),
    RerankingSample("no positives here", [], ["skipped"]),
    RerankingSample(
        "What powers the cell?",
        ["Mitochondria are the powerhouse of the cell.", "ATP carries energy."],
        ["The giant panda lives in China.", "Rust is fast.", "Mitochondria are the powerhouse of the cell."],
    ),
]


class RecordingScorer:
    """A cross-encoder whose score of a passage is a number derived from (query, passage)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def score(self, query: str, documents: list[str]) -> list[float]:
        self.calls.append((query, list(documents)))
        return [float(sum(map(ord, query + d)) % 97) for d in documents]


class RecordingEmbedder:
    """An embedder with fixed random vectors per (role, text), recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def _vector(self, role: str, text: str) -> list[float]:
        seed = sum(map(ord, role + text))
        return np.random.default_rng(seed).normal(size=8).tolist()

    def embed_queries(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("queries", list(texts)))
        return [self._vector("q", t) for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(("documents", list(texts)))
        return [self._vector("d", t) for t in texts]


def test_cross_encoder_path_scores_each_scorable_sample_once_in_order() -> None:
    scorer = RecordingScorer()
    report = evaluate_reranking(SAMPLES, reranker=scorer)
    assert scorer.calls == [(s.query, s.positive + s.negative) for s in (SAMPLES[0], SAMPLES[2])]
    expected = [scorer.score(s.query, s.passages) for s in SAMPLES]
    expected[1] = []
    reference = report_from_scores(SAMPLES, expected)
    assert (report.map, report.mrr, report.samples, report.skipped) == (reference.map, reference.mrr, 2, 1)


def test_embedder_path_embeds_all_queries_and_all_passages_in_one_call_each() -> None:
    embedder = RecordingEmbedder()
    scored = [SAMPLES[0], SAMPLES[2]]
    scores = bi_encoder_scores(scored, embedder)
    assert embedder.calls == [
        ("queries", [s.query for s in scored]),
        ("documents", [p for s in scored for p in s.positive + s.negative]),
    ]
    for sample, sample_scores in zip(scored, scores, strict=True):
        q = np.array(embedder._vector("q", sample.query))
        for passage, score in zip(sample.passages, sample_scores, strict=True):
            d = np.array(embedder._vector("d", passage))
            assert score == pytest.approx(q @ d / np.linalg.norm(q) / np.linalg.norm(d), abs=1e-12)


def test_cross_encoder_path_equals_bge_reranker_score(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    scores = cross_encoder_scores(SAMPLES, reranker)
    assert scores == [reranker.score(s.query, s.passages) for s in SAMPLES]
    # The passage repeated as positive and negative ties exactly: the sample counts as tied.
    report = evaluate_reranking(SAMPLES, reranker=reranker)
    assert report.tied_samples == 1
    assert report == report_from_scores(SAMPLES, [scores[0], [], scores[2]], seconds=report.seconds)


def test_embedder_path_equals_cosine_of_bge_vectors(tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    scored = [SAMPLES[0], SAMPLES[2]]
    scores = bi_encoder_scores(scored, embedder)
    for sample, sample_scores in zip(scored, scores, strict=True):
        query = np.array(embedder.embed_queries([sample.query])[0])  # with the instruction
        passages = np.array(embedder.embed_documents(sample.passages))
        expected = passages @ query / np.linalg.norm(passages, axis=1) / np.linalg.norm(query)
        assert sample_scores == pytest.approx(expected.tolist(), abs=1e-5)
        plain = np.array(embedder.embed_documents([sample.query])[0])
        assert not np.allclose(passages @ plain, passages @ query, atol=1e-4)  # the instruction did reach it
    assert scores[1][0] == scores[1][4]  # one text, one vector: positive and negative copies tie exactly
    assert evaluate_reranking(SAMPLES, embedder=embedder).tied_samples == 1


def test_exactly_one_model() -> None:
    with pytest.raises(ValueError, match="give exactly one of reranker and embedder"):
        evaluate_reranking(SAMPLES)
    with pytest.raises(ValueError, match="give exactly one of reranker and embedder"):
        evaluate_reranking(SAMPLES, reranker=RecordingScorer(), embedder=RecordingEmbedder())


def test_scorer_returning_the_wrong_count_is_refused() -> None:
    class Short:
        def score(self, query: str, documents: list[str]) -> list[float]:
            return [0.0]

    with pytest.raises(ValueError, match="returned 1 scores for 3 passages of sample 0"):
        cross_encoder_scores(SAMPLES[:1], Short())


def test_progress_bar_over_samples_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = evaluate_reranking(SAMPLES, reranker=RecordingScorer())
    assert capsys.readouterr() == ("", "")
    loud = evaluate_reranking(SAMPLES, reranker=RecordingScorer(), progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "Reranking" in err
    assert "2/2" in err
    assert (loud.map, loud.mrr) == (quiet.map, quiet.mrr)


# --- Deriving a set from a BEIR collection ---------------------------------------------------------


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    docs = {
        "p1": "Giant pandas eat bamboo in the mountains.",
        "p2": "Pandas spend most of the day eating bamboo.",
        "p2-copy": "Pandas spend most of the day eating bamboo.",
        "x1": "Bamboo grows fast in China.",
        "x2": "Red pandas are not bears.",
        "x3": "Paris is the capital of France.",
        "x4": "Espresso is brewed under pressure.",
        "q-coffee": "How is espresso made? With pressure.",
        "c1": "Espresso machines push hot water through coffee.",
    }
    with (tmp_path / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    queries = {"q-panda": "what do pandas eat bamboo", "q-coffee": "how is espresso made", "q-none": "unjudged"}
    with (tmp_path / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items())
    (tmp_path / "qrels").mkdir()
    rows = ["query-id\tcorpus-id\tscore", "q-panda\tp2\t2", "q-panda\tp1\t1", "q-panda\tx2\t0"]
    rows += ["q-coffee\tc1\t1", "q-coffee\tq-coffee\t2", "q-coffee\tx3\t0"]
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def test_bm25_negatives(beir_dir: Path) -> None:
    data = reranking_set_from_beir(beir_dir, num_negatives=3)
    assert data.name == beir_dir.name
    assert [s.origin for s in data.samples] == ["query q-panda", "query q-coffee"]  # judged queries only
    panda, coffee = data.samples
    assert panda.query == "what do pandas eat bamboo"
    assert panda.positive == [  # qrels order
        "Pandas spend most of the day eating bamboo.",
        "Giant pandas eat bamboo in the mountains.",
    ]
    # Best BM25 matches that are not judged relevant; never the copy of a positive.
    loaded = load_beir(beir_dir)
    bm25 = BM25(loaded.doc_texts).scores(panda.query)
    ranked = sorted((i for i in range(len(bm25)) if bm25[i] > 0), key=lambda i: -bm25[i])
    expected = [i for i in ranked if loaded.doc_ids[i] not in {"p1", "p2", "p2-copy"}][:3]
    assert panda.negative == [loaded.doc_texts[i] for i in expected]
    assert len(panda.negative) == 2  # only two other documents share a word with the query
    assert "Pandas spend most of the day eating bamboo." not in panda.negative
    # The document named like the query is neither positive nor negative (MTEB ignores it).
    assert coffee.positive == ["Espresso machines push hot water through coffee."]
    assert "How is espresso made? With pressure." not in coffee.negative
    assert coffee.negative == ["Espresso is brewed under pressure.", "Paris is the capital of France."]
    assert "bm25" in data.description


def test_random_negatives_are_reproducible(beir_dir: Path) -> None:
    one = reranking_set_from_beir(beir_dir, negatives="random", num_negatives=2, seed=1)
    again = reranking_set_from_beir(beir_dir, negatives="random", num_negatives=2, seed=1)
    assert one == again
    assert all(len(s.negative) == 2 for s in one.samples)
    forbidden = {"Pandas spend most of the day eating bamboo.", "Giant pandas eat bamboo in the mountains."}
    assert forbidden.isdisjoint(one.samples[0].negative)
    seeds = {tuple(reranking_set_from_beir(beir_dir, negatives="random", seed=s).samples[0].negative) for s in range(5)}
    assert len(seeds) > 1


def test_judged_negatives_and_min_grade(beir_dir: Path) -> None:
    judged = reranking_set_from_beir(beir_dir, negatives="judged")
    assert [s.negative for s in judged.samples] == [["Red pandas are not bears."], ["Paris is the capital of France."]]
    strict = reranking_set_from_beir(beir_dir, negatives="judged", min_grade=2, limit=1)
    assert strict.samples[0].positive == ["Pandas spend most of the day eating bamboo."]
    assert strict.samples[0].negative == ["Giant pandas eat bamboo in the mountains.", "Red pandas are not bears."]
    # q-coffee's only grade-2 document is named like the query: no positive, so it is skipped and said so.
    report = evaluate_reranking(reranking_set_from_beir(beir_dir, min_grade=2), reranker=RecordingScorer())
    assert (report.samples, report.skipped) == (1, 1)
    assert report.skipped_samples[0].origin == "query q-coffee"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"negatives": "bm42"}, "negatives must be one of bm25, random, judged; got 'bm42'"),
        ({"num_negatives": 0}, "num_negatives must be an int > 0, got 0"),
        ({"min_grade": 0}, "min_grade must be an int >= 1, got 0"),
        ({"limit": -1}, "limit must be an int > 0, got -1"),
    ],
)
def test_derivation_refuses_bad_settings(beir_dir: Path, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        reranking_set_from_beir(beir_dir, **kwargs)


def test_qrels_naming_a_missing_document(beir_dir: Path) -> None:
    data = load_beir(beir_dir)
    qrels = {**data.qrels, "q-panda": {"gone": 1}}
    broken = RetrievalDataset(data.name, data.doc_ids, data.doc_texts, data.queries, qrels)
    with pytest.raises(ValueError, match=r"query 'q-panda' name documents missing from the corpus: \['gone'\]"):
        reranking_set_from_beir(broken)


# --- Real model, real data ----------------------------------------------------------------------------


def random_baseline(samples: list[RerankingSample], draws: int = 400) -> tuple[float, float]:
    """MAP and MRR@10 of a scorer that ranks at random, estimated by seeded draws."""
    rng = np.random.default_rng(0)
    aps, rrs = [], []
    for sample in samples:
        relevant = [True] * len(sample.positive) + [False] * len(sample.negative)
        for _ in range(draws):
            scores = rng.random(len(relevant)).tolist()
            aps.append(average_precision(relevant, scores))
            rrs.append(reciprocal_rank(relevant, scores))
    return float(np.mean(aps)), float(np.mean(rrs))


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/data/scifact")
@pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")  # abstracts over 256 tokens, as in MTEB
def test_minilm_beats_random_on_a_scifact_slice(minilm_path: str) -> None:
    # 12 SciFact claims, each with its cited abstracts and the 8 best BM25 matches that are not cited.
    data = reranking_set_from_beir(SCIFACT, num_negatives=8, limit=12)
    assert len(data.samples) == 12
    assert all(s.positive and len(s.negative) == 8 for s in data.samples)
    report = evaluate_reranking(data, embedder=BGEEmbedder(minilm_path, device="cpu"))
    chance_map, chance_mrr = random_baseline(data.samples)
    assert (report.samples, report.skipped, report.tied_samples) == (12, 0, 0)
    assert 0.25 < chance_map < 0.4  # mostly one positive among nine passages: about 0.31
    assert report.map > chance_map + 0.3
    assert report.mrr > chance_mrr + 0.3
