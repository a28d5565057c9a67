"""Which batch shape a CPU forward pass runs fastest at: documents/s over batch sizes and token budgets.

``python -m benchmarks.batch_shape`` embeds the same SciFact abstracts with ``BGEEmbedder`` once
per setting, round-robin over ``--repeats`` (noise on a shared machine falls on every setting
alike), and prints one Markdown table per model: documents/s from the median and the best repeat,
time as a multiple of batches of 32 (sentence-transformers' default), and the mean texts and
padded tokens per forward pass. Inputs are length-sorted as the engine always does.

Settings:

* ``batch N``: at most N texts per forward pass, no token budget (``max_batch_tokens`` off);
* ``budget T``: at most 32 texts and T padded tokens (texts x longest text) per forward pass;
* ``default``: ``BGEEmbedder(path)`` with nothing set: what a user gets
  (:mod:`bge_integrations.core.cpu_batches`: 2,048 padded tokens on the CPU).

``--backend openvino`` runs the same table on the exact OpenVINO graph.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import time
import warnings
from pathlib import Path

from benchmarks.backends import load, machine
from benchmarks.models import CACHE, model_path
from benchmarks.workloads import DEFAULT_DATA
from bge_integrations import BGEEmbedder, TruncationWarning, clear_model_cache
from bge_integrations.core.batching import plan_batches
from bge_integrations.core.cpu_batches import cpu_batch_tokens
from bge_integrations.evaluation import load_beir

UNBOUNDED = 10**9
"""A token budget no batch reaches: only the item count cuts batches."""

SIZES = (4, 8, 10, 16, 32, 64)


def settings(sizes: list[int], budgets: list[int]) -> dict[str, dict[str, int | None]]:
    """Setting name to the ``BGEEmbedder`` batch arguments it passes."""
    chosen: dict[str, dict[str, int | None]] = {"default": {}}
    for size in sizes:
        chosen[f"batch {size}"] = {"batch_size": size, "max_batch_tokens": UNBOUNDED}
    for budget in budgets:
        chosen[f"budget {budget}"] = {"batch_size": 32, "max_batch_tokens": budget}
    return chosen


def shape(lengths: list[int], batch_size: int, max_tokens: int | None) -> tuple[float, float]:
    """Mean texts and mean padded tokens per batch for these token lengths."""
    batches = plan_batches(lengths, max_items=batch_size, max_tokens=max_tokens)
    items = statistics.mean(len(rows) for rows in batches)
    padded = statistics.mean(len(rows) * max(lengths[i] for i in rows) for rows in batches)
    return items, padded


def run_model(name: str, texts: list[str], args: argparse.Namespace) -> dict[str, object]:
    """Time every setting on one model; returns the figures (and prints the table)."""
    path = args.model_path or str(model_path(name))
    chosen = settings(args.sizes, args.budgets)
    extra = {"backend": args.backend, "backend_dir": str(args.backend_dir)} if args.backend != "torch" else {}
    models = {label: BGEEmbedder(path, **kwargs, **extra) for label, kwargs in chosen.items()}  # type: ignore[arg-type]
    for model in models.values():  # untimed: loading (one shared model), first-call costs
        model.embed_documents(texts[:4])
    first = next(iter(models.values()))
    loaded = first._loaded()
    lengths = loaded.features.tokenize(texts).lengths
    default_budget = cpu_batch_tokens("cpu")
    hidden = first.dimension
    seconds: dict[str, list[float]] = {label: [] for label in models}
    labels = list(models)
    for repeat in range(args.repeats):
        turn = labels[repeat % len(labels) :] + labels[: repeat % len(labels)]
        for label in turn:
            gc.collect()
            start = time.perf_counter()
            models[label].embed_documents(texts)
            seconds[label].append(time.perf_counter() - start)
    reference = statistics.median(seconds["batch 32"]) if "batch 32" in seconds else None
    lines = [
        f"**{args.model_path or name}** ({args.backend}, {hidden} wide, {loaded.max_length}-token "
        f"window; default budget {default_budget} padded tokens), {len(texts)} SciFact abstracts, "
        f"{args.repeats} repeats:",
        "",
        "| setting | docs/s (median) | docs/s (best) | time x batch 32 | texts / batch | padded tokens / batch |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = []
    for label in labels:
        kwargs = chosen[label]
        batch_size = int(kwargs.get("batch_size") or 32)
        budget = kwargs.get("max_batch_tokens", default_budget)
        items, padded = shape(lengths, batch_size, budget)
        median = statistics.median(seconds[label])
        ratio = f"{median / reference:.3f}" if reference else "-"
        rate, best = len(texts) / median, len(texts) / min(seconds[label])
        lines.append(f"| {label} | {rate:.2f} | {best:.2f} | {ratio} | {items:.1f} | {padded:,.0f} |")
        rows.append({"setting": label, "seconds": seconds[label], "texts_per_batch": items, "padded_tokens": padded})
    print("\n".join(lines), flush=True)
    print(f"\nLoad average after the timed runs: {load()}\n", flush=True)
    clear_model_cache()
    return {"model": args.model_path or name, "backend": args.backend, "default_budget": default_budget, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """Run the sweep and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_shape", description=__doc__)
    parser.add_argument("--models", nargs="+", default=["minilm", "bge-small", "bge-base"])
    parser.add_argument("--model-path", help="run this embedding model folder instead (one model)")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="texts per batch to try")
    parser.add_argument("--budgets", nargs="+", type=int, default=[], help="padded-token budgets to try")
    parser.add_argument("--backend", default="torch", choices=("torch", "openvino", "onnx"))
    parser.add_argument("--backend-dir", type=Path, default=CACHE / "backends")
    parser.add_argument("--documents", type=int, default=64, help="SciFact abstracts per timed run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=TruncationWarning)  # SciFact abstracts pass 256 tokens, as in MTEB
    corpus = load_beir(args.data).doc_texts
    texts = random.Random(0).sample(corpus, min(args.documents, len(corpus)))
    print(f"Machine: {machine()}\n")
    results = [run_model(name, texts, args) for name in ([args.model_path] if args.model_path else args.models)]
    if args.output:
        args.output.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
