"""``bge-integrations embed``: a corpus file to Parquet parts, resumable, locally or on Ray."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.cli import main
from tests.ray_scale.cluster import ensure_local_ray


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
