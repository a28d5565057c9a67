"""bge_integrations.ray.datasets on a local Ray (2 CPUs), offline, with the tiny models.

Each dataset execution starts its actors (a few seconds: torch and the model load in each), so
the tests run few executions and check several things on each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import ray
import ray.data

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.ray import embed_dataset, rerank_dataset
from tests.tiny_models import CORPUS

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

TEXTS = [f"{CORPUS[i % len(CORPUS)]} #{i}" for i in range(48)]


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row["id"])


def test_documents_on_two_actors_equal_the_single_process_embedder(tiny_embedder_path: str) -> None:
    source = ray.data.from_items([{"id": i, "text": t} for i, t in enumerate(TEXTS)], override_num_blocks=6)

    out = embed_dataset(source, model=tiny_embedder_path, num_actors=2, rows_per_call=5, batch_size=4)
    rows = by_id(out.take_all())

    assert [row["id"] for row in rows] == list(range(len(TEXTS)))  # every row, once
    assert [row["text"] for row in rows] == TEXTS  # input columns kept
    expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)
    assert np.abs(np.array([row["embedding"] for row in rows]) - np.array(expected)).max() <= 1e-5


def test_queries_get_the_instruction_and_bad_rows_are_reported_with_their_ids(tiny_embedder_path: str) -> None:
    items: list[dict[str, Any]] = [{"id": f"q{i}", "text": t} for i, t in enumerate(TEXTS[:12])]
    items[3]["text"] = None
    items[7]["text"] = 7  # mixed types: Ray keeps the column as Python objects (one block)
    del items[9]["text"]
    source = ray.data.from_items(items, override_num_blocks=1)

    # Two stages in one execution (one actor each): documents, then queries, on the same rows.
    documents = embed_dataset(source, model=tiny_embedder_path, on_bad_rows="report", output_column="doc")
    both = embed_dataset(
        documents, model=tiny_embedder_path, role="query", on_bad_rows="report", error_column="query_error"
    )
    rows = by_id(both.take_all())

    assert [row["id"] for row in rows] == sorted(item["id"] for item in items)
    bad = {row["id"]: row["error"] for row in rows if row["error"] is not None}
    assert bad == {"q3": "text is None", "q7": "text is int: 7", "q9": "text is None"}
    assert all(row["query_error"] == row["error"] for row in rows)
    assert all(row["doc"] is None and row["embedding"] is None for row in rows if row["id"] in bad)
    good = [row for row in rows if row["id"] not in bad]
    texts = [row["text"] for row in good]
    reference = BGEEmbedder(tiny_embedder_path, device="cpu")
    queries = np.array([row["embedding"] for row in good])
    assert np.abs(queries - np.array(reference.embed_queries(texts))).max() <= 1e-5
    assert np.abs(np.array([row["doc"] for row in good]) - np.array(reference.embed_documents(texts))).max() <= 1e-5


def test_bad_rows_fail_the_execution_naming_their_ids(tiny_embedder_path: str) -> None:
    items: list[dict[str, Any]] = [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS[:6])]
    items[2]["text"] = None
    items[4]["text"] = 4.5

    out = embed_dataset(ray.data.from_items(items, override_num_blocks=1), model=tiny_embedder_path)

    with pytest.raises(Exception, match=r"BadRowsError") as caught:
        out.take_all()
    message = str(caught.value)
    assert "2 bad rows in a batch of 6 rows" in message
    assert "id 'd2' (row 2): text is None; id 'd4' (row 4): text is float: 4.5" in message


def test_rerank_scores_equal_the_single_process_reranker_and_report_bad_pairs(tiny_reranker_path: str) -> None:
    queries = ["where do pandas live?", "what is the capital of France?"]
    items: list[dict[str, Any]] = [
        {"id": i, "query": queries[i % 2], "passage": text} for i, text in enumerate(TEXTS[:10])
    ]
    items[5]["passage"] = None
    source = ray.data.from_items(items, override_num_blocks=1)

    out = rerank_dataset(source, model=tiny_reranker_path, on_bad_rows="report", rows_per_call=4)
    rows = by_id(out.take_all())

    assert [row["error"] for row in rows] == [None] * 5 + ["passage is None"] + [None] * 4
    assert rows[5]["score"] is None
    reference = BGEReranker(tiny_reranker_path, device="cpu")
    good = [row for row in rows if row["error"] is None]
    expected = [reference.score(row["query"], [row["passage"]])[0] for row in good]
    assert np.abs(np.array([row["score"] for row in good]) - np.array(expected)).max() <= 1e-5


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"role": "passage"}, ValueError, "role must be one of ('document', 'query'), got 'passage'"),
        ({"num_actors": 0}, ValueError, "num_actors must be an int > 0, got 0"),
        ({"num_actors": (3, 1)}, ValueError, "num_actors=(min, max) needs min <= max, got (3, 1)"),
        ({"rows_per_call": 0}, ValueError, "rows_per_call must be an int > 0, got 0"),
        ({"num_gpus_per_actor": -1}, ValueError, "num_gpus_per_actor must be a number >= 0, got -1"),
        ({"max_lenght": 64}, TypeError, "max_lenght"),
    ],
)
def test_arguments_are_checked_before_any_actor_starts(
    tiny_embedder_path: str, arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    source = ray.data.from_items([{"text": "x"}])
    with pytest.raises(error) as caught:
        embed_dataset(source, model=tiny_embedder_path, **arguments)
    assert message in str(caught.value)


def test_a_list_is_not_a_dataset() -> None:
    with pytest.raises(TypeError, match=r"ds must be a ray\.data\.Dataset, got list"):
        rerank_dataset([{"query": "q", "passage": "p"}], model="m")  # type: ignore[arg-type]


def test_actor_pools_and_resources_reach_the_plan_and_nothing_runs_yet(tiny_embedder_path: str) -> None:
    source = ray.data.from_items([{"text": "x"}])

    cpu = embed_dataset(source, model=tiny_embedder_path, num_actors=3, num_cpus_per_actor=2, rows_per_call=64)
    gpu = rerank_dataset(source, model=tiny_embedder_path, num_actors=(1, 4), num_gpus_per_actor=1, use_fp16=True)

    # Ray's logical plan (internal, read only): 3 CPU actors, or 1..4 GPU actors; neither can
    # start on this 2-CPU, GPU-less instance, so building the plan ran nothing.
    cpu_op, gpu_op = cpu._logical_plan.dag, gpu._logical_plan.dag
    assert (cpu_op.compute.min_size, cpu_op.compute.max_size) == (3, 3)
    assert cpu_op.ray_remote_args == {"num_cpus": 2}
    assert cpu_op.batch_size == 64
    assert cpu_op.batch_format == "pyarrow"
    assert cpu_op.fn_constructor_kwargs["torch_threads"] == 2
    assert cpu_op.fn_constructor_kwargs["settings"] == {"batch_size": 32, "device": "cpu"}
    assert (gpu_op.compute.min_size, gpu_op.compute.max_size) == (1, 4)
    assert gpu_op.ray_remote_args == {"num_gpus": 1}
    assert "torch_threads" not in gpu_op.fn_constructor_kwargs
    assert gpu_op.fn_constructor_kwargs["settings"] == {"batch_size": 32, "use_fp16": True, "device": "cuda"}
