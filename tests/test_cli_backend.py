"""``--backend`` / ``--backend-precision`` on the commands that embed: embed, eval, demo and serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.bulk import read_manifest
from bge_integrations.cli import main
from bge_integrations.core.backends import runtime_installed


@pytest.fixture(autouse=True)
def _exports_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported graphs go to this test's folder, not the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": i, "text": f"passage {i} " * (i + 1)}) + "\n" for i in range(9)))
    return source


def _cosines(left: Any, right: Any) -> Any:
    a, b = np.asarray(left, dtype=np.float64), np.asarray(right, dtype=np.float64)
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_embed_runs_the_openvino_graph_records_it_and_refuses_another_backend_on_resume(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("openvino")
    out = tmp_path / "vectors"
    argv = ["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--device", "cpu", "--part-size", "4"]

    assert main([*argv, "--backend", "openvino"]) == 0

    assert list((tmp_path / "cache" / "bge_integrations" / "backends").iterdir())  # the export was written
    vectors = pq.read_table(out).column("embedding").to_pylist()
    torch_vectors = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(
        [f"passage {i} " * (i + 1) for i in range(9)]
    )
    assert _cosines(vectors, torch_vectors).min() >= 0.999999
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest["settings"]["embedder"] == {"backend": "openvino"}
    capsys.readouterr()

    assert main(argv) == 2  # the same folder with torch: other settings, named
    assert "embedder: {'backend': 'openvino'} then, {} now" in capsys.readouterr().err
    assert main([*argv, "--backend", "openvino", "--backend-precision", "fp32"]) == 0  # fp32: the default, spelled out
    assert "(0 written, 3 already done)" in capsys.readouterr().out


def test_a_spelled_out_default_backend_resumes_a_run_without_one(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vectors"
    argv = ["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--device", "cpu", "--part-size", "4"]
    assert main(argv) == 0
    capsys.readouterr()

    assert main([*argv, "--backend", "torch"]) == 0  # the default, spelled out: the same run

    assert "(0 written, 3 already done)" in capsys.readouterr().out
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest["settings"]["embedder"] == {}


def test_precision_without_a_graph_backend_is_refused_naming_the_options(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embed", str(corpus), str(tmp_path / "out"), "--backend-precision", "int8"]) == 2
    assert "error: --backend-precision int8: needs --backend onnx or openvino, got --backend not given" in (
        capsys.readouterr().err
    )
    assert main(["embed", str(corpus), str(tmp_path / "out"), "--backend", "auto", "--backend-precision", "bf16"]) == 2
    assert "got --backend auto" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_backend_outside_the_choices_is_refused_naming_them(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", str(corpus), str(tmp_path / "out"), "--backend", "tensorrt"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--backend: invalid choice: 'tensorrt'" in err
    assert "'torch', 'onnx', 'openvino', 'auto'" in err
    assert not (tmp_path / "out").exists()


def test_eval_with_auto_scores_as_torch(
    tiny_collection: Path,
    tiny_embedder_path: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--device", "cpu", "--json"]
    assert main(argv) == 0
    torch_report = json.loads(capsys.readouterr().out)

    assert main([*argv, "--backend", "auto"]) == 0
    auto_report = json.loads(capsys.readouterr().out)

    assert auto_report["embedder"]["backend"] == ("openvino" if runtime_installed("openvino") else "torch")
    assert auto_report["per_query_ndcg@10"] == torch_report["per_query_ndcg@10"]


def test_eval_through_an_adapter_refuses_the_backend_options(
    tiny_collection: Path,
    tiny_embedder_path: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["eval", str(tiny_collection), "--model", tiny_embedder_path, "--framework", "langchain"]
    assert main([*argv, "--backend", "openvino", "--backend-precision", "bf16"]) == 2
    assert (
        "error: --backend, --backend-precision: for --framework core only, got --framework langchain "
        "(in code, each adapter takes backend=...)"
    ) in capsys.readouterr().err


def test_serve_gives_the_backend_to_the_embedder_only(monkeypatch: pytest.MonkeyPatch, tiny_embedder_path: str) -> None:
    import bge_integrations.serving

    served: list[Any] = []
    monkeypatch.setattr(bge_integrations.serving, "run_server", lambda settings, **kwargs: served.append(settings))

    assert main(["serve", "--model", tiny_embedder_path, "--reranker", "r", "--backend", "auto"]) == 0

    [settings] = served
    assert settings.embedder_settings == {"backend": "auto"}
    assert settings.reranker_settings == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--backend", "openvino", "--device", "cuda"], "backend='openvino' runs on the CPU only, got device='cuda'"),
        (["--backend", "onnx"], "BGEM3Embedder runs bge-m3's heads in torch; backend must be 'torch' or 'auto'"),
    ],
)
def test_serve_refuses_settings_that_do_not_fit_before_starting(
    monkeypatch: pytest.MonkeyPatch,
    tiny_embedder_path: str,
    tiny_m3_path: str,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda *args, **kwargs: pytest.fail("the server started"))
    model = tiny_m3_path if "onnx" in options else tiny_embedder_path

    assert main(["serve", "--model", model, *options]) == 2

    assert f"error: {message}" in capsys.readouterr().err


def test_serve_refuses_a_backend_without_an_embedder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--reranker", "r", "--backend", "openvino"]) == 2
    assert "error: --backend: settings of the embedder, which needs --model" in capsys.readouterr().err
