"""``bge-integrations embed``: a corpus file to Parquet parts, resumable, locally or on Ray."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.bulk import EmbedFileResult
from bge_integrations.cli import main
from tests.ray_scale.cluster import ensure_local_ray


@pytest.fixture
def embed_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of each ``embed_file`` call the CLI makes; nothing is embedded."""
    import bge_integrations.bulk

    calls: list[dict[str, Any]] = []

    def record(*args: Any, **kwargs: Any) -> EmbedFileResult:
        calls.append(kwargs)
        return EmbedFileResult(output=tmp_path, rows=0, parts=0, parts_written=0, parts_skipped=0, dimension=None)

    monkeypatch.setattr(bge_integrations.bulk, "embed_file", record)
    return calls


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": f"text number {i}"}) + "\n" for i in range(7)))
    return source


def test_embed_writes_parquet_parts_equal_to_the_core(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "vectors"
    argv = ["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--device", "cpu", "--part-size", "3"]

    assert main(argv) == 0

    assert capsys.readouterr().out == f"7 rows in 3 parts (3 written, 0 already done), dimension 32: {out}\n"
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [f"d{i}" for i in range(7)]
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents([f"text number {i}" for i in range(7)])
    assert np.abs(np.array(table.column("embedding").to_pylist()) - np.array(expected)).max() <= 1e-5
    assert main(argv) == 0  # a rerun resumes: nothing left to do
    assert "(0 written, 3 already done)" in capsys.readouterr().out


def test_embed_queries_fields_and_refused_resume(
    tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "queries.jsonl"
    source.write_text('{"qid": 5, "claim": "Where do pandas live?"}\n')
    argv = ["embed", str(source), str(tmp_path / "q"), "--model", tiny_embedder_path, "--device", "cpu"]

    assert main([*argv, "--queries", "--id-field", "qid", "--text-field", "claim"]) == 0
    [vector] = pq.read_table(tmp_path / "q").column("embedding").to_pylist()
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_query("Where do pandas live?")
    assert np.abs(np.array(vector) - np.array(expected)).max() <= 1e-5
    capsys.readouterr()

    assert main([*argv, "--id-field", "qid", "--text-field", "claim"]) == 2
    assert "role: 'query' then, 'document' now" in capsys.readouterr().err


def test_embed_bad_rows_stop_or_are_reported(
    tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": null}\n')
    argv = ["embed", str(source), str(tmp_path / "out"), "--model", tiny_embedder_path, "--device", "cpu"]

    assert main(argv) == 2
    assert "error: 1 bad row in bad.jsonl: id 'b' (row 1, line 2): text is None" in capsys.readouterr().err
    assert main([*argv, "--on-bad-rows", "report"]) == 0
    assert "1 bad rows kept with a null embedding; first: id 'b' (row 1, line 2): text is None" in (
        capsys.readouterr().out
    )
    assert pq.read_table(tmp_path / "out").column("error").to_pylist() == [None, "text is None"]


def test_embed_progress_goes_to_stderr_only(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["embed", str(corpus), "--model", tiny_embedder_path, "--device", "cpu"]
    assert main([*argv[:2], str(tmp_path / "quiet"), *argv[2:], "--no-progress"]) == 0
    quiet = capsys.readouterr()
    assert main([*argv[:2], str(tmp_path / "loud"), *argv[2:], "--progress"]) == 0
    loud = capsys.readouterr()

    assert quiet.err == ""
    assert "Embedding" in loud.err
    assert loud.out.replace("loud", "quiet") == quiet.out


@pytest.mark.parametrize(
    ("options", "engine"),
    [
        ([], "LocalEngine(torch_threads=None)"),
        (["--engine", "local"], "LocalEngine(torch_threads=None)"),
        (
            ["--engine", "ray"],
            "RayEngine(num_actors=1, num_gpus_per_actor=0, num_cpus_per_actor=None, tables_per_actor=2)",
        ),
        (
            ["--engine", "ray", "--num-actors", "3", "--num-gpus-per-actor", "0.5"],
            "RayEngine(num_actors=3, num_gpus_per_actor=0.5, num_cpus_per_actor=None, tables_per_actor=2)",
        ),
    ],
)
def test_engine_names_become_engine_objects(
    corpus: Path, tmp_path: Path, embed_calls: list[dict[str, Any]], options: list[str], engine: str
) -> None:
    assert main(["embed", str(corpus), str(tmp_path / "out"), *options]) == 0
    [kwargs] = embed_calls
    assert repr(kwargs["engine"]) == engine  # an object: bulk never maps a name, nor imports Ray
    assert not {"num_actors", "num_gpus_per_actor", "num_cpus_per_actor"} & set(kwargs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--num-actors", "2"], "error: --num-actors: Ray actor options, for --engine ray only"),
        (
            ["--engine", "local", "--num-actors", "2", "--num-gpus-per-actor", "1"],
            "error: --num-actors and --num-gpus-per-actor: Ray actor options, for --engine ray only",
        ),
        (["--engine", "ray", "--num-actors", "0"], "error: num_actors must be an int > 0, got 0"),
        (["--engine", "ray", "--num-gpus-per-actor", "-1"], "error: num_gpus_per_actor must be a number >= 0, got -1"),
    ],
)
def test_engine_options_are_checked_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["embed", str(tmp_path / "not-read.jsonl"), str(tmp_path / "out"), *options]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_embed_on_ray_equals_local(
    request: pytest.FixtureRequest, corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    ensure_local_ray(request.config)
    argv = ["embed", str(corpus), "--model", tiny_embedder_path, "--part-size", "2"]

    assert main([*argv[:2], str(tmp_path / "local"), *argv[2:], "--device", "cpu"]) == 0
    assert main([*argv[:2], str(tmp_path / "ray"), *argv[2:], "--engine", "ray", "--num-actors", "2"]) == 0

    on_ray, local = pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local")
    assert on_ray.column("id").equals(local.column("id"))
    difference = np.array(on_ray.column("embedding").to_pylist()) - np.array(local.column("embedding").to_pylist())
    assert np.abs(difference).max() <= 1e-5


def test_backend_options_reach_the_bulk_run_only_when_given(
    corpus: Path, tmp_path: Path, embed_calls: list[dict[str, Any]]
) -> None:
    out = str(tmp_path / "out")

    assert main(["embed", str(corpus), out]) == 0
    assert main(["embed", str(corpus), out, "--backend", "onnx", "--backend-precision", "int8"]) == 0

    plain, chosen = embed_calls
    assert not {"backend", "backend_precision"} & set(plain)  # not given: the core's defaults, not recorded
    assert (chosen["backend"], chosen["backend_precision"]) == ("onnx", "int8")
