from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.evaluation import RetrievalDataset, evaluate_retrieval, load_beir
from bge_integrations.evaluation.frameworks import evaluate_through, retrieve_through, score_run
from bge_integrations.evaluation.retrieval import exact_search, trec_order

FRAMEWORK_MODULES = {"langchain": "langchain_core", "llama-index": "llama_index.core", "haystack": "haystack"}

TOPICS = {
    "panda": ["Giant pandas eat bamboo.", "Pandas live in the mountains of China.", "A panda cub weighs little."],
    "coffee": ["Coffee contains caffeine.", "Espresso is brewed under pressure.", "Arabica beans grow at altitude."],
    "rust": ["Rust has a borrow checker.", "Cargo builds Rust crates.", "Rust compiles to native code."],
    "tide": ["The moon causes ocean tides.", "Spring tides follow the full moon.", "Tide pools hold small crabs."],
    "bread": ["Yeast makes bread dough rise.", "Sourdough uses a wild starter.", "Bake bread in a hot oven."],
    "volcano": ["Lava flows from volcanoes.", "Magma cools into basalt rock.", "Mount Etna erupts often."],
    "chess": ["The bishop moves diagonally.", "Castling protects the king.", "A pawn can promote to a queen."],
    "sleep": ["Adults need about eight hours of sleep.", "REM sleep brings dreams.", "Caffeine delays sleep."],
}
QUERIES = {
    "q-panda": "what do pandas eat",
    "q-coffee": "how is espresso made",
    "q-rust": "rust programming language compiler",
    "q-tide": "why are there tides",
    "q-bread": "how does bread rise",
    "q-chess": "how does the bishop move in chess",
}


@pytest.fixture(scope="module")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 short documents: 8 topics x 3, two exact-duplicate groups, and one document named like a query."""
    root = tmp_path_factory.mktemp("tiny-beir")
    corpus: list[dict[str, str]] = []
    for topic, texts in TOPICS.items():
        corpus += [{"_id": f"{topic}-{i}", "title": "", "text": text} for i, text in enumerate(texts)]
    # Exact duplicates (their embeddings tie exactly): ids sort differently from corpus order.
    corpus += [
        {"_id": "panda-9", "title": "", "text": "Giant pandas eat bamboo."},
        {"_id": "panda-10", "title": "", "text": "Giant pandas eat bamboo."},
        {"_id": "coffee-7", "title": "Espresso", "text": "is brewed under pressure."},
        {"_id": "coffee-8", "title": "", "text": "Espresso is brewed under pressure."},
    ]
    # Shares its id with a query and would rank first for it: MTEB (and the core path) drops it.
    corpus.append({"_id": "q-tide", "title": "", "text": "Why are there tides? The moon pulls the ocean."})
    assert len(corpus) == 29
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in corpus)
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps({"_id": qid, "text": text}) + "\n" for qid, text in QUERIES.items())
    (root / "qrels").mkdir()
    rows = ["query-id\tcorpus-id\tscore"]
    for qid in QUERIES:
        topic = qid.removeprefix("q-")
        rows += [f"{qid}\t{topic}-0\t2", f"{qid}\t{topic}-2\t1"]
    rows += ["q-panda\tpanda-10\t1", "q-coffee\tcoffee-7\t1", "q-tide\tq-tide\t2"]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def dataset(beir_dir: Path) -> RetrievalDataset:
    return load_beir(beir_dir)


def core_rankings(dataset: RetrievalDataset, model: str) -> dict[str, list[str]]:
    """The core path's ranked ids per query, as evaluate_retrieval builds them."""
    embedder = BGEEmbedder(model, device="cpu")
    docs = np.asarray(embedder.embed_documents(dataset.doc_texts), dtype=np.float32)
    query_ids = list(dataset.queries)
    queries = np.asarray(embedder.embed_queries([dataset.queries[q] for q in query_ids]), dtype=np.float32)
    indices, scores = exact_search(queries, docs, top_k=101)
    rankings = {}
    for row, qid in enumerate(query_ids):
        ranked = trec_order([dataset.doc_ids[i] for i in indices[row]], scores[row].tolist())
        rankings[qid] = [doc for doc in ranked if doc != qid][:100]
    return rankings


def test_core_path_is_evaluate_retrieval(dataset: RetrievalDataset, minilm_path: str) -> None:
    embedder = BGEEmbedder(minilm_path, device="cpu")
    expected = evaluate_retrieval(dataset, embedder.embed_queries, embedder.embed_documents)
    report = evaluate_through("core", dataset, model=minilm_path, device="cpu")
    assert report.per_query_ndcg == expected.per_query_ndcg
    assert (report.ndcg_at_10, report.recall_at_100, report.mrr_at_10) == (
        expected.ndcg_at_10,
        expected.recall_at_100,
        expected.mrr_at_10,
    )
    # The fixture is not degenerate: the model finds most, not all, relevant documents first.
    assert 0.5 < report.ndcg_at_10 < 1.0


@pytest.mark.parametrize("framework", ["langchain", "llama-index", "haystack"])
def test_framework_path_scores_as_core(framework: str, dataset: RetrievalDataset, minilm_path: str) -> None:
    pytest.importorskip(FRAMEWORK_MODULES[framework])
    core = evaluate_through("core", dataset, model=minilm_path, device="cpu")
    report = evaluate_through(framework, dataset, model=minilm_path, device="cpu")  # type: ignore[arg-type]
    assert report.per_query_ndcg == core.per_query_ndcg
    assert report.ndcg_at_10 == pytest.approx(core.ndcg_at_10, abs=1e-9)
    assert report.recall_at_100 == pytest.approx(core.recall_at_100, abs=1e-9)
    assert report.mrr_at_10 == pytest.approx(core.mrr_at_10, abs=1e-9)


@pytest.mark.parametrize("framework", ["langchain", "llama-index", "haystack"])
def test_framework_rankings_equal_core(framework: str, dataset: RetrievalDataset, minilm_path: str) -> None:
    pytest.importorskip(FRAMEWORK_MODULES[framework])
    expected = core_rankings(dataset, minilm_path)
    run = retrieve_through(framework, dataset, model=minilm_path, device="cpu")  # type: ignore[arg-type]
    assert set(run) == set(dataset.queries)
    for qid, (doc_ids, scores) in run.items():
        assert len(doc_ids) == len(dataset.doc_ids)  # k=101 asks for more than the 29 there are
        ranked = [doc for doc in trec_order(doc_ids, scores) if doc != qid]
        assert ranked == expected[qid], qid
    # Exact duplicates tie in every store, and the trec rule puts the larger id first.
    panda = [doc for doc in expected["q-panda"] if doc in {"panda-0", "panda-9", "panda-10"}]
    assert panda == ["panda-9", "panda-10", "panda-0"]
    assert "q-tide" not in expected["q-tide"]


def test_framework_reranking_matches_core(dataset: RetrievalDataset, minilm_path: str, tiny_reranker_path: str) -> None:
    pytest.importorskip("langchain_core")
    core = evaluate_through("core", dataset, model=minilm_path, device="cpu", reranker=tiny_reranker_path)
    report = evaluate_through("langchain", dataset, model=minilm_path, device="cpu", reranker=tiny_reranker_path)
    assert report.per_query_ndcg == core.per_query_ndcg


def test_score_run_uses_trec_ties_and_drops_the_query_id() -> None:
    data = RetrievalDataset("toy", ["a", "b", "q"], ["A", "B", "Q"], {"q": "?"}, {"q": {"b": 1, "q": 1}})
    report = score_run(data, {"q": (["q", "a", "b"], [0.9, 0.5, 0.5])})
    assert report.per_query_ndcg == {"q": pytest.approx(1 / (1 + 1 / np.log2(3)))}
    assert report.mrr_at_10 == 1.0
    assert report.recall_at_100 == 0.5
    kept = score_run(data, {"q": (["q", "a", "b"], [0.9, 0.5, 0.5])}, ignore_identical_ids=False)
    assert kept.per_query_ndcg == {"q": pytest.approx(1.0)}


def test_bad_arguments_are_refused(dataset: RetrievalDataset) -> None:
    with pytest.raises(ValueError, match="framework must be one of"):
        evaluate_through("faiss", dataset, model="m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k must be at least 100"):
        evaluate_through("core", dataset, model="m", top_k=10)
    with pytest.raises(ValueError, match="rerank_top_k"):
        evaluate_through("core", dataset, model="m", reranker="r", rerank_top_k=200)


@pytest.mark.parametrize("framework", ["core", "langchain", "llama-index", "haystack"])
def test_progress_bars_change_nothing_but_stderr(
    framework: str, dataset: RetrievalDataset, minilm_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if framework != "core":
        pytest.importorskip(FRAMEWORK_MODULES[framework])
    quiet = evaluate_through(framework, dataset, model=minilm_path, device="cpu")  # type: ignore[arg-type]
    capsys.readouterr()  # loading the weights: transformers draws its own bar for that
    loud = evaluate_through(framework, dataset, model=minilm_path, device="cpu", progress=True)  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert out == ""
    # The corpus bar (the core's, unit "text"), reached through the framework's own flag:
    # BGEEmbeddings(show_progress=True), VectorStoreIndex(show_progress=True), BGEDocumentEmbedder(progress_bar=True).
    assert "text/s" in err
    assert ("Searching: 100%|" in err) == (framework != "core")  # then one bar over the queries
    # The corpus went to the embedder as without bars: every query scores the same.
    assert loud.per_query_ndcg == quiet.per_query_ndcg
    assert (loud.recall_at_100, loud.mrr_at_10) == (quiet.recall_at_100, quiet.mrr_at_10)
    if framework != "core":  # and exact duplicates still tie exactly in the store
        doc_ids, scores = retrieve_through(framework, dataset, model=minilm_path, device="cpu", progress=True)[
            "q-panda"
        ]  # type: ignore[arg-type]
        score = dict(zip(doc_ids, scores, strict=True))
        assert score["panda-9"] == score["panda-10"] == score["panda-0"]
        assert score["coffee-7"] == score["coffee-8"]


def test_reranking_progress_is_per_query(
    dataset: RetrievalDataset, minilm_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {"model": minilm_path, "device": "cpu", "reranker": tiny_reranker_path, "rerank_top_k": 5}
    quiet = evaluate_through("core", dataset, **settings)  # type: ignore[arg-type]
    capsys.readouterr()
    loud = evaluate_through("core", dataset, progress=True, **settings)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "Reranking: 100%|" in err
    assert f"{len(dataset.queries)}/{len(dataset.queries)}" in err
    assert loud.per_query_ndcg == quiet.per_query_ndcg
