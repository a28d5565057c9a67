"""Sparse and hybrid retrieval: the fusion math, exact scoring against pair-by-pair scores, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bge_integrations.cli import main
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.core.m3_scoring import combined_score, dense_score, lexical_score
from bge_integrations.core.m3_types import SparseEmbedding
from bge_integrations.evaluation import RetrievalDataset, evaluate_retrieval, load_beir
from bge_integrations.evaluation.bm25 import BM25
from bge_integrations.evaluation.hybrid import (
    HybridSettings,
    evaluate_hybrid,
    lexical_scores,
    min_max,
    reciprocal_rank_fusion,
    sparse_matrix,
    top_with_ties,
    weighted_sum,
)
from bge_integrations.evaluation.retrieval import score_run

REFERENCE = Path(__file__).parents[1] / "data" / "m3_reference.json"

DOCS = {
    "panda-0": "Giant pandas eat bamboo in the mountains.",
    "panda-1": "A panda cub is born very small.",
    "panda-2": "Giant pandas eat bamboo in the mountains.",  # an exact duplicate of panda-0
    "coffee-0": "Espresso is coffee brewed under high pressure.",
    "coffee-1": "Coffee beans are roasted before grinding.",
    "tide-0": "The moon pulls the ocean and causes tides.",
    "tide-1": "Spring tides follow a full or new moon.",
    "bread-0": "Yeast makes bread dough rise in a warm kitchen.",
    "bread-1": "Sourdough bread uses a wild starter culture.",
    "chess-0": "In chess the bishop moves diagonally.",
    "chess-1": "Castling moves the king and a rook at once.",
    "q-tide": "Why are there tides? The moon pulls the ocean.",  # named like a query: dropped
}
QUERIES = {
    "q-panda": "what do giant pandas eat",
    "q-coffee": "how is espresso coffee made",
    "q-tide": "why are there tides",
    "q-bread": "how does bread dough rise",
    "q-chess": "how does the bishop move in chess",
}


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hybrid-beir")
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in DOCS.items())
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES.items())
    (root / "qrels").mkdir()
    rows = ["query-id\tcorpus-id\tscore"]
    for qid in QUERIES:
        topic = qid.removeprefix("q-")
        rows += [f"{qid}\t{topic}-0\t2", f"{qid}\t{topic}-1\t1"]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def dataset(collection: Path) -> RetrievalDataset:
    return load_beir(collection)


def manual_run(dataset: RetrievalDataset, score: dict[str, np.ndarray]) -> dict[str, tuple[list[str], list[float]]]:
    """Every document with its score, per query: score_run orders and cuts them."""
    return {qid: (list(dataset.doc_ids), score[qid].tolist()) for qid in dataset.queries}


# -- fusion math ---------------------------------------------------------------------------


def test_weighted_sum_is_flagembeddings_sparse_plus_dense() -> None:
    """FlagEmbedding's compute_score(...)["sparse+dense"], pair by pair, with the model card's weights
    (0.4, 0.2, 0.4) and with FlagEmbedding's own default (None: 1, 1, 1)."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))["compute_score"]
    checked = set()
    for run in reference["runs"]:
        weights = run["call"]["weights_for_different_modes"] or [1.0, 1.0, 1.0]
        scores = run["scores"]
        fused = weighted_sum(
            np.array(scores["dense"]), np.array(scores["sparse"]), dense_weight=weights[0], sparse_weight=weights[1]
        )
        np.testing.assert_allclose(fused, scores["sparse+dense"], rtol=1e-6, atol=1e-6)
        checked.add(tuple(weights))
    assert checked == {(0.4, 0.2, 0.4), (1.0, 1.0, 1.0)}
    # It is the three-way combined score with ColBERT weighted 0.
    assert weighted_sum(np.array(0.5), np.array(3.0), dense_weight=0.4, sparse_weight=0.2) == pytest.approx(
        combined_score(0.5, 3.0, 123.0, weights=(0.4, 0.2, 0.0))
    )


def test_min_max_and_rrf_by_hand() -> None:
    scores = np.array([[1.0, 3.0, 2.0, 3.0], [7.0, 7.0, 7.0, 7.0]])
    assert min_max(scores).tolist() == [[0.0, 1.0, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]]
    dense = np.array([[0.9, 0.1, 0.5, 0.3]])
    lexical = np.array([[0.0, 8.0, 8.0, 1.0]])  # docs 1 and 2 tie: both rank 1
    fused = reciprocal_rank_fusion(dense, lexical, k=60)
    expected = [1 / 61 + 1 / 64, 1 / 64 + 1 / 61, 1 / 62 + 1 / 61, 1 / 63 + 1 / 63]
    np.testing.assert_allclose(fused[0], expected)
    # Scale-free: multiplying one signal by 1000 changes nothing.
    np.testing.assert_array_equal(reciprocal_rank_fusion(dense, lexical * 1000), reciprocal_rank_fusion(dense, lexical))


def test_minmax_fusion_ignores_the_scale_of_bm25() -> None:
    settings = HybridSettings("bm25")
    assert (settings.fusion, settings.dense_weight, settings.sparse_weight) == ("minmax", 0.4, 0.2)
    dense = np.array([[0.2, 0.8, 0.5]])
    bm25 = np.array([[12.0, 0.0, 6.0]])
    fused = settings.fuse(dense, bm25)
    np.testing.assert_allclose(fused, [[(0.4 * 0 + 0.2 * 1) / 0.6, 0.4 / 0.6, (0.4 * 0.5 + 0.2 * 0.5) / 0.6]])
    np.testing.assert_allclose(settings.fuse(dense, bm25 * 50), fused)


def test_settings_are_checked_naming_the_value() -> None:
    assert HybridSettings().fusion == "weighted"
    assert HybridSettings("m3", "rrf").to_dict() == {"lexical": "m3", "fusion": "rrf", "rrf_k": 60}
    with pytest.raises(ValueError, match="'weighted'"):
        HybridSettings("bm25", "weighted")
    with pytest.raises(ValueError, match=r"-0\.1"):
        HybridSettings("m3", dense_weight=-0.1)
    with pytest.raises(ValueError, match="both be 0"):
        HybridSettings("m3", dense_weight=0.0, sparse_weight=0.0)
    with pytest.raises(ValueError, match="'splade'"):
        HybridSettings("splade")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nan"):
        HybridSettings("m3", "rrf", rrf_k=float("nan"))


def test_sparse_matrix_and_top_with_ties() -> None:
    matrix = sparse_matrix([SparseEmbedding((4, 0), (0.5, 0.25)), SparseEmbedding((), ())], width=5)
    assert matrix.toarray().tolist() == [[0.25, 0.0, 0.0, 0.0, 0.5], [0.0] * 5]
    with pytest.raises(ValueError, match=r"0\.\.3"):
        sparse_matrix([SparseEmbedding((4,), (1.0,))], width=4)
    assert top_with_ties(np.array([0.3, 0.1, 0.3, 0.3, 0.9]), 2).tolist() == [0, 2, 3, 4]
    assert top_with_ties(np.array([0.3, 0.1]), 5).tolist() == [0, 1]


# -- exact scoring on the tiny bge-m3 --------------------------------------------------------


def test_lexical_scores_match_pairwise_lexical_score(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    docs = m3.embed_sparse_documents(list(DOCS.values()))
    queries = m3.embed_sparse_queries(list(QUERIES.values()))
    matrix = lexical_scores(queries, docs)
    expected = [[lexical_score(q, d) for d in docs] for q in queries]
    np.testing.assert_allclose(matrix, expected, rtol=1e-6, atol=1e-9)
    assert (matrix > 0).any()
    assert matrix[:, 0].tolist() == matrix[:, 2].tolist()  # duplicate documents tie exactly


def test_m3_sparse_and_hybrid_equal_pair_by_pair_scoring(dataset: RetrievalDataset, tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    docs = m3.encode_documents(dataset.doc_texts)
    queries = dict(zip(dataset.queries, m3.encode_queries(list(dataset.queries.values())).sparse or [], strict=True))
    dense_q = dict(zip(dataset.queries, m3.embed_queries(list(dataset.queries.values())), strict=True))
    assert docs.sparse is not None
    assert docs.dense is not None
    sparse = {q: np.array([lexical_score(queries[q], d) for d in docs.sparse]) for q in dataset.queries}
    dense = {q: np.array([dense_score(dense_q[q], d) for d in docs.dense]) for q in dataset.queries}

    report = evaluate_hybrid(dataset, model=m3, retrieval="sparse", settings=HybridSettings("m3"))
    expected = score_run(dataset, manual_run(dataset, sparse))
    assert report.per_query_ndcg == pytest.approx(expected.per_query_ndcg, abs=1e-12)

    report = evaluate_hybrid(dataset, model=m3, retrieval="hybrid")
    fused = {q: (0.2 * sparse[q] + 0.4 * dense[q]) / 0.6 for q in dataset.queries}
    expected = score_run(dataset, manual_run(dataset, fused))
    assert report.per_query_ndcg == pytest.approx(expected.per_query_ndcg, abs=1e-12)
    assert (report.ndcg_at_10, report.recall_at_100) == pytest.approx((expected.ndcg_at_10, expected.recall_at_100))


def test_m3_hybrid_with_zero_sparse_weight_is_dense_retrieval(dataset: RetrievalDataset, tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    dense = evaluate_retrieval(dataset, m3.embed_queries, m3.embed_documents)
    report = evaluate_hybrid(dataset, model=m3, settings=HybridSettings("m3", sparse_weight=0.0))
    assert report.per_query_ndcg == pytest.approx(dense.per_query_ndcg, abs=1e-12)


# -- BM25, with and without dense ----------------------------------------------------------


def test_bm25_sparse_is_bm25_and_needs_no_model(dataset: RetrievalDataset) -> None:
    index = BM25(dataset.doc_texts)
    expected = score_run(dataset, manual_run(dataset, {q: index.scores(t) for q, t in dataset.queries.items()}))
    report = evaluate_hybrid(dataset, retrieval="sparse", settings=HybridSettings("bm25"))
    assert report.per_query_ndcg == expected.per_query_ndcg
    assert report.ndcg_at_10 > 0.8  # the queries share their words with the relevant documents


def test_bm25_hybrid_edges_and_middle(dataset: RetrievalDataset, tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    dense = evaluate_retrieval(dataset, embedder.embed_queries, embedder.embed_documents)
    bm25 = evaluate_hybrid(dataset, retrieval="sparse", settings=HybridSettings("bm25"))
    only_dense = evaluate_hybrid(dataset, model=embedder, settings=HybridSettings("bm25", sparse_weight=0.0))
    only_bm25 = evaluate_hybrid(dataset, model=embedder, settings=HybridSettings("bm25", dense_weight=0.0))
    assert only_dense.per_query_ndcg == pytest.approx(dense.per_query_ndcg, abs=1e-12)
    assert only_bm25.per_query_ndcg == pytest.approx(bm25.per_query_ndcg, abs=1e-12)
    # The middle is the min-max fusion of the two, computed here by hand.
    docs = np.asarray(embedder.embed_documents(dataset.doc_texts))
    index = BM25(dataset.doc_texts)
    fused = {}
    for qid, text in dataset.queries.items():
        d = docs @ np.asarray(embedder.embed_query(text))
        s = index.scores(text)
        fused[qid] = (0.4 * (d - d.min()) / np.ptp(d) + 0.2 * (s - s.min()) / np.ptp(s)) / 0.6
    expected = score_run(dataset, manual_run(dataset, fused))
    report = evaluate_hybrid(dataset, model=embedder, settings=HybridSettings("bm25"))
    assert report.per_query_ndcg == pytest.approx(expected.per_query_ndcg, abs=1e-9)


def test_hybrid_through_a_framework_store_equals_core(dataset: RetrievalDataset, tiny_embedder_path: str) -> None:
    pytest.importorskip("langchain_core")
    settings = HybridSettings("bm25", "rrf")
    core = evaluate_hybrid(dataset, model=tiny_embedder_path, device="cpu", settings=settings)
    through = evaluate_hybrid(dataset, model=tiny_embedder_path, device="cpu", settings=settings, framework="langchain")
    assert through.per_query_ndcg == core.per_query_ndcg


def test_evaluate_hybrid_refuses_what_cannot_run(dataset: RetrievalDataset, tiny_embedder_path: str) -> None:
    with pytest.raises(ValueError, match="'dense'"):
        evaluate_hybrid(dataset, model=tiny_embedder_path, retrieval="dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model=None"):
        evaluate_hybrid(dataset, settings=HybridSettings("bm25"))
    with pytest.raises(ValueError, match="50"):
        evaluate_hybrid(dataset, retrieval="sparse", settings=HybridSettings("bm25"), top_k=50)
    with pytest.raises(ValueError, match="'haystack'"):
        evaluate_hybrid(dataset, retrieval="sparse", settings=HybridSettings("bm25"), framework="haystack")
    with pytest.raises(TypeError, match="BGEM3Embedder"):
        evaluate_hybrid(dataset, model=BGEEmbedder(tiny_embedder_path, device="cpu"))


# -- the command line ----------------------------------------------------------------------


def test_cli_hybrid_bm25_json(
    collection: Path, tiny_embedder_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(collection), "--model", tiny_embedder_path, "--device", "cpu", "--json"]
    cache = tmp_path / "cache"
    assert main([*argv, "--retrieval", "hybrid", "--lexical", "bm25", "--cache-dir", str(cache)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["retrieval"] == "hybrid"
    assert payload["hybrid"] == {"lexical": "bm25", "fusion": "minmax", "dense_weight": 0.4, "sparse_weight": 0.2}
    expected = evaluate_hybrid(load_beir(collection), model=tiny_embedder_path, settings=HybridSettings("bm25"))
    assert payload["ndcg@10"] == pytest.approx(expected.ndcg_at_10)
    assert any(cache.iterdir())  # the dense vectors were cached
    assert main([*argv, "--retrieval", "hybrid", "--lexical", "bm25", "--fusion", "rrf"]) == 0
    assert json.loads(capsys.readouterr().out)["hybrid"] == {"lexical": "bm25", "fusion": "rrf", "rrf_k": 60}
    assert main([*argv, "--retrieval", "sparse", "--lexical", "bm25"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["embedder"] is None
    assert payload["ndcg@10"] == pytest.approx(
        evaluate_hybrid(load_beir(collection), retrieval="sparse", settings=HybridSettings("bm25")).ndcg_at_10
    )


def test_cli_dense_stays_as_it_was(
    collection: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(collection), "--model", tiny_embedder_path, "--device", "cpu"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "retrieval" not in text
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    dense = evaluate_retrieval(load_beir(collection), embedder.embed_queries, embedder.embed_documents)
    assert f"nDCG@10     {dense.ndcg_at_10:.5f}" in text


def test_cli_m3_hybrid_table(collection: Path, tiny_m3_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["eval", str(collection), "--model", tiny_m3_path, "--device", "cpu", "--retrieval", "hybrid"]
    assert main([*argv, "--sparse-weight", "0.3"]) == 0
    text = capsys.readouterr().out
    assert "retrieval   hybrid: dense + m3 lexical, weighted sum 0.4/0.3" in text
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    expected = evaluate_hybrid(load_beir(collection), model=m3, settings=HybridSettings("m3", sparse_weight=0.3))
    assert f"nDCG@10     {expected.ndcg_at_10:.5f}" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fusion", "rrf"], "--fusion: for --retrieval sparse or hybrid, got --retrieval dense"),
        (["--retrieval", "sparse", "--lexical", "bm25", "--dense-weight", "1"], "for --retrieval hybrid only"),
        (["--retrieval", "hybrid", "--fusion", "rrf", "--sparse-weight", "1"], "--sparse-weight does not apply"),
        (["--retrieval", "hybrid", "--rrf-k", "10"], "--rrf-k does not apply to --fusion weighted"),
        (["--retrieval", "hybrid", "--lexical", "bm25", "--fusion", "weighted"], "not BM25"),
        (["--retrieval", "hybrid", "--dense-weight", "-1"], "-1.0"),
    ],
)
def test_cli_refuses_options_that_cannot_apply(
    collection: Path, tiny_embedder_path: str, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", str(collection), "--model", tiny_embedder_path, "--device", "cpu", *options]) == 2
    assert message in capsys.readouterr().err


def test_cli_m3_sparse_on_a_model_without_a_sparse_head(
    collection: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(collection), "--model", tiny_embedder_path, "--device", "cpu", "--retrieval", "sparse"]
    assert main(argv) == 2
    assert "sparse_linear" in capsys.readouterr().err
