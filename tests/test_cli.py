from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bge_integrations.cli import main


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
    argv = ["eval", str(tiny_collection), "--model", minilm_path, "--device", "cpu", "--output", str(report)]
    assert main([*argv, "--expect-ndcg", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "nDCG@10     1.00000" in out
    assert "OK" in out
    data = json.loads(report.read_text())
    assert data["per_query_ndcg@10"] == {"q1": 1.0, "q2": 1.0}
    assert (data["ndcg@10"], data["recall@100"], data["mrr@10"]) == (1.0, 1.0, 1.0)
    assert main([*argv, "--expect-ndcg", "0.5"]) == 1
    capsys.readouterr()
    # --json alone prints the report as JSON (as eval-rerank does), the exit status unchanged.
    assert main([*argv[:-2], "--json", "--expect-ndcg", "0.5"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in printed.items() if k != "seconds"} == {k: v for k, v in data.items() if k != "seconds"}
    older = tmp_path / "older.json"  # --json PATH, the older spelling of --output PATH, still writes the file
    with pytest.warns(FutureWarning, match="use --output PATH for that"):
        assert main([*argv[:-2], "--json", str(older)]) == 0
    assert json.loads(older.read_text())["ndcg@10"] == 1.0
    assert "nDCG@10     1.00000" in capsys.readouterr().out


def test_eval_with_reranker(tiny_collection: Path, tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--reranker", tiny_reranker_path]
    assert main([*argv, "--device", "cpu", "--rerank-top-k", "3"]) == 0


def test_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "body": "panda"}\n')
    assert main(["embed", str(source), str(tmp_path / "out")]) == 2
    assert "1 bad row in in.jsonl: id 1 (row 0, line 1): no 'text' field" in capsys.readouterr().err
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
    capsys.readouterr()
    assert main([*argv, "--datasets", "scifact", "msmarco"]) == 2  # refused before any evaluation
    assert "no published nDCG@10 for 'msmarco'" in capsys.readouterr().err


# --- eval-rerank ---------------------------------------------------------------------------------

RERANK_ROWS = [
    {"query": "Where do pandas live?", "positive": ["Pandas live in China."], "negative": ["Paris.", "Cell."]},
    {"query": "capital of France", "positive": ["Paris is the capital of France."], "negative": ["Pandas eat bamboo."]},
    {"query": "unanswerable", "positive": [], "negative": ["Nothing relevant here."]},
]


@pytest.fixture
def rerank_set(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in RERANK_ROWS)
    return path


def without_timings(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("seconds")]


def test_eval_rerank_with_a_cross_encoder(
    rerank_set: Path, tiny_reranker_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "result.json"
    argv = ["eval-rerank", str(rerank_set), "--rerank-model", tiny_reranker_path, "--device", "cpu"]
    assert main([*argv, "--output", str(report)]) == 0
    out = capsys.readouterr().out
    assert "samples     2 scored, 1 skipped" in out
    assert "skipped   sample 2 (line 3): no positive passage" in out
    assert "passages    5" in out
    data = json.loads(report.read_text())
    assert 0.0 <= data["map"] <= 1.0
    assert 0.0 <= data["mrr@10"] <= 1.0
    assert (data["samples"], data["skipped"], data["passages"]) == (2, 1, 5)
    assert data["skipped_samples"] == [{"index": 2, "origin": "line 3", "reason": "no positive passage"}]
    assert data["model"]["kind"] == "cross-encoder"
    assert data["model"]["normalize"] is False  # raw logits, as C-MTEB scores them
    assert data["model"]["model_name"] == tiny_reranker_path
    assert data["model"]["device"] == "cpu"
    assert all(data[key] >= 0 for key in ("read_seconds", "score_seconds", "seconds"))
    assert f"MAP         {data['map']:.5f}" in out
    assert f"MRR@10      {data['mrr@10']:.5f}" in out
    # The same numbers as the API, on the same model.
    from bge_integrations import BGEReranker
    from bge_integrations.evaluation import evaluate_reranking, load_reranking_set

    reranker = BGEReranker(tiny_reranker_path, device="cpu", normalize=False)
    api = evaluate_reranking(load_reranking_set(rerank_set), reranker=reranker)
    assert (data["map"], data["mrr@10"]) == (api.map, api.mrr)


def test_eval_rerank_json_on_stdout_with_and_without_progress(
    rerank_set: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval-rerank", str(rerank_set), "--model", tiny_embedder_path, "--device", "cpu", "--json"]
    assert main([*argv, "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    quiet = json.loads(out)
    assert main([*argv, "--progress"]) == 0
    out, err = capsys.readouterr()
    loud = json.loads(out)  # bars never reach standard output
    assert "%|" in err
    assert quiet["model"]["kind"] == loud["model"]["kind"] == "embedder"
    assert quiet["model"]["query_instruction"].startswith("Represent this sentence")
    for key in ("map", "mrr@10", "samples", "skipped", "per_sample"):
        assert quiet[key] == loud[key]


def test_eval_rerank_cross_encoder_progress_is_per_query(
    rerank_set: Path, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval-rerank", str(rerank_set), "--rerank-model", tiny_reranker_path, "--device", "cpu"]
    assert main([*argv, "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert main([*argv, "--progress"]) == 0
    loud = capsys.readouterr()
    assert "Reranking: 100%|" in loud.err
    assert "2/2" in loud.err  # the scored samples, not the skipped one
    assert without_timings(loud.out) == without_timings(quiet.out)


def test_eval_rerank_needs_exactly_one_model(rerank_set: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval-rerank", str(rerank_set)])
    assert exited.value.code == 2
    assert "one of the arguments --rerank-model/--reranker --model/--embed-model is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["eval-rerank", str(rerank_set), "--model", "m", "--rerank-model", "r"])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_eval_rerank_names_the_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text(json.dumps(RERANK_ROWS[0]) + "\n" + '{"query": "q", "positive": "p", "negative": []}\n')
    assert main(["eval-rerank", str(source), "--rerank-model", "r"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bge-integrations eval-rerank: error: line 2 of")
    assert "'positive' must be a list of strings, got str" in err
    source.write_text('{"positive": [], "negative": []}\n')
    assert main(["eval-rerank", str(source), "--model", "m"]) == 2
    assert "line 1 of" in capsys.readouterr().err
    assert main(["eval-rerank", str(tmp_path / "missing.jsonl"), "--model", "m"]) == 2
    assert "no reranking set at" in capsys.readouterr().err


def test_eval_rerank_from_beir(
    tiny_collection: Path, tiny_embedder_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "derived.jsonl"
    argv = ["eval-rerank", str(tiny_collection), "--from-beir", "--model", tiny_embedder_path, "--device", "cpu"]
    assert main([*argv, "--num-negatives", "2", "--save-set", str(saved), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "up to 2 bm25 negatives per query" in data["description"]
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [row["positive"] for row in rows] == [
        ["Pandas The giant panda is a bear species endemic to China."],
        ["Paris is the capital and most populous city of France."],
    ]
    # No other document shares a word with q1 (its own-id document is never a negative), so q1 has
    # no negative: it is skipped, and said to be. q2 shares "of" with the mitochondria document.
    assert [row["negative"] for row in rows] == [[], ["Cells Mitochondria are the powerhouse of the cell."]]
    assert (data["samples"], data["skipped"]) == (1, 1)
    assert data["skipped_samples"] == [{"index": 0, "origin": "query q1", "reason": "no negative passage"}]
    # The saved set scores the same when read back.
    assert main(["eval-rerank", str(saved), "--model", tiny_embedder_path, "--device", "cpu", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["map"], again["mrr@10"]) == (data["map"], data["mrr@10"])
    # Derivation options need a BEIR folder.
    assert main(["eval-rerank", str(saved), "--model", tiny_embedder_path, "--negatives", "random"]) == 2
    assert "--negatives only apply with --from-beir" in capsys.readouterr().err


def test_eval_rerank_help_explains_input_and_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["eval-rerank", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for needle in ('{"query": "...", "positive"', "MAP", "MRR@10", "--from-beir", "skipped", "--progress"):
        assert needle in text


# --- progress bars ---------------------------------------------------------------------------------


def test_eval_progress_goes_to_stderr_only(
    tiny_collection: Path, tiny_embedder_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--reranker", tiny_reranker_path]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert main([*argv, "--device", "cpu", "--progress"]) == 0
    loud = capsys.readouterr()
    assert "%|" in loud.err  # the corpus
    assert "Reranking: 100%|" in loud.err  # the queries
    assert without_timings(loud.out) == without_timings(quiet.out)


def test_progress_defaults_to_whether_stderr_is_a_terminal(
    tiny_collection: Path, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--device", "cpu"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # captured: not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(argv) == 0
    assert "%|" in capsys.readouterr().err
    assert main([*argv, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_reproduce_progress_reaches_each_path(
    tmp_path: Path, tiny_collection: Path, minilm_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("llama_index.core")
    import shutil

    shutil.copytree(tiny_collection, tmp_path / "data" / "scifact", ignore=shutil.ignore_patterns("data"))
    argv = ["reproduce", str(tmp_path / "data"), "--model", minilm_path, "--published-as", "all-MiniLM-L6-v2"]
    argv += ["--datasets", "scifact", "--frameworks", "llama-index", "--device", "cpu"]
    assert main([*argv, "--no-progress"]) == 1  # 1.0 is not SciFact's published 0.64508
    quiet = capsys.readouterr()
    assert quiet.err == ""
    assert main([*argv, "--progress"]) == 1
    loud = capsys.readouterr()
    assert "text/s" in loud.err  # the corpus, through VectorStoreIndex(show_progress=True)
    assert "Searching: 100%|" in loud.err  # the queries, through LlamaIndex's retriever
    assert [row.split()[:4] for row in loud.out.splitlines()] == [row.split()[:4] for row in quiet.out.splitlines()]


def test_help_shows_each_options_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "passages retrieved per query, then reranked (default: 5)" in text
    assert "passages shown per query (default: 3)" in text
    assert "texts (or pairs) per forward pass (default: 32)" in text
    assert "(default: None)" not in text
    assert text.count("(default: BAAI/bge-small-") == 1  # not added twice where the help says it


def test_warnings_are_one_line_for_the_command_line(minilm_path: str) -> None:
    # In a process of its own: pytest records warnings instead of printing them.
    long_query = "where do giant pandas live and what do they eat " * 40  # > MiniLM's 256 tokens
    argv = ["demo", "--model", minilm_path, "--reranker", "none", "--device", "cpu", "--query", long_query]
    code = "import sys; from bge_integrations.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    [line] = [line for line in run.stderr.splitlines() if "truncated" in line]
    assert line.startswith("bge-integrations: warning: 1 of 1 queries are longer than the 256 tokens")
    assert line.endswith("only their beginning is used.")
    assert "truncated_count" not in run.stderr
    assert "sys.exit" not in run.stderr


def test_the_warning_format_is_ours_only_for_our_warnings_and_only_during_a_command() -> None:
    import warnings

    from bge_integrations import TruncationWarning
    from bge_integrations.cli import _OneLineWarnings

    before = warnings.formatwarning
    assert main(["demo", "--model", "/nonexistent/x", "--reranker", "none", "--device", "cpu"]) == 2
    assert warnings.formatwarning is before
    one_line = _OneLineWarnings(before)
    other = UserWarning("first line\nsecond line")
    assert one_line(other, UserWarning, "/elsewhere/lib.py", 3) == before(other, UserWarning, "/elsewhere/lib.py", 3)
    ours = TruncationWarning("1 of 1 queries are longer. This warning is shown once per model; see ...")
    assert (
        one_line(ours, TruncationWarning, "/elsewhere/app.py", 1)
        == "bge-integrations: warning: 1 of 1 queries are longer.\n"
    )
