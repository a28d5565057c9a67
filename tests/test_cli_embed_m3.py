"""``bge-integrations embed --outputs``: bge-m3's sparse and ColBERT columns beside the dense one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEM3Embedder
from bge_integrations.cli import main

TEXTS = [f"text number {i} about giant pandas" for i in range(7)]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    source = tmp_path / "corpus.jsonl"
    source.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    return source


def test_outputs_write_sparse_and_colbert_columns_equal_to_the_core(
    corpus: Path, tmp_path: Path, tiny_m3_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m3"
    argv = ["embed", str(corpus), str(out), "--model", tiny_m3_path, "--device", "cpu", "--part-size", "3"]

    assert main([*argv, "--outputs", "colbert,dense,sparse"]) == 0

    assert capsys.readouterr().out == (
        f"7 rows in 3 parts (3 written, 0 already done), outputs dense,sparse,colbert, dimension 32: {out}\n"
    )
    table = pq.read_table(out)
    assert table.column_names == ["id", "embedding", "sparse_indices", "sparse_values", "colbert"]
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert table.schema.field("sparse_indices").type == pa.list_(pa.int32())
    assert table.schema.field("sparse_values").type == pa.list_(pa.float32())
    assert table.schema.field("colbert").type == pa.list_(pa.list_(pa.float32(), 32))
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(TEXTS, outputs="dense,sparse,colbert")
    assert expected.dense is not None
    assert expected.sparse is not None
    assert expected.colbert is not None
    assert np.abs(np.array(table.column("embedding").to_pylist()) - expected.dense).max() <= 1e-5
    for i, (ids, weights, vectors) in enumerate(
        zip(*(table.column(name).to_pylist() for name in ("sparse_indices", "sparse_values", "colbert")), strict=True)
    ):
        assert tuple(ids) == expected.sparse[i].indices
        assert np.abs(np.array(weights) - np.array(expected.sparse[i].values)).max() <= 1e-5
        assert np.abs(np.array(vectors) - expected.colbert[i]).max() <= 1e-5

    assert main([*argv, "--outputs", "dense,sparse,colbert"]) == 0  # a rerun resumes: nothing left to do
    assert "(0 written, 3 already done), outputs dense,sparse,colbert" in capsys.readouterr().out
    assert main(argv) == 2  # the default, dense only, is another run
    assert "outputs: 'dense,sparse,colbert' then, 'dense' now" in capsys.readouterr().err


def test_query_sparse_only_and_the_default_stays_dense(
    tmp_path: Path, tiny_m3_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "queries.jsonl"
    source.write_text('{"qid": 5, "claim": "Where do pandas live?"}\n')
    argv = ["embed", str(source), "--model", tiny_m3_path, "--device", "cpu", "--id-field", "qid"]
    argv += ["--text-field", "claim", "--queries"]

    assert main([*argv[:2], str(tmp_path / "sparse"), *argv[2:], "--outputs", "sparse"]) == 0
    assert "1 row in 1 part (1 written, 0 already done), outputs sparse: " in capsys.readouterr().out
    table = pq.read_table(tmp_path / "sparse")
    assert table.column_names == ["id", "sparse_indices", "sparse_values"]
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").embed_sparse_query("Where do pandas live?")
    assert tuple(table.column("sparse_indices")[0].as_py()) == expected.indices
    assert np.abs(np.array(table.column("sparse_values")[0].as_py()) - np.array(expected.values)).max() <= 1e-5

    assert main([*argv[:2], str(tmp_path / "dense"), *argv[2:]]) == 0
    assert "dimension 32: " in capsys.readouterr().out
    assert pq.read_table(tmp_path / "dense").column_names == ["id", "embedding"]
    manifest = json.loads((tmp_path / "dense" / "_manifest.json").read_text())
    assert "outputs" not in manifest["settings"]  # a dense run records what it always did
    assert main([*argv[:2], str(tmp_path / "dense"), *argv[2:], "--outputs", "dense,sparse"]) == 2
    assert "outputs: 'dense' then, 'dense,sparse' now" in capsys.readouterr().err


def test_a_model_without_the_head_and_unknown_outputs_are_refused(
    corpus: Path, tmp_path: Path, tiny_m3_path: str, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    headless = Path(shutil.copytree(tiny_m3_path, tmp_path / "no-colbert"))
    (headless / "colbert_linear.pt").unlink()
    out = tmp_path / "out"

    assert main(["embed", str(corpus), str(out), "--model", str(headless), "--outputs", "dense,colbert"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"bge-integrations embed: error: {str(headless)!r} has no colbert_linear.pt, so no colbert")
    assert main(["embed", str(corpus), str(out), "--model", tiny_embedder_path, "--outputs", "sparse"]) == 2
    assert "has no sparse_linear.pt, so no sparse output" in capsys.readouterr().err  # not a bge-m3 at all
    assert not out.exists()

    with pytest.raises(SystemExit) as exited:
        main(["embed", str(corpus), str(out), "--outputs", "dense,lexical"])
    assert exited.value.code == 2
    assert "argument --outputs: outputs must be among ('dense', 'sparse', 'colbert'), got 'lexical'" in (
        capsys.readouterr().err
    )
