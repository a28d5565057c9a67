"""bge_integrations.bulk.engines: jobs and the local engine."""

from __future__ import annotations

import pyarrow as pa
import pytest
import torch

from bge_integrations.bulk import BatchJob, EmbedBatch, LocalEngine, RerankBatch
from bge_integrations.core.loading import REGISTRY


def test_local_engine_keeps_keys_and_order_and_loads_once(tiny_embedder_path: str) -> None:
    job = BatchJob(EmbedBatch, tiny_embedder_path, {"settings": {"device": "cpu"}})
    tables = [(key, pa.table({"text": [f"text {key}", "other"]})) for key in ("b", "a", "c")]

    results = list(LocalEngine().map_tables(job, tables))

    assert [key for key, _ in results] == ["b", "a", "c"]
    direct = job.build()
    for (_, table), (_, result) in zip(tables, results, strict=True):
        assert result.equals(direct(table))
    assert REGISTRY.load_count == 1  # the engine's model and direct's are the same shared one


def test_local_engine_loads_nothing_without_tables(tiny_reranker_path: str) -> None:
    job = BatchJob(RerankBatch, tiny_reranker_path, {"settings": {"device": "cpu"}})

    assert list(LocalEngine().map_tables(job, [])) == []
    assert REGISTRY.load_count == 0


def test_local_engine_checks_the_job_before_loading(tiny_embedder_path: str) -> None:
    job = BatchJob(EmbedBatch, tiny_embedder_path, {"role": "passage"})

    with pytest.raises(ValueError, match="role must be one of"):
        list(LocalEngine().map_tables(job, [(0, pa.table({"text": ["x"]}))]))
    assert REGISTRY.load_count == 0


def test_local_engine_sets_torch_threads(tiny_embedder_path: str) -> None:
    before = torch.get_num_threads()
    job = BatchJob(EmbedBatch, tiny_embedder_path, {"settings": {"device": "cpu"}})
    try:
        list(LocalEngine(torch_threads=1).map_tables(job, [(0, pa.table({"text": ["x"]}))]))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
