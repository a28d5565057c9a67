"""The benchmark scripts run end to end (on tiny models and a few texts: checks that they work, times nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu, llm_rerankers, run

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
pytestmark = pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data/scifact")


def test_embedding_and_reranking_workloads(tiny_st_embedder_path: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.json"
    common = ["--documents", "6", "--queries", "3", "--rerank-queries", "1", "--repeats", "1", "--output", str(out)]
    run.main(
        [
            "--workloads",
            "documents",
            "query",
            "async",
            "cache",
            "--rerankers",
            "--model-path",
            tiny_st_embedder_path,
            *common,
        ]
    )
    printed = capsys.readouterr().out
    for name in (
        "pure compute",
        "pure compute (2,048-token batches)",
        "bge core",
        "bge langchain",
        "bge llama-index",
        "bge haystack",
        "sentence-transformers",
        "sentence-transformers (batch 10)",
        "llama-index HuggingFaceEmbedding (batch 10)",
    ):
        assert f"| {name}" in printed
    results = json.loads(out.read_text())["results"]
    assert [r["workload"] for r in results] == ["documents", "query", "async", "cache"]
    assert "| repeat (cache filled) (ours)" in printed
    assert "identical to the first pass" in printed
    assert all(seconds > 0 for r in results for seconds in r["median_seconds"].values())
    assert [r["items"] for r in results[1:3]] == [3, 3]  # --queries: the query and async workloads' queries


def test_reranking_workloads(tiny_reranker_path: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.json"
    common = ["--documents", "2", "--rerank-queries", "1", "--candidates", "8", "--repeats", "1", "--output", str(out)]
    run.main(
        ["--workloads", "rerank", "rerank-async", "long", "--embedders", "--model-path", tiny_reranker_path, *common]
    )
    printed = capsys.readouterr().out
    assert "| haystack SentenceTransformersSimilarityRanker" in printed
    assert "| sentence-transformers CrossEncoder (batch 10)" in printed
    assert "| bge core (async) (ours)" in printed
    assert [r["workload"] for r in json.loads(out.read_text())["results"]] == ["rerank", "rerank-async", "long"]


def test_documents_with_our_auto_backend(tiny_st_embedder_path: str, tmp_path: Path, capsys) -> None:
    pytest.importorskip("openvino")
    common = ["--documents", "4", "--repeats", "1", "--output", str(tmp_path / "r.json")]
    contestants = ["--contestants", "bge core", "bge core (auto)", "sentence-transformers (batch 10)"]
    run.main(["--workloads", "documents", "--rerankers", "--model-path", tiny_st_embedder_path, *contestants, *common])
    printed = capsys.readouterr().out
    assert "| bge core (auto) (ours)" in printed
    assert "| sentence-transformers (batch 10) |" in printed


def test_batch_shape_script(tiny_st_embedder_path: str, tmp_path: Path, capsys) -> None:
    from benchmarks import batch_shape

    out = tmp_path / "shape.json"
    argv = ["--model-path", tiny_st_embedder_path, "--sizes", "2", "32", "--budgets", "64", "--documents", "6"]
    batch_shape.main([*argv, "--repeats", "1", "--output", str(out)])
    printed = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in printed.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["setting", "default", "batch 2", "batch 32", "budget 64"]
    assert any(line.startswith("| batch 32 |") and "| 1.000 |" in line for line in printed.splitlines())
    result = json.loads(out.read_text())["results"][0]
    assert result["default_budget"] == 2048
    shapes = {row["setting"]: row for row in result["rows"]}
    assert shapes["batch 2"]["texts_per_batch"] == 2.0
    assert shapes["budget 64"]["texts_per_batch"] == 1.0  # every abstract is longer than 32 tokens


def test_gpu_script_runs_on_cpu(tiny_st_embedder_path: str, capsys) -> None:
    gpu.main(["--model-path", tiny_st_embedder_path, "--documents", "4", "--batch-size", "2", "--lengths", "16"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 16 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["pure compute", "BGEEmbedder", "sentence-transformers"]


def test_llm_rerankers_script_runs_on_cpu(tmp_path: Path, capsys) -> None:
    out = tmp_path / "llm.json"
    argv = ["--pairs", "2", "--max-length", "48", "--query-tokens", "4", "--batch-size", "2", "--repeats", "1"]
    families = ["--families", "llm", "llm-layerwise", "llm-lightweight", "--compress-ratios", "2"]
    llm_rerankers.main([*argv, *families, "--output", str(out)])
    rows = [line.split("|")[1].strip() for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert rows[2:] == [
        "cross-encoder (XLM-R)",
        "llm (v2-gemma)",
        "llm-layerwise, cutoff layer 6 (last, default)",
        "llm-layerwise, cutoff layer 4",
        "llm-lightweight, compress_ratio 2 (from layer 2)",
    ]
    results = json.loads(out.read_text())["results"]
    assert [r["name"] for r in results] == rows[2:]
    assert results[0]["vs_cross_encoder"] == 1.0
    assert all(r["pairs_per_second"] > 0 for r in results)


def test_serving_script_runs_a_server_and_app_processes(
    tiny_st_embedder_path: str, tiny_reranker_path: str, tmp_path: Path, capsys
) -> None:
    from benchmarks import serving

    out = tmp_path / "serving.json"
    sizes = ["--documents", "6", "--rerank-queries", "1", "--candidates", "3", "--clients", "3", "--max-request", "2"]
    models = ["--model-path", tiny_st_embedder_path, "--reranker-path", tiny_reranker_path]
    serving.main([*models, *sizes, "--repeats", "1", "--apps", "2", "--threads", "1", "--output", str(out)])
    printed = capsys.readouterr().out
    assert "| embed | HTTP `/v1/embeddings`, 3 clients" in printed
    assert "| rerank | HTTP `/rerank`, 3 clients" in printed
    assert "client apps imported torch: no" in printed
    results = json.loads(out.read_text())
    assert results["checks"]["embed_min_cosine"] > 0.999
    assert results["checks"]["rerank_max_score_diff"] < 1e-3
    assert [(r["task"], r["items"]) for r in results["throughput"]] == [
        ("embed", 6),
        ("embed", 6),
        ("rerank", 3),
        ("rerank", 3),
    ]
    assert all(r["rate"] > 0 and r["seconds"] for r in results["throughput"])
    assert all(sum(r["calls"]) >= 1 for r in results["throughput"] if r["setup"].startswith("HTTP"))
    assert [(m["model_copies"], len(m["processes"])) for m in results["memory"]] == [(2, 2), (1, 3)]
    assert all(rss > 0 for m in results["memory"] for _name, rss, _pss in m["processes"])


def test_st_backends_child_runs_ours_and_reports(tiny_st_embedder_path: str, tmp_path: Path, capsys) -> None:
    # The comparison's other side needs its own environment (built by --setup, minutes of pip): not here.
    pytest.importorskip("openvino")
    from benchmarks import st_backends

    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps(["a panda eats bamboo", "Paris is in France", "short"]))
    spec = {
        "side": "ours",
        "backend": "openvino",
        "precision": "fp32",
        "batch": None,
        "model": tiny_st_embedder_path,
        "dir": str(tmp_path / "exports"),
        "texts": str(texts),
        "vectors": str(tmp_path / "ours.npy"),
        "repeats": 2,
        "threads": 1,
    }
    assert st_backends.main(["--child", json.dumps(spec)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(st_backends.RESULT))
    result = json.loads(line[len(st_backends.RESULT) :])
    assert len(result["seconds"]) == 2
    assert result["info"]["openvino_config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert result["info"]["versions"]["openvino"]
    assert np.load(tmp_path / "ours.npy").shape[0] == 3
