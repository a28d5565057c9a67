"""``eval-rerank`` and ``eval --rerank-model`` with BGE's LLM rerankers (tiny random checkpoints)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bge_integrations import BGEReranker
from bge_integrations.cli import main
from bge_integrations.evaluation import evaluate_reranking, load_reranking_set

ROWS = [
    {"query": "Where do pandas live?", "positive": ["Pandas live in China."], "negative": ["Paris.", "Cell."]},
    {"query": "capital of France", "positive": ["Paris is the capital of France."], "negative": ["Pandas eat bamboo."]},
    {"query": "powerhouse", "positive": ["Mitochondria."], "negative": ["A bear.", "A city.", "Rain."]},
]
PROMPT = "Does passage B answer query A? Answer 'Yes' or 'No'."


@pytest.fixture
def rerank_set(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A 3-document BEIR collection with 2 judged queries."""
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": "d1", "title": "Pandas", "text": "The giant panda is a bear species endemic to China."},
        {"_id": "d2", "title": "", "text": "Paris is the capital and most populous city of France."},
        {"_id": "d3", "title": "Cells", "text": "Mitochondria are the powerhouse of the cell."},
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": "q1", "text": "Where do pandas live?"}, {"_id": "q2", "text": "capital of France"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    return folder


def run_eval_rerank(rerank_set: Path, model: str, tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    report = tmp_path / "report.json"
    argv = ["eval-rerank", str(rerank_set), "--rerank-model", model, "--device", "cpu", "--output", str(report)]
    assert main([*argv, *options]) == 0
    return json.loads(report.read_text()), report.read_text()


def api_map_mrr(rerank_set: Path, model: str, **settings: Any) -> tuple[float, float]:
    reranker = BGEReranker(model, device="cpu", normalize=False, **settings)
    report = evaluate_reranking(load_reranking_set(rerank_set), reranker=reranker)
    return report.map, report.mrr


def core_error(model: str, **settings: Any) -> str:
    """The core's own message for a setting the model's family does not read."""
    with pytest.raises(ValueError, match="applies to") as caught:
        BGEReranker(model, device="cpu", **settings).score("q", ["p"])
    return str(caught.value)


def test_eval_rerank_with_the_gemma_reranker_and_a_prompt(
    rerank_set: Path, tiny_llm_gemma_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = run_eval_rerank(rerank_set, tiny_llm_gemma_path, tmp_path, "--prompt", PROMPT)
    out = capsys.readouterr().out
    assert f"model       llm reranker {tiny_llm_gemma_path} (raw logits)" in out
    assert "samples     3 scored, 0 skipped" in out
    assert "passages    9" in out
    assert f"MAP         {data['map']:.5f}" in out
    assert f"MRR@10      {data['mrr@10']:.5f}" in out
    model = data["model"]
    assert (model["kind"], model["prompt"], model["normalize"]) == ("llm reranker", PROMPT, False)
    assert (model["cutoff_layers"], model["compress_ratio"], model["compress_layers"]) == (None, None, None)
    # The prompt reached the reranker: the metrics are the API's with that prompt.
    assert (data["map"], data["mrr@10"]) == api_map_mrr(rerank_set, tiny_llm_gemma_path, prompt=PROMPT)


@pytest.mark.parametrize(
    ("options", "settings"),
    [
        (["--cutoff-layers", "2"], {"cutoff_layers": [2]}),
        (["--compress-ratio", "2"], {"compress_ratio": 2}),
        (["--compress-layers", "1"], {"compress_layers": [1]}),
    ],
)
def test_a_setting_the_gemma_reranker_does_not_read_fails_with_the_cores_message(
    options: list[str],
    settings: dict[str, Any],
    rerank_set: Path,
    tiny_llm_gemma_path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval-rerank", str(rerank_set), "--rerank-model", tiny_llm_gemma_path, "--device", "cpu", *options]
    assert main(argv) == 2
    message = core_error(tiny_llm_gemma_path, **settings)
    assert message.startswith(f"{next(iter(settings))}=")
    assert repr(tiny_llm_gemma_path) in message
    assert capsys.readouterr().err == f"bge-integrations eval-rerank: error: {message}\n"


def test_llm_settings_need_a_reranker(rerank_set: Path, collection: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-rerank", str(rerank_set), "--model", "m", "--prompt", "x", "--cutoff-layers", "3"]) == 2
    err = capsys.readouterr().err
    assert "--prompt, --cutoff-layers: settings of an LLM reranker (--rerank-model), got --rerank-model not" in err
    assert main(["eval", str(collection), "--model", "m", "--compress-ratio", "2"]) == 2  # --reranker none
    assert "--compress-ratio: settings of an LLM reranker (--rerank-model), got --rerank-model none" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit) as caught:
        main(["eval-rerank", str(rerank_set), "--rerank-model", "r", "--cutoff-layers", "28,last"])
    assert caught.value.code == 2
    assert "must be layer numbers separated by commas, e.g. 28,40, got '28,last'" in capsys.readouterr().err


def test_eval_reranks_with_the_gemma_reranker(
    collection: Path, tiny_embedder_path: str, tiny_llm_gemma_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", str(collection), "--model", tiny_embedder_path, "--rerank-model", tiny_llm_gemma_path]
    assert main([*argv, "--device", "cpu", "--rerank-top-k", "3", "--prompt", PROMPT, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["reranker"]["model_name"] == tiny_llm_gemma_path
    assert payload["reranker"]["prompt"] == PROMPT
    assert 0.0 <= payload["ndcg@10"] <= 1.0
    assert set(payload["per_query_ndcg@10"]) == {"q1", "q2"}


def test_eval_through_a_framework_passes_the_settings_to_its_reranker(
    collection: Path, tiny_embedder_path: str, tiny_llm_gemma_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The framework paths build their own BGEReranker (evaluate_through): the setting reaches it,
    # and the gemma reranker refuses it there with the core's message.
    argv = ["eval", str(collection), "--model", tiny_embedder_path, "--rerank-model", tiny_llm_gemma_path]
    argv += ["--device", "cpu", "--framework", "haystack", "--compress-ratio", "4"]
    assert main(argv) == 2
    message = core_error(tiny_llm_gemma_path, compress_ratio=4)
    assert capsys.readouterr().err.endswith(f"bge-integrations eval: error: {message}\n")


def test_eval_rerank_with_the_layerwise_reranker_and_cutoff_layers(
    rerank_set: Path, tiny_llm_layerwise_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = run_eval_rerank(rerank_set, tiny_llm_layerwise_path, tmp_path, "--cutoff-layers", "3,4")
    assert f"model       llm-layerwise reranker {tiny_llm_layerwise_path}" in capsys.readouterr().out
    assert (data["model"]["kind"], data["model"]["cutoff_layers"]) == ("llm-layerwise reranker", [3, 4])
    # The deepest listed layer ranks.
    assert (data["map"], data["mrr@10"]) == api_map_mrr(rerank_set, tiny_llm_layerwise_path, cutoff_layers=4)


def test_the_layerwise_reranker_refuses_compression_with_the_cores_message(
    rerank_set: Path, tiny_llm_layerwise_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval-rerank", str(rerank_set), "--rerank-model", tiny_llm_layerwise_path, "--device", "cpu"]
    assert main([*argv, "--compress-ratio", "2"]) == 2
    message = core_error(tiny_llm_layerwise_path, compress_ratio=2)
    assert message.startswith("compress_ratio=2 applies to")
    assert repr(tiny_llm_layerwise_path) in message
    assert capsys.readouterr().err.endswith(f"bge-integrations eval-rerank: error: {message}\n")


def test_eval_rerank_with_the_lightweight_reranker_and_compression(
    rerank_set: Path, tiny_llm_lightweight_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not Path(tiny_llm_lightweight_path, "model.safetensors").exists():
        pytest.skip("the tiny lightweight checkpoint is not committed yet")
    options = ["--cutoff-layers", "4", "--compress-ratio", "2", "--compress-layers", "3", "--prompt", PROMPT]
    data, _ = run_eval_rerank(rerank_set, tiny_llm_lightweight_path, tmp_path, *options)
    assert f"model       llm-lightweight reranker {tiny_llm_lightweight_path}" in capsys.readouterr().out
    model = data["model"]
    assert (model["cutoff_layers"], model["compress_ratio"], model["compress_layers"]) == ([4], 2, [3])
    settings = {"cutoff_layers": 4, "compress_ratio": 2, "compress_layers": 3, "prompt": PROMPT}
    assert (data["map"], data["mrr@10"]) == api_map_mrr(rerank_set, tiny_llm_lightweight_path, **settings)


def test_evaluate_through_refuses_reranker_settings_without_a_reranker(collection: Path) -> None:
    from bge_integrations.evaluation import load_beir
    from bge_integrations.evaluation.frameworks import evaluate_through

    with pytest.raises(ValueError, match=r"reranker_settings need a reranker, got reranker=None and .*'prompt'"):
        evaluate_through("core", load_beir(collection), model="m", reranker_settings={"prompt": "x"})
