from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bge_integrations.cli import main


@pytest.fixture
def tiny_collection(tmp_path: Path) -> Path:
    """A 4-document BEIR collection with 2 judged queries."""
    docs = [
        {"_id": "d1", "title": "Pandas", "text": "The giant panda is a bear species endemic to China."},
        {"_id": "d2", "title": "", "text": "Paris is the capital and most populous city of France."},
        {"_id": "d3", "title": "Cells", "text": "Mitochondria are the powerhouse of the cell."},
        {"_id": "q1", "title": "", "text": "A document whose id equals a query id is ignored, as in MTEB."},
    ]
    with gzip.open(tmp_path / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs)
    queries = [{"_id": "q1", "text": "Where do pandas live?"}, {"_id": "q2", "text": "capital of France"}]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n")
    return tmp_path


def test_demo_with_reranker(
    tiny_embedder_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["demo", "--model", tiny_embedder_path, "--reranker", tiny_reranker_path, "--device", "cpu"]
    assert main([*argv, "--query", "Where do pandas live?", "--top-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "Q: Where do pandas live?" in out
    assert out.count("rerank ") == 2


def test_demo_without_reranker(minilm_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", minilm_path, "--reranker", "none", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    first_answer = lines[lines.index("Q: Where do giant pandas live?") + 1]
    assert "giant panda is a bear" in first_answer


def test_eval_reports_and_checks(
    tiny_collection: Path, minilm_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    argv = ["eval", str(tiny_collection), "--model", minilm_path, "--device", "cpu", "--json", str(report)]
    assert main([*argv, "--expect-ndcg", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "nDCG@10     1.00000" in out
    assert "OK" in out
    data = json.loads(report.read_text())
    assert data["per_query_ndcg@10"] == {"q1": 1.0, "q2": 1.0}
    assert (data["ndcg@10"], data["recall@100"], data["mrr@10"]) == (1.0, 1.0, 1.0)
    assert main([*argv, "--expect-ndcg", "0.5"]) == 1


def test_eval_with_reranker(tiny_collection: Path, tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--reranker", tiny_reranker_path]
    assert main([*argv, "--device", "cpu", "--rerank-top-k", "3"]) == 0


def test_embed_jsonl(tiny_embedder_path: str, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "panda"}\n\n{"id": 2, "text": "paris"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["embed", str(source), "--output", str(out), "--model", tiny_embedder_path, "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    assert all(len(r["embedding"]) == 32 for r in rows)
    assert main(["embed", str(source), "--output", str(out), "--queries", "--model", tiny_embedder_path]) == 0
    queries = [json.loads(line) for line in out.read_text().splitlines()]
    assert queries[0]["embedding"] != rows[0]["embedding"]


def test_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "body": "panda"}\n')
    assert main(["embed", str(source)]) == 2
    assert "line 1 of" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "no corpus.jsonl" in capsys.readouterr().err
    assert main(["demo", "--batch-size", "0", "--reranker", "none"]) == 2
    assert "batch_size must be an int > 0, got 0" in capsys.readouterr().err


def test_unreachable_hub_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    # conftest sets HF_HUB_OFFLINE=1: a hub id that is not cached cannot load.
    assert main(["demo", "--embed-model", "BAAI/not-cached-anywhere", "--rerank-model", "none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "Hugging Face hub cannot be reached" in err
    assert "--model PATH" in err


@pytest.mark.parametrize("framework", ["langchain", "llama-index", "haystack"])
def test_eval_through_a_framework_store(
    framework: str, tiny_collection: Path, minilm_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    argv = ["eval", str(tiny_collection), "--model", minilm_path, "--device", "cpu", "--framework", framework]
    assert main([*argv, "--output", str(report), "--expect-ndcg", "1.0"]) == 0
    assert f"framework   {framework}" in capsys.readouterr().out
    assert json.loads(report.read_text())["framework"] == framework


def test_reproduce_prints_one_row_per_path_and_checks_the_table(
    tmp_path: Path, tiny_collection: Path, minilm_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    shutil.copytree(tiny_collection, tmp_path / "data" / "scifact", ignore=shutil.ignore_patterns("data"))
    argv = ["reproduce", str(tmp_path / "data"), "--model", minilm_path, "--published-as", "all-MiniLM-L6-v2"]
    # The tiny collection scores 1.0, not SciFact's published 0.64508: every row is a mismatch.
    assert main([*argv, "--datasets", "scifact", "--frameworks", "core", "haystack", "--device", "cpu"]) == 1
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("scifact")]
    assert [row.split()[1] for row in rows] == ["core", "haystack"]
    assert all("1.00000" in row and "0.64508" in row and row.endswith("MISMATCH") for row in rows)
    assert main([*argv, "--published-as", "nope"]) == 2
