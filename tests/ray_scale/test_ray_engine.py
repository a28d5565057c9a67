"""bge_integrations.ray.engine: embed_file on Ray actors equals embed_file in this process."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from bge_integrations.bulk import BatchJob, EmbedBatch, embed_file, read_manifest
from bge_integrations.ray import RayEngine
from bge_integrations.ray.engine import actor_job
from tests.tiny_models import CORPUS


@pytest.mark.ray
@pytest.mark.usefixtures("ray_cluster")
def test_embed_file_on_two_ray_actors_equals_the_local_engine(tmp_path: Path, tiny_embedder_path: str) -> None:
    source = tmp_path / "corpus.jsonl"
    records = [{"id": i, "text": f"{CORPUS[i % len(CORPUS)]} #{i}"} for i in range(40)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    options: dict[str, Any] = {"model": tiny_embedder_path, "part_size": 6, "device": "cpu"}

    local = embed_file(source, tmp_path / "local", **options)
    on_ray = embed_file(source, tmp_path / "ray", engine=RayEngine(num_actors=2), **options)

    assert (on_ray.parts, on_ray.parts_written) == (local.parts, local.parts_written) == (7, 7)
    ray_table, local_table = pq.read_table(tmp_path / "ray"), pq.read_table(tmp_path / "local")
    assert ray_table.schema.equals(local_table.schema)
    assert ray_table.column("id").equals(local_table.column("id"))
    difference = np.array(ray_table.column("embedding").to_pylist()) - np.array(
        local_table.column("embedding").to_pylist()
    )
    assert np.abs(difference).max() <= 1e-5  # one torch thread per actor here, more in this process: not bitwise
    assert read_manifest(tmp_path / "ray") == read_manifest(tmp_path / "local")  # the engine is not recorded
    # The engine is not a setting: the local run's folder resumes on Ray (nothing left to do).
    again = embed_file(source, tmp_path / "local", engine=RayEngine(num_actors=2), **options)
    assert again.parts_skipped == 7


def test_actors_default_to_the_cpu_with_one_thread_per_cpu() -> None:
    job = BatchJob(EmbedBatch, "m", {"settings": {"batch_size": 8}})

    cpu_job, cpu = actor_job(job, gpus=0, cpus=None)
    assert cpu == {"num_cpus": 1}
    assert cpu_job.arguments == {"settings": {"batch_size": 8, "device": "cpu"}, "torch_threads": 1}
    two_job, two = actor_job(job, gpus=0, cpus=2)
    assert (two, two_job.arguments["torch_threads"]) == ({"num_cpus": 2}, 2)
    gpu_job, gpu = actor_job(job, gpus=0.5, cpus=4)
    assert gpu == {"num_gpus": 0.5, "num_cpus": 4}
    assert gpu_job.arguments == {"settings": {"batch_size": 8, "device": "cuda"}}
    mine, _ = actor_job(BatchJob(EmbedBatch, "m", {"settings": {"device": "cuda:1"}}), gpus=0, cpus=None)
    assert mine.arguments["settings"]["device"] == "cuda:1"
    assert job.arguments == {"settings": {"batch_size": 8}}  # the caller's job is left as it was


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_actors": 0}, "num_actors must be an int > 0, got 0"),
        ({"num_gpus_per_actor": True}, "num_gpus_per_actor must be a number >= 0, got True"),
        ({"num_cpus_per_actor": 0}, "num_cpus_per_actor must be a number > 0 or None, got 0"),
        ({"tables_per_actor": 0}, "tables_per_actor must be an int > 0, got 0"),
    ],
)
def test_ray_engine_checks_its_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        RayEngine(**arguments)
