"""Run the benchmarks and print Markdown tables (and write JSON).

Each workload runs every contestant in turn, round-robin, ``--repeats`` times, so that noise on
a shared machine falls on all of them alike; the tables show medians and ratios from this run.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.contestants import BATCH_SIZE, Embedder, Reranker, embedders, rerankers
from benchmarks.models import SPECS, model_path
from benchmarks.workloads import DEFAULT_DATA, Workload, load_workload

WORKLOADS = ("documents", "query", "async", "cache", "rerank", "rerank-async", "long")
OTHER_BENCHMARKS = """\
the other benchmarks (each: python -m benchmarks.NAME --help; tables in docs/performance.md):
  batch_shape    documents/s over CPU batch sizes and token budgets (the CPU default's origin)
  backends       CPU backends (ONNX, OpenVINO, precisions) against torch: speed, cosine, nDCG@10
  st_backends    our CPU backends against sentence-transformers' own (builds its own venv)
  m3             bge-m3: sparse and ColBERT outputs from one pass against dense alone
  llm_rerankers  BGE's LLM rerankers beside a cross-encoder, across their settings
  serving        bge-integrations serve under load against one in-process call
  ray_scaling    one corpus in this process and on a local Ray
  gpu            GPU throughput and MFU (on a CUDA machine)
"""


@dataclass
class Result:
    """Timings of one workload: contestant name to seconds per repeat."""

    workload: str
    model: str
    unit: str
    items: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    ours: set[str] = field(default_factory=set)
    reference: str = "pure compute"

    def rate(self, name: str) -> float:
        """Items per second, from the median repeat."""
        return self.items / statistics.median(self.seconds[name])

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON file."""
        return {
            "workload": self.workload,
            "model": self.model,
            "unit": self.unit,
            "items": self.items,
            "reference": self.reference,
            "median_seconds": {name: statistics.median(t) for name, t in self.seconds.items()},
            "seconds": self.seconds,
            "ours": sorted(self.ours),
        }


def _time(call: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# One event loop for every async run, as in a service (a web server runs one loop for its whole
# life): a fresh loop per run would also time loop set-up and a new worker-thread pool each time.
_LOOP = asyncio.Runner()
atexit.register(_LOOP.close)


def _round_robin(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    names = list(calls)
    for name in names:  # one untimed pass: first-call costs (allocations, caches) are not measured
        calls[name]()
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        turn = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in turn:
            seconds[name].append(_time(calls[name]))
    return seconds


def _interleaved(calls: dict[str, Callable[[Any], Any]], items: list[Any], repeats: int) -> dict[str, list[float]]:
    """Per run, each contestant's total time over items, taking turns item by item.

    For calls of a few milliseconds (one query) the machine's noise comes in bursts longer
    than a call: alternating call by call puts every contestant in the same bursts.
    """
    names = list(calls)
    for name in names:  # untimed: first-call costs
        calls[name](items[0])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        total = dict.fromkeys(names, 0.0)
        for index, item in enumerate(items):
            shift = (repeat + index) % len(names)
            for name in names[shift:] + names[:shift]:
                total[name] += _time(lambda name=name, item=item: calls[name](item))
        for name in names:
            seconds[name].append(total[name])
    return seconds


def _each(call: Callable[[Any], Any], items: Iterable[Any]) -> Callable[[], None]:
    items = list(items)

    def run() -> None:
        for item in items:
            call(item)

    return run


def bench_embedders(
    model: str, contestants: list[Embedder], work: Workload, repeats: int, workloads: set[str]
) -> list[Result]:
    """The embedding workloads for one model."""
    results = []
    ours = {c.name for c in contestants if c.ours}
    by_name = {c.name: c for c in contestants}
    if "documents" in workloads:
        calls = {c.name: (lambda c=c: c.embed_documents(work.documents)) for c in contestants}
        result = Result("documents", model, "documents/s", len(work.documents), ours=ours)
        result.seconds = _round_robin(calls, repeats)
        results.append(result)
    if "query" in workloads:
        queries = work.queries[:16]
        result = Result("query", model, "queries/s (one at a time)", len(queries), ours=ours)
        result.seconds = _interleaved({c.name: c.embed_query for c in contestants}, queries, repeats)
        results.append(result)
    if "async" in workloads:
        queries = work.queries[:64]

        def concurrent(call: Callable[[str], Any]) -> Callable[[], Any]:
            async def all_at_once() -> Any:
                return await asyncio.gather(*(call(q) for q in queries))

            return lambda: _LOOP.run(all_at_once())

        calls = {f"{c.name} (async)": concurrent(c.aembed_query) for c in contestants if c.aembed_query}
        for name in ("bge core", "pure compute"):
            if name in by_name and by_name[name].embed_queries is not None:
                batched = by_name[name].embed_queries
                calls[f"{name} (one batched call)"] = lambda batched=batched: batched(queries)
        result = Result(
            "async",
            model,
            f"queries/s ({len(queries)} concurrent)",
            len(queries),
            reference="bge core (one batched call)",
        )
        result.ours = {f"{name} (async)" for name in ours}
        result.seconds = _round_robin(calls, repeats)
        results.append(result)
    return results


def bench_cache(model: str, path: str, work: Workload, repeats: int, *, device: str = "cpu") -> Result:
    """The same corpus embedded twice with ``cache_dir`` set: the first pass, then repeats.

    Each repeat is a new ``BGEEmbedder`` on the same cache folder (as a restarted process
    would make), so nothing in memory helps it; its vectors must equal the first pass's.
    """
    import tempfile

    from bge_integrations import BGEEmbedder

    result = Result("cache", model, "documents/s", len(work.documents), reference="first pass (empty cache)")
    result.ours = {"repeat (cache filled)"}
    with tempfile.TemporaryDirectory() as folder:
        plain = BGEEmbedder(path, device=device, batch_size=BATCH_SIZE)
        plain.embed_documents(work.documents[:2])  # loads the model, untimed
        first = BGEEmbedder(path, device=device, batch_size=BATCH_SIZE, cache_dir=folder)
        start = time.perf_counter()
        reference = first.embed_documents(work.documents)
        result.seconds["first pass (empty cache)"] = [time.perf_counter() - start]
        result.seconds["repeat (cache filled)"] = []
        for _ in range(repeats):
            again = BGEEmbedder(path, device=device, batch_size=BATCH_SIZE, cache_dir=folder)
            start = time.perf_counter()
            vectors = again.embed_documents(work.documents)
            result.seconds["repeat (cache filled)"].append(time.perf_counter() - start)
            if vectors != reference:
                msg = "the cache returned other vectors than the first pass"
                raise AssertionError(msg)
    return result


def bench_rerankers(
    model: str, contestants: list[Reranker], work: Workload, repeats: int, workloads: set[str]
) -> list[Result]:
    """The reranking workloads for one cross-encoder."""
    results = []
    ours = {c.name for c in contestants if c.ours}
    pairs = list(zip(work.queries, work.candidates, strict=False))
    if "rerank" in workloads:
        calls = {c.name: _each(lambda qc, c=c: c.rerank(*qc), pairs) for c in contestants}
        result = Result(
            "rerank",
            model,
            f"queries/s ({len(work.candidates[0]) if work.candidates else 0} candidates each)",
            len(pairs),
            ours=ours,
        )
        result.seconds = _round_robin(calls, repeats)
        results.append(result)
    if "rerank-async" in workloads:

        def concurrent(call: Callable[[str, list[str]], Any]) -> Callable[[], Any]:
            async def all_at_once() -> Any:
                return await asyncio.gather(*(call(q, c) for q, c in pairs))

            return lambda: _LOOP.run(all_at_once())

        calls = {f"{c.name} (async)": concurrent(c.arerank) for c in contestants if c.arerank}
        for c in contestants:
            if c.name in ("bge core", "pure compute"):
                calls[f"{c.name} (sequential)"] = _each(lambda qc, c=c: c.rerank(*qc), pairs)
        result = Result(
            "rerank-async", model, f"queries/s ({len(pairs)} concurrent)", len(pairs), reference="bge core (sequential)"
        )
        result.ours = {f"{name} (async)" for name in ours}
        result.seconds = _round_robin(calls, repeats)
        results.append(result)
    if "long" in workloads:
        long_pairs = list(zip(work.queries, work.long_passages, strict=False))
        calls = {c.name: _each(lambda qc, c=c: c.rerank(*qc), long_pairs) for c in contestants}
        result = Result("long", model, "queries/s (20 passages of 600-1,500 tokens)", len(long_pairs), ours=ours)
        result.seconds = _round_robin(calls, repeats)
        results.append(result)
    return results


def table(result: Result) -> str:
    """A Markdown table: rate, time relative to the reference, and ours against the fastest other."""
    reference = statistics.median(result.seconds[result.reference]) if result.reference in result.seconds else None
    others = [n for n in result.seconds if n not in result.ours and "pure compute" not in n and "bge core" not in n]
    best_other = max((result.rate(n) for n in others), default=None)
    runs = len(next(iter(result.seconds.values())))
    lines = [
        f"**{result.workload}** ({result.model}, {result.items} items, median of {runs} runs)",
        "",
        f"| contestant | {result.unit} | time / {result.reference} | rate / fastest other |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in sorted(result.seconds, key=lambda n: -result.rate(n)):
        median = statistics.median(result.seconds[name])
        relative = f"{median / reference:.3f}" if reference else "-"
        versus = f"{result.rate(name) / best_other:.2f}" if best_other else "-"
        mark = " (ours)" if name in result.ours else ""
        lines.append(f"| {name}{mark} | {result.rate(name):.2f} | {relative} | {versus} |")
    return "\n".join(lines)


def machine() -> str:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    versions = f"torch {torch.__version__}, Python {platform.python_version()}"
    return f"{cpu}, {torch.get_num_threads()} torch threads, {device}; {versions}"


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the chosen workloads, print tables, write JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        epilog=OTHER_BENCHMARKS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--embedders", nargs="*", default=["minilm"], choices=[n for n, s in SPECS.items() if s.kind == "embedder"]
    )
    parser.add_argument(
        "--rerankers",
        nargs="*",
        default=["minilm-reranker"],
        choices=[n for n, s in SPECS.items() if s.kind == "reranker"],
    )
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--contestants", nargs="+", help="only these contestants (names as in the tables)")
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="a BEIR folder (default: ../shared/data/scifact)"
    )
    parser.add_argument("--documents", type=int, default=256, help="documents embedded per run")
    parser.add_argument(
        "--queries", type=int, default=64, help="queries per run: the async workload's (query: the first 16)"
    )
    parser.add_argument("--rerank-queries", type=int, default=4, help="queries reranked per run")
    parser.add_argument("--candidates", type=int, default=100, help="retrieved candidates reranked per query")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-path", help="run this model folder instead (its kind from --embedders/--rerankers)")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/.cache/results.json"))
    args = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    work = load_workload(
        args.data,
        documents=args.documents,
        queries=args.queries,
        rerank_queries=args.rerank_queries,
        candidates=args.candidates,
    )
    which = set(args.contestants) if args.contestants else None
    workloads = set(args.workloads)
    print(f"Machine: {machine()}\n")
    results: list[Result] = []
    if workloads & {"documents", "query", "async"}:
        for name in args.embedders:
            path = args.model_path or str(model_path(name))
            for result in bench_embedders(
                name, embedders(path, device=args.device, which=which), work, args.repeats, workloads
            ):
                print(table(result), "\n", flush=True)
                results.append(result)
            gc.collect()
    if "cache" in workloads:
        for name in args.embedders:
            path = args.model_path or str(model_path(name))
            result = bench_cache(name, path, work, args.repeats, device=args.device)
            print(table(result), "\n", "Vectors from the cache: identical to the first pass.\n", flush=True)
            results.append(result)
    if workloads & {"rerank", "rerank-async", "long"}:
        for name in args.rerankers:
            path = args.model_path or str(model_path(name))
            for result in bench_rerankers(
                name, rerankers(path, device=args.device, which=which), work, args.repeats, workloads
            ):
                print(table(result), "\n", flush=True)
                results.append(result)
            gc.collect()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": machine(), "results": [r.to_dict() for r in results]}, indent=2))
    print(f"JSON: {args.output}")
    return 0
