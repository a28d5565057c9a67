"""bge-m3's sparse and ColBERT outputs in bulk: EmbedBatch, embed_file (resume, refusals) and Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEM3Embedder
from bge_integrations.bulk import EmbedBatch, embed_file, read_manifest
from bge_integrations.bulk import files as files_module
from bge_integrations.core.m3_model import MissingHeadError
from bge_integrations.core.m3_types import M3Embeddings
from tests.tiny_models import CORPUS

TEXTS = [f"{CORPUS[i % len(CORPUS)]} #{i}" for i in range(11)]
ALL = "dense,sparse,colbert"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(TEXTS)), encoding="utf-8")
    return path


def assert_columns_equal(table: pa.Table, expected: M3Embeddings, rows: list[int] | None = None) -> None:
    """The table's bge-m3 columns hold the core's outputs (for the given rows of expected, all by default)."""
    rows = list(range(len(expected))) if rows is None else rows
    if expected.dense is not None:
        dense = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
        assert np.abs(dense - expected.dense[rows]).max() <= 1e-5
    if expected.sparse is not None:
        indices = table.column("sparse_indices").to_pylist()
        weights = table.column("sparse_values").to_pylist()
        for row, ids, values in zip(rows, indices, weights, strict=True):
            assert tuple(ids) == expected.sparse[row].indices  # FlagEmbedding's order, kept
            assert np.abs(np.array(values) - np.array(expected.sparse[row].values)).max() <= 1e-5
    if expected.colbert is not None:
        for row, vectors in zip(rows, table.column("colbert").to_pylist(), strict=True):
            assert np.array(vectors).shape == expected.colbert[row].shape
            assert np.abs(np.array(vectors) - expected.colbert[row]).max() <= 1e-5


def test_embed_batch_adds_the_asked_outputs_from_one_forward_pass(
    tiny_m3_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = EmbedBatch(tiny_m3_path, role="query", outputs=["colbert", "sparse"], settings={"device": "cpu"})
    core = BGEM3Embedder(tiny_m3_path, device="cpu")
    expected = core.encode_queries(TEXTS[:4], outputs="sparse,colbert")
    passes: list[tuple[str, ...]] = []
    real = BGEM3Embedder._encode

    def counting(self: BGEM3Embedder, texts: list[str], *, query: bool, outputs: tuple[Any, ...]) -> M3Embeddings:
        passes.append(outputs)
        return real(self, texts, query=query, outputs=outputs)

    monkeypatch.setattr(BGEM3Embedder, "_encode", counting)
    table = batch(pa.table({"id": [0, 1, 2, 3], "text": TEXTS[:4]}))

    assert passes == [("sparse", "colbert")]  # both outputs from one call, in canonical order
    assert table.column_names == ["id", "text", "sparse_indices", "sparse_values", "colbert"]
    assert table.schema.field("sparse_indices").type == pa.list_(pa.int32())
    assert table.schema.field("sparse_values").type == pa.list_(pa.float32())
    assert table.schema.field("colbert").type == pa.list_(pa.list_(pa.float32(), 32))  # fixed size: the dim
    settings = json.loads(table.schema.field("colbert").metadata[b"bge_integrations"])
    assert (settings["role"], settings["outputs"]) == ("query", ["sparse", "colbert"])
    assert_columns_equal(table, expected)


def test_embed_batch_reports_bad_rows_with_null_outputs(tiny_m3_path: str) -> None:
    batch = EmbedBatch(tiny_m3_path, outputs=ALL, on_bad_rows="report", settings={"device": "cpu"})
    table = batch(pa.table({"id": ["a", "b", "c"], "text": [TEXTS[0], None, TEXTS[1]]}))

    for name in ("embedding", "sparse_indices", "sparse_values", "colbert"):
        assert table.column(name).null_count == 1
        assert table.column(name)[1].as_py() is None
    assert table.column("error").to_pylist() == [None, "text is None", None]
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents([TEXTS[0], TEXTS[1]], outputs=ALL)
    assert_columns_equal(table.take([0, 2]), expected)


def test_embed_batch_without_the_head_fails_when_it_loads(tiny_m3_path: str, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny_m3_path, tmp_path / "no-colbert"))
    (folder / "colbert_linear.pt").unlink()

    EmbedBatch.check(str(folder), outputs="dense,colbert")  # the driver's check reads no weights
    with pytest.raises(MissingHeadError, match=r"has no colbert_linear.pt, so no colbert output"):
        EmbedBatch(str(folder), outputs="dense,colbert", settings={"device": "cpu"})
    with pytest.raises(ValueError, match=r"outputs must be among \('dense', 'sparse', 'colbert'\), got 'lexical'"):
        EmbedBatch.check(str(folder), outputs="dense,lexical")


class KilledError(Exception):
    """Stands for the process being killed mid-run."""


def test_interrupted_m3_run_resumes_to_the_uninterrupted_file(
    corpus: Path, tmp_path: Path, tiny_m3_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {"model": tiny_m3_path, "part_size": 4, "device": "cpu", "outputs": ALL}
    whole = embed_file(corpus, tmp_path / "uninterrupted", **options)
    assert (whole.parts, whole.dimension, whole.outputs) == (3, 32, ("dense", "sparse", "colbert"))
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(TEXTS, outputs=ALL)
    assert_columns_equal(pq.read_table(tmp_path / "uninterrupted"), expected)

    out = tmp_path / "resumed"
    real_write = files_module._write_part
    calls: list[int] = []

    def write_then_die(output: Path, index: int, table: pa.Table, metadata: dict[str, Any]) -> Path:
        calls.append(index)
        if len(calls) == 2:
            (output / f".part-{index:05d}.parquet.999.tmp").write_bytes(b"PAR1 half a part")
            raise KilledError
        return real_write(output, index, table, metadata)

    monkeypatch.setattr(files_module, "_write_part", write_then_die)
    with pytest.raises(KilledError):
        embed_file(corpus, out, **options)
    monkeypatch.setattr(files_module, "_write_part", real_write)
    manifest = read_manifest(out)
    assert manifest is not None
    assert (sorted(manifest["parts"]), manifest["settings"]["outputs"]) == (
        ["part-00000.parquet"],
        ["dense", "sparse", "colbert"],
    )

    with pytest.raises(ValueError, match=r"outputs: 'dense,sparse,colbert' then, 'dense,sparse' now"):
        embed_file(corpus, out, **(options | {"outputs": ["sparse", "dense"]}))
    with pytest.raises(ValueError, match=r"outputs: 'dense,sparse,colbert' then, 'dense' now"):
        embed_file(corpus, out, **(options | {"outputs": "dense"}))

    resumed = embed_file(corpus, out, **(options | {"outputs": ["colbert", "dense", "sparse"]}))  # any order
    assert (resumed.parts_written, resumed.parts_skipped) == (2, 1)
    assert not list(out.glob(".*"))
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "uninterrupted"))
    assert read_manifest(out) == read_manifest(tmp_path / "uninterrupted")


def test_sparse_only_parts_and_a_dense_folder_refuses_m3_outputs(
    corpus: Path, tmp_path: Path, tiny_m3_path: str
) -> None:
    result = embed_file(corpus, tmp_path / "sparse", model=tiny_m3_path, device="cpu", outputs="sparse")
    table = pq.read_table(tmp_path / "sparse")
    assert table.column_names == ["id", "sparse_indices", "sparse_values"]
    assert result.dimension is None
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(TEXTS, outputs="sparse")
    assert_columns_equal(table, expected)
    metadata = json.loads(pq.read_schema(tmp_path / "sparse" / "part-00000.parquet").metadata[b"bge_integrations"])
    assert metadata["embedder"]["outputs"] == ["sparse"]

    embed_file(corpus, tmp_path / "dense", model=tiny_m3_path, device="cpu")
    manifest = read_manifest(tmp_path / "dense")
    assert manifest is not None
    assert "outputs" not in manifest["settings"]  # a dense run's manifest is as it always was
    assert pq.read_table(tmp_path / "dense").column_names == ["id", "embedding"]
    with pytest.raises(ValueError, match=r"outputs: 'dense' then, 'dense,colbert' now"):
        embed_file(corpus, tmp_path / "dense", model=tiny_m3_path, device="cpu", outputs="dense,colbert")


def test_a_local_model_without_the_head_is_refused_before_anything_is_written(
    corpus: Path, tmp_path: Path, tiny_m3_path: str
) -> None:
    folder = Path(shutil.copytree(tiny_m3_path, tmp_path / "no-sparse"))
    (folder / "sparse_linear.pt").unlink()

    with pytest.raises(MissingHeadError, match=r"no-sparse' has no sparse_linear.pt, so no sparse output"):
        embed_file(corpus, tmp_path / "out", model=str(folder), outputs="colbert,sparse")
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_m3_outputs_on_ray_actors_equal_the_local_engine(corpus: Path, tmp_path: Path, tiny_m3_path: str) -> None:
    import ray
    import ray.data

    from bge_integrations.ray import RayEngine, embed_dataset

    options: dict[str, Any] = {"model": tiny_m3_path, "part_size": 4, "device": "cpu", "outputs": ALL}
    embed_file(corpus, tmp_path / "local", **options)
    on_ray = embed_file(corpus, tmp_path / "ray", engine=RayEngine(num_actors=1), **options)

    assert on_ray.parts_written == 3
    local_table, ray_table = pq.read_table(tmp_path / "local"), pq.read_table(tmp_path / "ray")
    assert ray_table.schema.equals(local_table.schema)
    assert read_manifest(tmp_path / "ray") == read_manifest(tmp_path / "local")
    expected = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(TEXTS, outputs=ALL)
    assert_columns_equal(ray_table, expected)

    ds = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS[:5])])
    vectors = embed_dataset(ds, model=tiny_m3_path, outputs="sparse,colbert", rows_per_call=5)
    table = pa.concat_tables(ray.get(vectors.to_arrow_refs())).sort_by("id")
    assert table.column_names == ["id", "text", "sparse_indices", "sparse_values", "colbert"]
    core = BGEM3Embedder(tiny_m3_path, device="cpu")
    assert_columns_equal(table, core.encode_documents(TEXTS[:5], outputs="sparse,colbert"))
