"""bge_integrations.bulk.files: embed_file on the local engine (Ray's is in test_ray_engine.py)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.bulk import BadRow, BadRowsError, BatchJob, EmbedBatch, LocalEngine, embed_file, read_manifest
from bge_integrations.bulk import files as files_module
from bge_integrations.core.loading import REGISTRY
from tests.tiny_models import CORPUS

TEXTS = [f"{CORPUS[i % len(CORPUS)]} #{i}" for i in range(23)]
IDS = [f"doc-{i}" for i in range(23)]


def write_jsonl(path: Path, records: list[dict[str, Any]], *, blank_lines: bool = False) -> Path:
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    text = ("\n\n" if blank_lines else "\n").join(lines) + "\n"
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", [{"id": i, "text": t} for i, t in zip(IDS, TEXTS, strict=True)])


def vectors(folder: Path) -> np.ndarray:
    return np.array(pq.read_table(folder).column("embedding").to_pylist(), dtype=np.float32)


def test_parts_hold_ids_and_vectors_equal_to_the_single_process_embedder(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    out = tmp_path / "vectors"
    result = embed_file(corpus, out, model=tiny_embedder_path, part_size=10, device="cpu")

    assert sorted(p.name for p in out.iterdir()) == [
        "_manifest.json",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    assert (result.rows, result.parts, result.parts_written, result.parts_skipped) == (23, 3, 3, 0)
    assert result.dimension == 32
    assert result.bad_rows == []
    table = pq.read_table(out)
    assert table.column_names == ["id", "embedding"]
    assert table.schema.field("embedding").type.list_size == 32
    assert table.column("id").to_pylist() == IDS
    assert [pq.ParquetFile(out / f"part-0000{i}.parquet").metadata.num_rows for i in range(3)] == [10, 10, 3]
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)
    assert np.abs(vectors(out) - np.array(expected)).max() <= 1e-5


def test_model_and_settings_are_in_each_parts_metadata_and_the_manifest(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    out = tmp_path / "vectors"
    embed_file(corpus, out, model=tiny_embedder_path, part_size=10, role="query", device="cpu", max_length=64)

    metadata = json.loads(pq.read_schema(out / "part-00001.parquet").metadata[b"bge_integrations"])
    assert metadata["settings"]["model"] == tiny_embedder_path
    assert metadata["settings"]["role"] == "query"
    assert metadata["settings"]["embedder"] == {"max_length": 64}  # device changes no vector: not recorded
    assert metadata["embedder"]["query_instruction"].startswith("Represent this sentence")
    assert metadata["embedder"]["max_length"] == 64
    assert metadata["embedder"]["device"] == "cpu"
    assert (metadata["part"], metadata["first_row"], metadata["rows"]) == (1, 10, 10)
    manifest = read_manifest(out)
    assert manifest is not None
    assert manifest["settings"] == metadata["settings"]
    assert manifest["complete"] is True
    assert manifest["input"]["rows"] == 23
    assert manifest["parts"]["part-00001.parquet"] == {"rows": 10, "first_row": 10}


def test_queries_get_the_instruction(corpus: Path, tmp_path: Path, tiny_embedder_path: str) -> None:
    embed_file(corpus, tmp_path / "q", model=tiny_embedder_path, role="query", device="cpu")

    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_queries(TEXTS)
    assert np.abs(vectors(tmp_path / "q") - np.array(expected)).max() <= 1e-5


def test_gzip_jsonl_with_blank_lines_and_parquet_inputs_give_the_same_vectors(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    records = [{"key": i, "body": t, "extra": 1} for i, t in enumerate(TEXTS)]
    gz = write_jsonl(tmp_path / "corpus.jsonl.gz", records, blank_lines=True)
    parquet = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"key": list(range(23)), "body": TEXTS}), parquet, row_group_size=7)
    options: dict[str, Any] = {"model": tiny_embedder_path, "id_field": "key", "text_field": "body", "device": "cpu"}

    embed_file(gz, tmp_path / "from-gz", part_size=5, **options)
    embed_file(parquet, tmp_path / "from-parquet", part_size=5, **options)
    embed_file(corpus, tmp_path / "reference", part_size=5, model=tiny_embedder_path, device="cpu")

    for name in ("from-gz", "from-parquet"):
        table = pq.read_table(tmp_path / name)
        assert table.column("id").to_pylist() == list(range(23))  # integer ids stay integers
        assert np.array_equal(vectors(tmp_path / name), vectors(tmp_path / "reference"))


# --- resume ---------------------------------------------------------------------------------------


class KilledError(Exception):
    """Stands for the process being killed mid-run."""


def test_rerun_after_an_interruption_skips_finished_parts_and_equals_an_uninterrupted_run(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 4, "device": "cpu"}
    embed_file(corpus, tmp_path / "uninterrupted", **options)

    out = tmp_path / "resumed"
    real_write = files_module._write_part
    calls: list[int] = []

    def write_then_die(output: Path, index: int, table: pa.Table, metadata: dict[str, Any]) -> Path:
        calls.append(index)
        if len(calls) == 3:  # killed while writing the third part: a half-written temporary file stays
            (output / f".part-{index:05d}.parquet.999.tmp").write_bytes(b"PAR1 half a part")
            raise KilledError
        return real_write(output, index, table, metadata)

    monkeypatch.setattr(files_module, "_write_part", write_then_die)
    with pytest.raises(KilledError):
        embed_file(corpus, out, **options)
    monkeypatch.setattr(files_module, "_write_part", real_write)

    manifest = read_manifest(out)
    assert manifest is not None
    assert sorted(manifest["parts"]) == ["part-00000.parquet", "part-00001.parquet"]
    assert manifest["complete"] is False
    finished = {name: (out / name).stat().st_mtime_ns for name in manifest["parts"]}

    embedded: list[int] = []
    real_call = EmbedBatch.__call__

    def counting_call(self: EmbedBatch, table: pa.Table) -> pa.Table:
        embedded.append(table.num_rows)
        return real_call(self, table)

    monkeypatch.setattr(EmbedBatch, "__call__", counting_call)
    result = embed_file(corpus, out, **options)

    assert (result.parts, result.parts_written, result.parts_skipped) == (6, 4, 2)
    assert embedded == [4, 4, 4, 3]  # rows 8..22 only: the two finished parts were not recomputed
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished
    assert not list(out.glob(".*"))  # the half-written file is gone
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "uninterrupted"))
    assert read_manifest(out) == read_manifest(tmp_path / "uninterrupted")


# --- engines: bulk takes an Engine object -------------------------------------------------------------

K = TypeVar("K")

MANIFEST_KEYS = ["complete", "dimension", "format", "input", "parts", "settings"]
RECORDED_SETTINGS = [
    "embedder",
    "id_field",
    "model",
    "model_fingerprint",
    "on_bad_rows",
    "part_size",
    "role",
    "text_field",
]
"""What the manifest (format 1) records: no engine and no actor setting, so a run resumes on any engine."""


class RecordingEngine:
    """An engine of our own: LocalEngine's results, in reverse order, each key recorded; may die after some."""

    def __init__(self, *, die_after: int | None = None) -> None:
        self.keys: list[Any] = []
        self.die_after = die_after

    def map_tables(self, job: BatchJob, tables: Iterable[tuple[K, pa.Table]]) -> Iterator[tuple[K, pa.Table]]:
        results = list(LocalEngine().map_tables(job, tables))
        for key, table in reversed(results):  # an engine may answer in any order
            if self.die_after is not None and len(self.keys) == self.die_after:
                raise KilledError
            self.keys.append(key)
            yield key, table


def test_any_engine_object_runs_the_parts_and_the_manifest_records_no_engine(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 10, "device": "cpu"}
    engine = RecordingEngine()

    embed_file(corpus, tmp_path / "default", **options)
    result = embed_file(corpus, tmp_path / "mine", engine=engine, **options)

    assert engine.keys == [2, 1, 0]
    assert result.parts_written == 3
    assert pq.read_table(tmp_path / "mine").equals(pq.read_table(tmp_path / "default"))
    manifest = read_manifest(tmp_path / "mine")
    assert manifest == read_manifest(tmp_path / "default")
    assert manifest is not None
    assert sorted(manifest) == MANIFEST_KEYS
    assert sorted(manifest["settings"]) == RECORDED_SETTINGS


def test_a_run_interrupted_on_one_engine_resumes_on_another(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 10, "device": "cpu"}
    out = tmp_path / "vectors"

    with pytest.raises(KilledError):
        embed_file(corpus, out, engine=RecordingEngine(die_after=1), **options)
    manifest = read_manifest(out)
    assert manifest is not None
    assert (sorted(manifest["parts"]), manifest["complete"]) == (["part-00002.parquet"], False)

    resumed = embed_file(corpus, out, engine=LocalEngine(torch_threads=1), **options)
    assert (resumed.parts_written, resumed.parts_skipped) == (2, 1)
    with pytest.warns(FutureWarning, match=r"engine='local' is deprecated: leave engine out"):
        again = embed_file(corpus, out, engine="local", **options)  # type: ignore[arg-type]
    assert (again.parts_written, again.parts_skipped) == (0, 3)
    embed_file(corpus, tmp_path / "uninterrupted", **options)
    assert pq.read_table(out).equals(pq.read_table(tmp_path / "uninterrupted"))
    assert read_manifest(out) == read_manifest(tmp_path / "uninterrupted")


RAY_ENGINE = "(from bge_integrations.ray import RayEngine)"


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"engine": "ray", "num_actors": 4, "num_gpus_per_actor": 1},
            ValueError,
            "engine='ray' is no longer accepted, since bge_integrations.bulk does not import Ray: "
            f"pass engine=RayEngine(num_actors=4, num_gpus_per_actor=1) {RAY_ENGINE}",
        ),
        ({"engine": "ray"}, ValueError, f"pass engine=RayEngine() {RAY_ENGINE}"),
        (
            {"num_actors": 2, "num_cpus_per_actor": 2},
            ValueError,
            "num_actors=2, num_cpus_per_actor=2: Ray actor settings are RayEngine arguments now: "
            f"pass engine=RayEngine(num_actors=2, num_cpus_per_actor=2) {RAY_ENGINE}",
        ),
        (
            {"engine": RecordingEngine(), "num_gpus_per_actor": 1},
            ValueError,
            "num_gpus_per_actor=1: Ray actor settings are RayEngine arguments now",
        ),
        (
            {"engine": "spark"},
            ValueError,
            "engine must be an Engine object (LocalEngine(), RayEngine(...)) or None, got 'spark'",
        ),
        (
            {"engine": LocalEngine},
            TypeError,
            "engine must be an Engine object, got the class LocalEngine: pass one, e.g. LocalEngine()",
        ),
        ({"engine": 4}, TypeError, "engine must be an Engine object (with a map_tables method) or None, got int"),
        ({"engine": object()}, TypeError, "(with a map_tables method) or None, got object"),
    ],
)
def test_former_engine_spellings_say_what_to_pass_before_reading(
    tmp_path: Path, tiny_embedder_path: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        embed_file(tmp_path / "not-read.jsonl", tmp_path / "out", model=tiny_embedder_path, **arguments)
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_finished_run_is_not_recomputed(corpus: Path, tmp_path: Path, tiny_embedder_path: str) -> None:
    out = tmp_path / "vectors"
    embed_file(corpus, out, model=tiny_embedder_path, part_size=10, device="cpu")
    REGISTRY.load_count = 0

    again = embed_file(corpus, out, model=tiny_embedder_path, part_size=10, device="cpu", batch_size=3)

    assert (again.parts_written, again.parts_skipped) == (0, 3)  # batch_size changes no vector: resumable
    assert REGISTRY.load_count == 0


def test_a_missing_or_truncated_part_is_recomputed(corpus: Path, tmp_path: Path, tiny_embedder_path: str) -> None:
    out = tmp_path / "vectors"
    embed_file(corpus, out, model=tiny_embedder_path, part_size=10, device="cpu")
    before = pq.read_table(out)
    (out / "part-00000.parquet").unlink()
    (out / "part-00002.parquet").write_bytes(b"not parquet")

    again = embed_file(corpus, out, model=tiny_embedder_path, part_size=10, device="cpu")

    assert (again.parts_written, again.parts_skipped) == (2, 1)
    assert pq.read_table(out).equals(before)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"role": "query"}, "role: 'document' then, 'query' now"),
        ({"part_size": 5}, "part_size: 4 then, 5 now"),
        ({"max_length": 16}, "embedder: {} then, {'max_length': 16} now"),
        ({"text_field": "body"}, "text_field: 'text' then, 'body' now"),
    ],
)
def test_resume_with_other_settings_is_refused_naming_the_difference(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, change: dict[str, Any], named: str
) -> None:
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 4, "device": "cpu"}
    embed_file(corpus, tmp_path / "out", **options)

    with pytest.raises(ValueError, match="holds a run with other settings") as caught:
        embed_file(corpus, tmp_path / "out", **(options | change))
    assert named in str(caught.value)


def test_a_manifest_that_spelled_out_the_default_backend_still_resumes(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 4, "device": "cpu"}
    embed_file(corpus, tmp_path / "out", **options)
    manifest_path = tmp_path / "out" / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["settings"]["embedder"] = {"backend": "torch"}  # as written before defaults went unrecorded
    manifest_path.write_text(json.dumps(manifest))

    assert embed_file(corpus, tmp_path / "out", **options).parts_written == 0
    assert embed_file(corpus, tmp_path / "out", **options, backend="torch").parts_written == 0


def test_a_job_the_engine_cannot_run_fails_before_anything_is_written(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str
) -> None:
    pytest.importorskip("ray")
    from bge_integrations.ray import RayEngine

    engine = RayEngine(num_gpus_per_actor=1)  # its actors run on "cuda": the ONNX graph cannot
    with pytest.raises(ValueError, match=r"backend='onnx' runs on the CPU only, got device='cuda'"):
        embed_file(corpus, tmp_path / "out", model=tiny_embedder_path, engine=engine, backend="onnx")
    assert not (tmp_path / "out").exists()  # no manifest recording the setting: the fixed command runs


def test_resume_on_a_changed_input_is_refused(corpus: Path, tmp_path: Path, tiny_embedder_path: str) -> None:
    embed_file(corpus, tmp_path / "out", model=tiny_embedder_path, part_size=4, device="cpu")
    write_jsonl(corpus, [{"id": "x", "text": "another corpus"}])

    with pytest.raises(ValueError, match=r"corpus.jsonl' is not the file that .* was started on \(SHA-256"):
        embed_file(corpus, tmp_path / "out", model=tiny_embedder_path, part_size=4, device="cpu")


def test_a_folder_of_other_files_is_not_written_into(corpus: Path, tmp_path: Path, tiny_embedder_path: str) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")

    with pytest.raises(ValueError, match=r"is not empty and holds no _manifest\.json"):
        embed_file(corpus, tmp_path / "busy", model=tiny_embedder_path, device="cpu")
    with pytest.raises(ValueError, match="output must be a folder"):
        embed_file(corpus, tmp_path / "busy" / "notes.txt", model=tiny_embedder_path, device="cpu")


# --- bad rows and malformed input -------------------------------------------------------------


BAD_RECORDS = [
    {"id": "a", "text": "fine"},
    {"id": "b"},
    {"id": "c", "text": None},
    {"id": "d", "text": 42},
    {"id": "e", "text": "also fine"},
]


def test_bad_rows_stop_the_run_before_any_model_loads_naming_ids_and_lines(
    tmp_path: Path, tiny_embedder_path: str
) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", BAD_RECORDS)

    with pytest.raises(BadRowsError) as caught:
        embed_file(source, tmp_path / "out", model=tiny_embedder_path, device="cpu")

    assert caught.value.rows == [
        BadRow(id="b", row=1, reason="no 'text' field", line=2),
        BadRow(id="c", row=2, reason="text is None", line=3),
        BadRow(id="d", row=3, reason="text is int: 42", line=4),
    ]
    assert str(caught.value).startswith(
        "3 bad rows in bad.jsonl: id 'b' (row 1, line 2): no 'text' field; "
        "id 'c' (row 2, line 3): text is None; id 'd' (row 3, line 4): text is int: 42"
    )
    assert REGISTRY.load_count == 0
    assert not (tmp_path / "out").exists()


def test_report_keeps_bad_rows_with_a_null_vector_and_the_reason(tmp_path: Path, tiny_embedder_path: str) -> None:
    source = write_jsonl(tmp_path / "bad.jsonl", BAD_RECORDS)
    out = tmp_path / "out"

    result = embed_file(source, out, model=tiny_embedder_path, on_bad_rows="report", part_size=2, device="cpu")

    table = pq.read_table(out)
    assert table.column_names == ["id", "embedding", "error"]
    assert table.column("id").to_pylist() == ["a", "b", "c", "d", "e"]
    assert table.column("error").to_pylist() == [None, "no 'text' field", "text is None", "text is int: 42", None]
    rows = table.column("embedding").to_pylist()
    assert rows[1:4] == [None, None, None]  # part 1 (rows b, c) has no text to embed at all
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(["fine", "also fine"])
    assert np.abs(np.array([rows[0], rows[4]]) - np.array(expected)).max() <= 1e-5
    assert [row.id for row in result.bad_rows] == ["b", "c", "d"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": 1, "text": "x"}', "{not json"], r"bad.jsonl, line 2 is not valid JSON"),
        (['["a", "list"]'], r"bad.jsonl, line 1 is a JSON list, not an object"),
        (['{"text": "no id"}'], r"bad.jsonl, line 1 has no 'id' field \(the id field; set id_field to change it\)"),
        (['{"id": 1.5, "text": "x"}'], r"bad.jsonl, line 1: the id must be a string or an integer, got float: 1.5"),
        (['{"id": 1, "text": "x"}', '{"id": "2", "text": "y"}'], r"line 2: the id '2' is a str, but the ids before"),
    ],
)
def test_malformed_input_stops_the_run_naming_the_line(
    tmp_path: Path, tiny_embedder_path: str, lines: list[str], message: str
) -> None:
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        embed_file(source, tmp_path / "out", model=tiny_embedder_path, device="cpu")


def test_input_format_and_columns_are_checked(tmp_path: Path, tiny_embedder_path: str) -> None:
    (tmp_path / "corpus.csv").write_text("id,text\n1,x\n")
    with pytest.raises(ValueError, match=r"cannot tell the format of .*corpus.csv"):
        embed_file(tmp_path / "corpus.csv", tmp_path / "out", model=tiny_embedder_path)
    with pytest.raises(FileNotFoundError, match="input file not found"):
        embed_file(tmp_path / "missing.jsonl", tmp_path / "out", model=tiny_embedder_path)
    pq.write_table(pa.table({"id": [1], "body": ["x"]}), tmp_path / "corpus.parquet")
    with pytest.raises(ValueError, match=r"text_field='text' is not a column of corpus.parquet; its columns are"):
        embed_file(tmp_path / "corpus.parquet", tmp_path / "out", model=tiny_embedder_path)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"part_size": 0}, "part_size must be an int > 0, got 0"),
        ({"role": "doc"}, "role must be one of ('document', 'query'), got 'doc'"),
        ({"on_bad_rows": "skip"}, "on_bad_rows must be one of ('raise', 'report'), got 'skip'"),
        ({"poolng": "cls"}, "poolng"),
    ],
)
def test_arguments_are_checked_before_reading(
    tmp_path: Path, tiny_embedder_path: str, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises((ValueError, TypeError)) as caught:
        embed_file(tmp_path / "not-read.jsonl", tmp_path / "out", model=tiny_embedder_path, **arguments)
    assert message in str(caught.value)


def test_progress_goes_to_stderr_only_when_asked(
    corpus: Path, tmp_path: Path, tiny_embedder_path: str, capfd: pytest.CaptureFixture[str]
) -> None:
    embed_file(corpus, tmp_path / "quiet", model=tiny_embedder_path, part_size=10, device="cpu")
    quiet = capfd.readouterr()
    embed_file(corpus, tmp_path / "loud", model=tiny_embedder_path, part_size=10, device="cpu", progress=True)
    loud = capfd.readouterr()

    assert "Embedding" not in quiet.err
    assert "Embedding" in loud.err
    assert "/23 [" in loud.err  # the total is known up front (from the first pass)
    assert loud.out == quiet.out == ""
