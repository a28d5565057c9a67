"""CPU backends against torch fp32, in one run: documents/s, cosine to torch's vectors, SciFact nDCG@10.

``python -m benchmarks.backends`` embeds the same SciFact documents with ``BGEEmbedder`` on each
backend and precision (torch fp32 first, the reference), round-robin over ``--repeats`` so that
noise on a shared machine falls on all of them alike, and prints a Markdown table: documents/s
and its ratio to torch fp32, from the median repeat and from the best one, and the mean and
smallest cosine between each document's vector and torch fp32's. On a shared machine the best
repeat (as ``timeit`` reports) is the steadier estimate of what each backend does undisturbed;
the median shows what it does amid the noise. ``--ndcg`` then embeds the whole collection once per
backend and adds nDCG@10 (and the cosines over the whole corpus); that costs minutes per backend.

Exports are kept in ``--backend-dir`` (default ``benchmarks/.cache/backends``); the first run
exports each graph and the table's "load s" column shows that cost, later runs read the files.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.models import CACHE, model_path
from benchmarks.workloads import DEFAULT_DATA
from bge_integrations import BGEEmbedder, TruncationWarning, clear_model_cache
from bge_integrations.evaluation import evaluate_retrieval, load_beir

CONTESTANTS = ("torch-fp32", "onnx-fp32", "openvino-fp32", "openvino-bf16", "onnx-int8")
"""``backend-precision``; torch fp32 is always run first, as the reference."""


@dataclass
class Row:
    """One backend's figures."""

    name: str
    load_seconds: float = 0.0
    seconds: list[float] = field(default_factory=list)
    cosines: np.ndarray | None = None
    ndcg_at_10: float | None = None
    corpus_cosines: np.ndarray | None = None
    ndcg_seconds: float | None = None

    def rate(self, items: int) -> float:
        """Documents per second, from the median repeat."""
        return items / statistics.median(self.seconds)

    def best_rate(self, items: int) -> float:
        """Documents per second, from the fastest repeat."""
        return items / min(self.seconds)

    def to_dict(self, items: int) -> dict[str, Any]:
        """Plain data for the JSON file."""
        data = {k: v for k, v in asdict(self).items() if k not in ("cosines", "corpus_cosines")}
        data["documents_per_second"] = self.rate(items)
        data["best_documents_per_second"] = self.best_rate(items)
        for key in ("cosines", "corpus_cosines"):
            values = getattr(self, key)
            if values is not None:
                data[f"mean_{key}"], data[f"min_{key}"] = float(values.mean()), float(values.min())
        return data


def embedder(model: str, name: str, args: argparse.Namespace) -> BGEEmbedder:
    """The embedder of contestant name (``backend-precision``)."""
    backend, precision = name.split("-")
    if backend == "torch":
        return BGEEmbedder(model, device="cpu", batch_size=args.batch_size)
    return BGEEmbedder(
        model, backend=backend, backend_precision=precision, backend_dir=args.backend_dir, batch_size=args.batch_size
    )


def cosines(vectors: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity."""
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(reference, axis=1)
    return (vectors * reference).sum(axis=1) / norms


def machine() -> str:
    """CPU, the instructions that matter here, threads, library versions and the load average now."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        info = Path("/proc/cpuinfo").read_text()
        cpu = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flags = set(next(line for line in info.splitlines() if line.startswith("flags")).split())
    except (OSError, StopIteration):
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_fp16")
    present = ",".join(flag for flag in wanted if flag in flags) or "unknown"
    versions = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            versions.append(f"{package} missing")
    return (
        f"{cpu} ({os.cpu_count()} CPUs; {present}), {torch.get_num_threads()} threads; "
        f"{', '.join(versions)}; load average {load()}"
    )


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def time_call(call: Callable[[], Any]) -> float:
    """Seconds one call takes, after a garbage collection."""
    gc.collect()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def speed(model: str, names: list[str], texts: list[str], args: argparse.Namespace) -> dict[str, Row]:
    """Load every contestant, embed texts once (the cosines), then time round-robin."""
    rows = {name: Row(name) for name in names}
    embedders = {}
    vectors = {}
    for name in names:
        embedders[name] = embedder(model, name, args)
        rows[name].load_seconds = time_call(embedders[name].warm_up)
        vectors[name] = np.asarray(embedders[name].embed_documents(texts), dtype=np.float32)  # untimed first pass
    for name in names:
        rows[name].cosines = cosines(vectors[name], vectors[names[0]])
    for repeat in range(args.repeats):
        turn = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in turn:
            rows[name].seconds.append(time_call(lambda name=name: embedders[name].embed_documents(texts)))
    return rows


def ndcg(model: str, names: list[str], rows: dict[str, Row], args: argparse.Namespace) -> None:
    """Embed the whole collection with each contestant; nDCG@10, and cosines over the corpus."""
    dataset = load_beir(args.data)
    reference: np.ndarray | None = None
    for name in names:
        clear_model_cache()
        embed = embedder(model, name, args)
        embed.warm_up()
        captured: list[np.ndarray] = []

        def documents(texts: list[str], embed: BGEEmbedder = embed, captured: list = captured) -> list[list[float]]:
            vectors = embed.embed_documents(texts)
            captured.append(np.asarray(vectors, dtype=np.float32))
            return vectors

        start = time.perf_counter()
        report = evaluate_retrieval(dataset, embed.embed_queries, documents)
        rows[name].ndcg_seconds = time.perf_counter() - start
        rows[name].ndcg_at_10 = report.ndcg_at_10
        if reference is None:
            reference = captured[0]
        rows[name].corpus_cosines = cosines(captured[0], reference)
        print(f"  {name}: nDCG@10 {report.ndcg_at_10:.5f} in {rows[name].ndcg_seconds:.0f} s (load {load()})")


def table(rows: dict[str, Row], items: int, with_ndcg: bool) -> str:
    """The Markdown table."""
    names = list(rows)
    base, best = rows[names[0]].rate(items), rows[names[0]].best_rate(items)
    header = (
        "| backend | documents/s (median) | × torch fp32 | documents/s (best) | × torch fp32 "
        "| mean cosine | min cosine | load s |"
    )
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    if with_ndcg:
        header += " nDCG@10 | corpus mean cosine | corpus min cosine |"
        rule += " ---: | ---: | ---: |"
    lines = [header, rule]
    for name in names:
        row = rows[name]
        cos = row.cosines if row.cosines is not None else np.ones(1)
        line = (
            f"| {name} | {row.rate(items):.1f} | {row.rate(items) / base:.2f} | {row.best_rate(items):.1f} | "
            f"{row.best_rate(items) / best:.2f} | {cos.mean():.7f} | {cos.min():.7f} | {row.load_seconds:.1f} |"
        )
        if with_ndcg:
            corpus = row.corpus_cosines if row.corpus_cosines is not None else np.full(1, np.nan)
            line += f" {row.ndcg_at_10:.5f} | {corpus.mean():.7f} | {corpus.min():.7f} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backends", description=__doc__)
    parser.add_argument("--model", default="minilm", help="a model of benchmarks/models.py (minilm, bge-small, ...)")
    parser.add_argument("--model-path", help="run this embedding model folder instead")
    parser.add_argument("--contestants", nargs="+", default=list(CONTESTANTS[1:]), choices=CONTESTANTS[1:])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--documents", type=int, default=96, help="SciFact documents embedded per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ndcg", action="store_true", help="also nDCG@10 on the whole collection (slow)")
    parser.add_argument("--backend-dir", type=Path, default=CACHE / "backends")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=TruncationWarning)  # SciFact abstracts pass 256 tokens, as in MTEB
    model = args.model_path or str(model_path(args.model))
    names = ["torch-fp32", *args.contestants]
    corpus = load_beir(args.data).doc_texts
    texts = random.Random(0).sample(corpus, min(args.documents, len(corpus)))
    print(f"Machine: {machine()}")
    print(f"Model: {args.model_path or args.model}; {len(texts)} SciFact documents, batch size {args.batch_size}\n")
    rows = speed(model, names, texts, args)
    print(f"Load average after the timed runs: {load()}\n")
    if args.ndcg:
        print(f"nDCG@10 on {args.data.name}, whole collection, one backend after the other:")
        ndcg(model, names, rows, args)
        print()
    print(table(rows, len(texts), args.ndcg))
    if args.output:
        data = {"machine": machine(), "model": model, "rows": [row.to_dict(len(texts)) for row in rows.values()]}
        args.output.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
