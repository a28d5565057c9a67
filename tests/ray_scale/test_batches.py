"""bge_integrations.bulk.batches: the batch functions every engine runs, in this process."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pyarrow as pa
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.bulk import BadRow, BadRowsError, EmbedBatch, RerankBatch
from bge_integrations.bulk.batches import MAX_LISTED, text_problem
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY
from tests.tiny_models import CORPUS

TEXTS = [f"{CORPUS[i % len(CORPUS)]} #{i}" for i in range(30)]


def _vectors(table: pa.Table, column: str = "embedding") -> list[list[float] | None]:
    values: list[list[float] | None] = table.column(column).to_pylist()
    return values


@pytest.fixture
def embed(tiny_embedder_path: str) -> EmbedBatch:
    return EmbedBatch(tiny_embedder_path, settings={"device": "cpu", "batch_size": 4})


# --- embedding ----------------------------------------------------------------------------------


def test_documents_equal_the_single_process_embedder(embed: EmbedBatch, tiny_embedder_path: str) -> None:
    table = pa.table({"id": list(range(len(TEXTS))), "text": TEXTS})
    out = embed(table)

    assert out.column_names == ["id", "text", "embedding"]
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 32)
    assert out.select(["id", "text"]).equals(table)
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)
    assert np.abs(np.array(_vectors(out)) - np.array(expected)).max() <= 1e-5


def test_queries_get_the_instruction_documents_do_not(tiny_embedder_path: str) -> None:
    queries = EmbedBatch(tiny_embedder_path, role="query", settings={"device": "cpu"})
    reference = BGEEmbedder(tiny_embedder_path, device="cpu")
    out = _vectors(queries(pa.table({"text": TEXTS[:3]})))

    assert np.abs(np.array(out) - np.array(reference.embed_queries(TEXTS[:3]))).max() <= 1e-5
    prefixed = reference.embed_documents([EN_QUERY_INSTRUCTION + text for text in TEXTS[:3]])
    assert np.abs(np.array(out) - np.array(prefixed)).max() <= 1e-5
    assert np.abs(np.array(out) - np.array(reference.embed_documents(TEXTS[:3]))).max() > 1e-3


def test_the_model_loads_once_in_init_and_serves_every_table(embed: EmbedBatch) -> None:
    assert REGISTRY.load_count == 1
    for start in range(0, 12, 4):
        embed(pa.table({"text": TEXTS[start : start + 4]}))
    assert REGISTRY.load_count == 1


def test_output_field_records_the_effective_settings(embed: EmbedBatch, tiny_embedder_path: str) -> None:
    field = embed(pa.table({"text": ["a"]})).schema.field("embedding")
    recorded = json.loads(field.metadata[b"bge_integrations"])

    assert recorded == json.loads(json.dumps(embed.settings(), default=str))
    assert recorded["model_name"] == tiny_embedder_path
    assert recorded["role"] == "document"
    assert recorded["pooling"] == "cls"


def test_an_empty_table_gets_an_empty_column_of_the_right_type(embed: EmbedBatch) -> None:
    out = embed(pa.table({"text": pa.array([], type=pa.string())}))

    assert out.num_rows == 0
    assert out.schema.field("embedding").type == pa.list_(pa.float32(), 32)


# --- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_raise_naming_ids_positions_and_reasons(tiny_embedder_path: str) -> None:
    embed = EmbedBatch(tiny_embedder_path, settings={"device": "cpu"})
    table = pa.table({"id": ["a", "b", "c", "d"], "text": pa.array(["fine", None, "fine", None], pa.string())})

    with pytest.raises(BadRowsError) as caught:
        embed(table)

    assert caught.value.rows == [
        BadRow(id="b", row=1, reason="text is None"),
        BadRow(id="d", row=3, reason="text is None"),
    ]
    assert str(caught.value).startswith(
        "2 bad rows in a batch of 4 rows: id 'b' (row 1): text is None; id 'd' (row 3): text is None"
    )
    assert "on_bad_rows='report'" in str(caught.value)


def test_report_keeps_every_row_with_a_null_vector_and_the_reason(tiny_embedder_path: str, embed: EmbedBatch) -> None:
    report = EmbedBatch(tiny_embedder_path, on_bad_rows="report", settings={"device": "cpu"})
    out = report(pa.table({"id": [10, 11, 12], "text": pa.array(["first", None, "third"], pa.string())}))

    assert out.column_names == ["id", "text", "embedding", "error"]
    assert out.column("error").to_pylist() == [None, "text is None", None]
    vectors = _vectors(out)
    assert vectors[1] is None
    good = np.array([vectors[0], vectors[2]])
    assert np.abs(good - np.array(embed.embedder.embed_documents(["first", "third"]))).max() <= 1e-5


def test_a_column_that_is_not_text_is_reported_row_by_row(tiny_embedder_path: str) -> None:
    report = EmbedBatch(tiny_embedder_path, on_bad_rows="report", id_column=None, settings={"device": "cpu"})
    out = report(pa.table({"text": pa.array([5, None], pa.int64())}))

    assert out.column("error").to_pylist() == ["text is int: 5", "text is None"]
    assert _vectors(out) == [None, None]
    with pytest.raises(BadRowsError, match=r"^2 bad rows in a batch of 2 rows: no id \(row 0\): text is int: 5"):
        EmbedBatch(tiny_embedder_path, id_column=None, settings={"device": "cpu"})(pa.table({"text": [5, None]}))


def test_missing_text_column_is_an_error_naming_the_columns(embed: EmbedBatch) -> None:
    with pytest.raises(ValueError, match=r"text_column='text' is not a column of the data; its columns are \['body'\]"):
        embed(pa.table({"body": ["x"]}))


def test_an_existing_output_column_is_not_overwritten(embed: EmbedBatch) -> None:
    with pytest.raises(ValueError, match="already has a column named 'embedding'"):
        embed(pa.table({"text": ["x"], "embedding": [1]}))


def test_bad_rows_error_survives_pickling_with_its_rows() -> None:
    rows = [BadRow(id=i, row=i, reason="text is None") for i in range(MAX_LISTED + 3)]
    error = pickle.loads(pickle.dumps(BadRowsError(rows, where="in x.jsonl")))

    assert isinstance(error, BadRowsError)
    assert error.rows == rows
    assert str(error).startswith(f"{MAX_LISTED + 3} bad rows in x.jsonl: id 0 (row 0): text is None;")
    assert "; and 3 more" in str(error)


def test_text_problem_names_the_value() -> None:
    assert text_problem("") is None
    assert text_problem(None, name="passage") == "passage is None"
    assert text_problem(1.5) == "text is float: 1.5"
    assert text_problem(b"raw") == "text is bytes: b'raw'"


# --- checks without loading -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"role": "passage"}, ValueError, "role must be one of ('document', 'query'), got 'passage'"),
        ({"on_bad_rows": "skip"}, ValueError, "on_bad_rows must be one of ('raise', 'report'), got 'skip'"),
        ({"text_column": ""}, ValueError, "text_column must be a non-empty column name, got ''"),
        ({"torch_threads": 0}, ValueError, "torch_threads must be an int > 0 or None, got 0"),
        ({"settings": {"batch_size": 0}}, ValueError, "batch_size must be an int > 0, got 0"),
        ({"settings": {"batchsize": 8}}, TypeError, "batchsize"),
    ],
)
def test_check_validates_without_loading(
    tiny_embedder_path: str, arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        EmbedBatch.check(tiny_embedder_path, **arguments)
    EmbedBatch.check(tiny_embedder_path, role="query", settings={"device": "cpu"})
    assert REGISTRY.load_count == 0


# --- reranking ------------------------------------------------------------------------------------


def test_rerank_scores_equal_the_single_process_reranker(tiny_reranker_path: str) -> None:
    score = RerankBatch(tiny_reranker_path, settings={"device": "cpu"})
    queries = ["q one", "q two", "q one", "q two", "q one"]
    passages = TEXTS[:5]
    out = score(pa.table({"query": queries, "passage": passages}))

    reference = BGEReranker(tiny_reranker_path, device="cpu")
    expected = [reference.score(q, [p])[0] for q, p in zip(queries, passages, strict=True)]
    assert out.schema.field("score").type == pa.float64()
    assert np.abs(np.array(out.column("score").to_pylist()) - np.array(expected)).max() <= 1e-5
    assert json.loads(out.schema.field("score").metadata[b"bge_integrations"])["model_name"] == tiny_reranker_path


def test_rerank_reports_a_bad_query_or_passage(tiny_reranker_path: str) -> None:
    score = RerankBatch(tiny_reranker_path, on_bad_rows="report", settings={"device": "cpu"})
    table = pa.table(
        {
            "id": ["p1", "p2", "p3"],
            "query": pa.array(["q", None, "q"], pa.string()),
            "passage": pa.array(["fine", "fine", None], pa.string()),
        }
    )
    out = score(table)

    assert out.column("error").to_pylist() == [None, "query is None", "passage is None"]
    assert out.column("score").to_pylist()[1:] == [None, None]
    with pytest.raises(BadRowsError, match=r"id 'p2' \(row 1\): query is None; id 'p3' \(row 2\): passage is None"):
        RerankBatch(tiny_reranker_path, settings={"device": "cpu"})(table)
