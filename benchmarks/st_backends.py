"""Our CPU backends against sentence-transformers' own ONNX and OpenVINO backends, same model, same texts.

``python -m benchmarks.st_backends --setup`` once, then ``python -m benchmarks.st_backends``.

Ours is ``BGEEmbedder(path, backend=..., backend_precision=...)`` in the repo's environment;
theirs is ``SentenceTransformer(path, backend="onnx" | "openvino")``, which needs optimum /
optimum-intel, and those pin an older transformers than ours. So ``--setup`` builds a second
virtual environment (``--st-venv``, default ``benchmarks/.cache/st-venv``): the local CPU torch
wheel first (a bare torch requirement pulls the CUDA build), then
``sentence-transformers[openvino,onnx]`` at whatever pip resolves; it is skipped when that
environment already imports them. The versions each side used are printed.

Every contestant (side, backend, precision, batch setting) runs in its own fresh process (this
file again, with ``--child``, in the right environment): it embeds the first batch untimed (model
load, first-call costs), then times ``--repeats`` full passes over the texts and saves the last
pass's vectors. Processes go contestant by contestant, ``--rounds`` times, each round starting one
contestant later, so that noise on a shared machine falls on all of them alike; a contestant's
passes from every round are pooled. Both sides get the same threads (``--threads``:
``torch.set_num_threads``, OpenVINO's ``INFERENCE_NUM_THREADS``, ONNX Runtime's
``intra_op_num_threads``; what each process actually ran with is printed).

Batch settings: ``b N`` is N texts per forward pass on both sides (ours with its token budget
off), at ``--batch-size`` (equal settings) and at each of ``--their-batch-sizes`` for theirs;
``default`` is ours with nothing set (on the CPU batches are cut at 2,048 padded tokens), since a
user gets each side at its own best setting: ``default`` is compared with their fastest.

Their fp32 is OpenVINO with ``INFERENCE_PRECISION_HINT: f32`` set explicitly (on a CPU with AMX
OpenVINO otherwise runs bf16), their bf16 with ``bf16``; their exports happen once, untimed,
before the timed rounds, and are kept (``save_pretrained``) under ``--work-dir``. Cosines are to
ours on torch fp32 at its default (``BGEEmbedder(path)``), all vectors L2-normalised first.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache"
UNBOUNDED = 10**9
"""A token budget no batch reaches: only the item count cuts our batches."""
TORCH_WHEEL = "torch==2.13.0"
ST_REQUIREMENT = "sentence-transformers[openvino,onnx]"
PACKAGES = (
    "sentence-transformers",
    "transformers",
    "torch",
    "optimum",
    "optimum-intel",
    "optimum-onnx",
    "openvino",
    "onnxruntime",
    "numpy",
    "bge-integrations",
)
RESULT = "RESULT "
"""The prefix of the line a child prints its figures on."""
EXPORT_FILES = {"onnx": Path("onnx") / "model.onnx", "openvino": Path("openvino") / "openvino_model.xml"}


@dataclass(frozen=True)
class Contestant:
    """One side, backend, precision and batch setting; batch None is our default batching."""

    side: str  # "ours" or "theirs"
    backend: str  # "torch", "onnx" or "openvino"
    precision: str  # "fp32" or "bf16"
    batch: int | None

    @property
    def name(self) -> str:
        """Its label in the tables and file names."""
        setting = "default" if self.batch is None else f"b{self.batch}"
        return f"{self.side} {self.backend} {self.precision} {setting}"

    @property
    def slug(self) -> str:
        """Its name as a file name."""
        return self.name.replace(" ", "-")


@dataclass
class Figures:
    """What the processes of one contestant measured."""

    contestant: Contestant
    seconds: list[float] = field(default_factory=list)
    first_batch_seconds: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    vectors: Path | None = None
    error: str | None = None

    def rate(self, items: int) -> float:
        """Documents per second, from the median pass."""
        return items / statistics.median(self.seconds) if self.seconds else float("nan")

    def best_rate(self, items: int) -> float:
        """Documents per second, from the fastest pass."""
        return items / min(self.seconds) if self.seconds else float("nan")


# --- the second environment ---------------------------------------------------------------------


def venv_python(venv: Path) -> Path:
    """The interpreter of a virtual environment."""
    return venv / "bin" / "python"


def setup(venv: Path) -> None:
    """Build the sentence-transformers environment unless it already imports what it needs."""
    python = venv_python(venv)
    probe = "import torch, sentence_transformers, optimum.intel.openvino, optimum.onnxruntime"
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        print(f"{venv} is ready; nothing to do")
        return
    if not python.exists():
        print(f"Creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    for requirement in (TORCH_WHEEL, ST_REQUIREMENT):
        print(f"pip install {requirement}")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", requirement], check=True)


# --- children -----------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Installed versions of the packages that matter here."""
    found = {}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def ours(spec: dict[str, Any], texts: list[str]) -> tuple[Any, dict[str, Any]]:
    """Our embedder for spec, and a function that embeds a list of texts."""
    import torch

    from bge_integrations import BGEEmbedder, TruncationWarning

    warnings.filterwarnings("ignore", category=TruncationWarning)  # SciFact abstracts pass 256 tokens, as in MTEB
    torch.set_num_threads(spec["threads"])
    kwargs: dict[str, Any] = {"device": "cpu"}
    if spec["backend"] != "torch":
        kwargs |= {"backend": spec["backend"], "backend_precision": spec["precision"], "backend_dir": spec["dir"]}
    if spec["batch"] is not None:
        kwargs |= {"batch_size": spec["batch"], "max_batch_tokens": UNBOUNDED}
    model = BGEEmbedder(spec["model"], **kwargs)
    info = {"torch_threads": torch.get_num_threads()}
    if spec["backend"] == "openvino":
        hint = "bf16" if spec["precision"] == "bf16" else "f32"  # as bge_integrations.core.backends compiles it
        info["openvino_config"] = {
            "INFERENCE_NUM_THREADS": str(torch.get_num_threads()),
            "INFERENCE_PRECISION_HINT": hint,
        }
    elif spec["backend"] == "onnx":
        info["onnxruntime"] = {"intra_op_num_threads": torch.get_num_threads(), "inter_op_num_threads": 1}
    return model.embed_documents, info


def theirs(spec: dict[str, Any], texts: list[str]) -> tuple[Any, dict[str, Any]]:
    """Their SentenceTransformer for spec, and a function that embeds a list of texts."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(spec["threads"])
    backend, path = spec["backend"], spec["model"]
    model_kwargs: dict[str, Any] = {}
    if backend == "openvino":
        hint = "bf16" if spec["precision"] == "bf16" else "f32"
        model_kwargs["ov_config"] = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": spec["threads"]}
    elif backend == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = spec["threads"]
        model_kwargs |= {"session_options": options, "provider": "CPUExecutionProvider"}
    if backend != "torch":
        path = spec["dir"]  # the folder the export was saved to
    model = SentenceTransformer(path, device="cpu", backend=backend, model_kwargs=model_kwargs or None)
    info: dict[str, Any] = {"torch_threads": torch.get_num_threads(), "max_seq_length": model.max_seq_length}
    inner = model[0].auto_model
    if backend == "openvino":
        inner.compile()
        info["openvino_config"] = {
            key: str(inner.request.get_property(key))
            for key in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT")
        }
    elif backend == "onnx":
        session = getattr(inner, "session", None) or getattr(inner, "model", None)
        if session is not None and hasattr(session, "get_session_options"):
            options = session.get_session_options()
            info["onnxruntime"] = {
                "intra_op_num_threads": options.intra_op_num_threads,
                "inter_op_num_threads": options.inter_op_num_threads,
                "providers": session.get_providers(),
            }
    batch = spec["batch"]

    def embed(chunk: list[str]) -> np.ndarray:
        return model.encode(chunk, batch_size=batch, convert_to_numpy=True, show_progress_bar=False)

    return embed, info


def export_theirs(spec: dict[str, Any]) -> None:
    """Export the model for their backend once and save it (with the export) to spec's folder."""
    from sentence_transformers import SentenceTransformer

    target = Path(spec["dir"])
    if (target / EXPORT_FILES[spec["backend"]]).exists():
        return
    model = SentenceTransformer(spec["model"], device="cpu", backend=spec["backend"])
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    partial.rename(target)


def child(spec: dict[str, Any]) -> int:
    """Run one contestant in this process and print its figures as one JSON line."""
    if spec.get("export"):
        start = time.perf_counter()
        if spec["side"] == "theirs":
            export_theirs(spec)
        else:
            embed, _ = ours(spec, [])
            embed(["warm up"])
        print(RESULT + json.dumps({"export_seconds": time.perf_counter() - start}))
        return 0
    texts = json.loads(Path(spec["texts"]).read_text())
    start = time.perf_counter()
    embed, info = (ours if spec["side"] == "ours" else theirs)(spec, texts)
    embed(texts[: spec["batch"] or 32])  # untimed: load, first-call costs
    first = time.perf_counter() - start
    seconds, vectors = [], None
    for _ in range(spec["repeats"]):
        gc.collect()
        start = time.perf_counter()
        vectors = embed(texts)
        seconds.append(time.perf_counter() - start)
    np.save(spec["vectors"], np.asarray(vectors, dtype=np.float32))
    info["versions"] = versions()
    print(RESULT + json.dumps({"seconds": seconds, "first_batch_seconds": first, "info": info}))
    return 0


# --- the parent ---------------------------------------------------------------------------------


def contestants(args: argparse.Namespace) -> list[Contestant]:
    """Everyone, reference (ours torch fp32 default) first."""
    theirs_sizes = sorted({args.batch_size, *args.their_batch_sizes})
    chosen = [Contestant("ours", "torch", "fp32", None)]
    if args.torch:
        chosen.append(Contestant("ours", "torch", "fp32", args.batch_size))
        chosen += [Contestant("theirs", "torch", "fp32", size) for size in theirs_sizes]
    for backend, precision in (("onnx", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")):
        if f"{backend}-{precision}" not in args.backends:
            continue
        chosen += [
            Contestant("ours", backend, precision, args.batch_size),
            Contestant("ours", backend, precision, None),
        ]
        chosen += [Contestant("theirs", backend, precision, size) for size in theirs_sizes]
    return chosen


def spec_of(contestant: Contestant, args: argparse.Namespace, model: str) -> dict[str, Any]:
    """The JSON a child gets."""
    folder = (
        args.work_dir / "ours"
        if contestant.side == "ours"
        else args.work_dir / f"theirs-{Path(model).name}-{contestant.backend}"
    )
    return {
        "side": contestant.side,
        "backend": contestant.backend,
        "precision": contestant.precision,
        "batch": contestant.batch,
        "model": model,
        "dir": str(folder),
        "texts": str(args.work_dir / "texts.json"),
        "vectors": str(args.work_dir / "vectors" / f"{contestant.slug}.npy"),
        "repeats": args.repeats,
        "threads": args.threads,
    }


def launch(contestant: Contestant, spec: dict[str, Any], args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Run a child for spec in its side's environment; its RESULT line, or raise with the log's tail."""
    python = sys.executable if contestant.side == "ours" else str(venv_python(args.st_venv))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    if contestant.side == "ours":
        env["PYTHONPATH"] = str(ROOT)
    command = [python, "-P", str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    lines = log.read_text().splitlines()
    results = [line for line in lines if line.startswith(RESULT)]
    if code != 0 or not results:
        tail = "\n".join(lines[-15:])
        raise RuntimeError(f"{contestant.name} exited {code}; log {log}:\n{tail}")
    return json.loads(results[-1][len(RESULT) :])


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length."""
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def compared(row: Figures, rows: list[Figures], items: int) -> Figures | None:
    """The row of theirs an ours row is measured against: the same batch size, or for ours default their fastest."""
    if row.contestant.side != "ours":
        return None
    c = row.contestant
    candidates = [
        other
        for other in rows
        if other.contestant.side == "theirs"
        and (other.contestant.backend, other.contestant.precision) == (c.backend, c.precision)
        and other.seconds
    ]
    if c.batch is not None:
        candidates = [other for other in candidates if other.contestant.batch == c.batch]
    return max(candidates, key=lambda other: other.rate(items), default=None)


def table(rows: list[Figures], items: int, reference: np.ndarray | None) -> str:
    """The Markdown table of rows."""
    lines = [
        "| contestant | docs/s (median) | docs/s (best) | ours/theirs (median) | ours/theirs (best) | against "
        "| mean cosine | min cosine |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for row in rows:
        if row.error is not None:
            lines.append(f"| {row.contestant.name} | failed | | | | | | |")
            continue
        other = compared(row, rows, items)
        ratio = ratio_best = against = ""
        if other is not None:
            ratio = f"{row.rate(items) / other.rate(items):.2f}"
            ratio_best = f"{row.best_rate(items) / other.best_rate(items):.2f}"
            against = other.contestant.name
        mean = low = ""
        if reference is not None and row.vectors is not None and row.vectors.exists():
            cos = (normalised(np.load(row.vectors)) * reference).sum(axis=1)
            mean, low = f"{cos.mean():.7f}", f"{cos.min():.7f}"
        lines.append(
            f"| {row.contestant.name} | {row.rate(items):.1f} | {row.best_rate(items):.1f} | {ratio} | {ratio_best} "
            f"| {against} | {mean} | {low} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Export, time every contestant round by round, print the tables."""
    from benchmarks.backends import load, machine
    from benchmarks.models import model_path
    from bge_integrations.evaluation import load_beir

    if not venv_python(args.st_venv).exists():
        print(f"{args.st_venv} is missing: run `python -m benchmarks.st_backends --setup` first")
        return 2
    model = args.model_path or str(model_path("minilm"))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("vectors", "logs"):
        (args.work_dir / sub).mkdir(exist_ok=True)
    corpus = load_beir(args.data).doc_texts
    texts = random.Random(0).sample(corpus, min(args.documents, len(corpus)))
    (args.work_dir / "texts.json").write_text(json.dumps(texts))
    everyone = contestants(args)
    print(f"Machine: {machine()}")
    print(
        f"Model: {model}; {len(texts)} SciFact documents; {args.rounds} round(s) x {args.repeats} timed passes, "
        f"one fresh process per contestant and round; {args.threads} threads\n"
    )
    exports = {(c.side, c.backend): c for c in everyone if c.backend != "torch"}
    for (side, backend), contestant in exports.items():  # untimed, once
        spec = spec_of(contestant, args, model) | {"export": True}
        done = launch(contestant, spec, args, args.work_dir / "logs" / f"export-{side}-{backend}.log")
        print(f"Export/load {side} {backend}: {done['export_seconds']:.1f} s")
    rows = {c: Figures(c, vectors=Path(spec_of(c, args, model)["vectors"])) for c in everyone}
    start = time.perf_counter()
    for round_ in range(args.rounds):
        turn = everyone[round_ % len(everyone) :] + everyone[: round_ % len(everyone)]
        for contestant in turn:
            row = rows[contestant]
            if row.error is not None:
                continue
            log = args.work_dir / "logs" / f"{contestant.slug}-round{round_}.log"
            try:
                result = launch(contestant, spec_of(contestant, args, model), args, log)
            except RuntimeError as error:
                row.error = str(error)
                print(f"  FAILED {error}")
                continue
            row.seconds += result["seconds"]
            row.first_batch_seconds.append(result["first_batch_seconds"])
            row.info = result["info"]
            rate = len(texts) / statistics.median(result["seconds"])
            print(f"  round {round_ + 1}: {contestant.name}: {rate:.1f} docs/s (load {load()})")
    print(f"\nTimed rounds took {time.perf_counter() - start:.0f} s; load average now {load()}\n")
    reference_row = rows[everyone[0]]
    reference = None
    if reference_row.vectors is not None and reference_row.vectors.exists():
        reference = normalised(np.load(reference_row.vectors))
    for precision in ("fp32", "bf16"):
        chosen = [row for row in rows.values() if row.contestant.precision == precision]
        if precision == "bf16":
            chosen = [reference_row, *chosen]
        if len(chosen) > 1:
            print(f"### {precision}\n\n{table(chosen, len(texts), reference)}\n")
    print("Threads and settings each side ran with (from its last process):")
    seen: dict[str, str] = {}
    for row in rows.values():
        settings = {key: value for key, value in row.info.items() if key != "versions"}
        print(f"  {row.contestant.name}: {json.dumps(settings)}")
        seen[row.contestant.side] = json.dumps(row.info.get("versions", {}))
    print("\nVersions:")
    for side, found in seen.items():
        print(f"  {side}: {', '.join(f'{key} {value}' for key, value in json.loads(found).items())}")
    if args.output:
        data = {
            "machine": machine(),
            "model": model,
            "documents": len(texts),
            "rows": [
                {
                    "name": row.contestant.name,
                    "seconds": row.seconds,
                    "first_batch_seconds": row.first_batch_seconds,
                    "documents_per_second": row.rate(len(texts)),
                    "best_documents_per_second": row.best_rate(len(texts)),
                    "info": row.info,
                    "error": row.error,
                }
                for row in rows.values()
            ],
        }
        args.output.write_text(json.dumps(data, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Set up, run a child, or run the comparison and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.st_backends", description=__doc__)
    parser.add_argument("--setup", action="store_true", help="build the sentence-transformers environment and stop")
    parser.add_argument("--st-venv", type=Path, default=CACHE / "st-venv")
    parser.add_argument("--model-path", help="an embedding model folder (default: the real all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, help="a BEIR folder (default: SciFact in shared/data)")
    parser.add_argument("--documents", type=int, default=256, help="SciFact documents embedded per pass")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per contestant, taken in turn")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass on both sides")
    parser.add_argument("--their-batch-sizes", type=int, nargs="+", default=[10, 32])
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["onnx-fp32", "openvino-fp32", "openvino-bf16"],
        choices=["onnx-fp32", "openvino-fp32", "openvino-bf16"],
    )
    parser.add_argument("--torch", action="store_true", help="also torch on both sides (ours at --batch-size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-dir", type=Path, default=CACHE / "st_backends", help="exports, texts, vectors, logs")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(json.loads(args.child))
    if args.setup:
        setup(args.st_venv)
        return 0
    if args.data is None:
        from benchmarks.workloads import DEFAULT_DATA

        args.data = DEFAULT_DATA
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
