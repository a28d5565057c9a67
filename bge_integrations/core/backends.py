"""CPU backends for the embedder: the loaded pipeline exported to ONNX, run by ONNX Runtime or OpenVINO.

The graph is exported by this package from the sentence-transformers pipeline that
:func:`~bge_integrations.core.embedding_model.load_embedder` loaded (transformer, pooling and
normalisation in one graph), not by ``optimum``, whose extras pin other sentence-transformers and
transformers releases. Tokenisation and batching stay the embedder's own; only the forward pass
differs. A fresh export is checked against the torch pipeline on inputs of other shapes than the
one it was traced with, and refused if it differs.

Exported files are kept on disk, one folder per model and settings (:func:`backend_folder`):

* ``fp32/``: the exported graph. ONNX Runtime runs it at ``backend_precision="fp32"``; OpenVINO
  compiles it at ``"fp32"`` or ``"bf16"`` (the precision is chosen when compiling, so both share it).
* ``int8/``: the same graph with its matrix multiplications quantised to int8 (ONNX Runtime's
  dynamic quantisation: int8 weights, activations quantised per batch).

Each folder is built in a temporary folder and renamed into place, with a manifest of its files'
SHA-256 written last; a folder whose files do not match their manifest is rebuilt, never used.
Folders and files are readable by their owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Backend = Literal["torch", "onnx", "openvino", "auto"]
"""``"auto"``: on the CPU the exact OpenVINO graph when it is installed, else torch (:func:`choose_backend`)."""
BackendPrecision = Literal["fp32", "bf16", "int8"]

PRECISIONS: dict[str, tuple[str, ...]] = {"torch": (), "onnx": ("fp32", "int8"), "openvino": ("fp32", "bf16")}
"""The precisions each backend runs; torch's precision is ``use_fp16``."""

EXTRAS = {"onnx": "onnxruntime", "openvino": "openvino"}
"""The runtime package each backend imports, installed by the extra of the same name."""

FORMAT = 1
"""Bumped when what is stored changes; part of every folder's key."""

_MANIFEST = "manifest.json"
_GRAPH = "model.onnx"
_OPSET = 17
_EXPORT_TEXTS = ("a b", "a b c d e f g h i j k l m n o p")
_PROBE_TEXTS = ("x", "one two three four five six seven eight nine ten eleven", "hello world", "y z y z y")
_TOLERANCE = 1e-4
"""Largest difference allowed between a fresh fp32 export and torch, relative to the largest value."""

MakeInputs = Callable[[list[str]], dict[str, torch.Tensor]]
"""Tokenises texts into the pipeline's padded input tensors (on the CPU), as the embedder does."""


def check_backend(
    backend: Any, precision: Any, *, device: str | None = None, use_fp16: bool | None = None
) -> BackendPrecision | None:
    """Check a backend and precision (and that device and use_fp16 fit them); return the precision in use.

    Args:
        backend: ``"torch"``, ``"onnx"`` or ``"openvino"``.
        precision: For ``"onnx"``: ``"fp32"`` or ``"int8"``; for ``"openvino"``: ``"fp32"`` or
            ``"bf16"``; None: ``"fp32"``. Must be None for ``"torch"`` (use ``use_fp16``).
        device: The embedder's device setting; the ONNX backends run on the CPU only.
        use_fp16: The embedder's fp16 setting; not for the ONNX backends.

    Returns:
        The precision in use: None for torch, else the given one or ``"fp32"``.

    Raises:
        ValueError: Naming the setting that does not fit.

    Example:
        >>> check_backend("openvino", None)
        'fp32'
        >>> check_backend("onnx", "bf16")
        Traceback (most recent call last):
        ...
        ValueError: backend_precision='bf16' is not available with backend='onnx'; it runs ('fp32', 'int8')

    """
    if backend not in get_args(Backend):
        msg = f"backend must be one of {get_args(Backend)}, got {backend!r}"
        raise ValueError(msg)
    if precision is not None and precision not in get_args(BackendPrecision):
        msg = f"backend_precision must be one of {get_args(BackendPrecision)} or None, got {precision!r}"
        raise ValueError(msg)
    if backend == "auto":
        if precision is not None:
            msg = (
                f"backend_precision={precision!r} needs a named backend ('onnx' or 'openvino'); "
                "backend='auto' runs the exact fp32 graph or torch"
            )
            raise ValueError(msg)
        return None
    if backend == "torch":
        if precision is not None:
            msg = (
                f"backend_precision={precision!r} needs backend='onnx' or 'openvino'; "
                "with backend='torch', use use_fp16 for half precision"
            )
            raise ValueError(msg)
        return None
    if precision is not None and precision not in PRECISIONS[backend]:
        runs = PRECISIONS[backend]
        msg = f"backend_precision={precision!r} is not available with backend={backend!r}; it runs {runs}"
        raise ValueError(msg)
    if device is not None and torch.device(device).type != "cpu":
        msg = f"backend={backend!r} runs on the CPU only, got device={device!r}"
        raise ValueError(msg)
    if use_fp16:
        msg = f"use_fp16=True is for backend='torch' on CUDA or MPS; with backend={backend!r} use backend_precision"
        raise ValueError(msg)
    return precision or "fp32"


AUTO_BACKEND: Backend = "openvino"
"""What ``backend="auto"`` runs on the CPU when it can: OpenVINO's fp32 graph gives torch's vectors
(mean cosine 1.0000000, the same SciFact nDCG@10), faster than torch on the CPUs measured
(docs/performance.md); ONNX Runtime's fp32 graph gained less."""


class BackendUnavailableError(RuntimeError):
    """The graph that ``backend="auto"`` chose cannot be made or run here; torch runs instead."""


def runtime_installed(backend: str) -> bool:
    """Whether the packages that backend imports (``onnx`` and its runtime) are installed, without importing them.

    A folder of the same name (a namespace package) or a module without a spec does not count.

    Example:
        >>> runtime_installed("torch")
        True

    """
    if backend == "torch":
        return True
    for package in ("onnx", EXTRAS[backend]):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):  # a module in sys.modules without a spec, a broken parent
            return False
        if spec is None or spec.origin is None:
            return False
    return True


def choose_backend(device: str, *, use_fp16: bool) -> tuple[Backend, str | None]:
    """What ``backend="auto"`` runs on device: the backend, and why torch where a CPU could do better.

    Returns:
        ``("openvino", None)`` on the CPU with OpenVINO installed; ``("torch", None)`` on CUDA or
        MPS (or with ``use_fp16``), where torch is the fast path; ``("torch", reason)`` on a CPU
        without OpenVINO, reason being the one-line notice to show.

    Example:
        >>> choose_backend("cuda:0", use_fp16=True)
        ('torch', None)

    """
    if torch.device(device).type != "cpu" or use_fp16:
        return "torch", None
    if runtime_installed(AUTO_BACKEND):
        return AUTO_BACKEND, None
    reason = (
        "backend='auto' runs torch on this CPU: OpenVINO is not installed. "
        'pip install "bge-integrations[openvino]" for the exact OpenVINO graph (same vectors, '
        "faster on the CPUs measured: docs/performance.md), or pass backend='torch' to silence this."
    )
    return "torch", reason


def default_backend_dir() -> Path:
    """Where exported graphs are kept by default: ``$XDG_CACHE_HOME/bge_integrations/backends``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``.

    Example:
        >>> default_backend_dir().parts[-2:]
        ('bge_integrations', 'backends')

    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bge_integrations" / "backends"


def import_runtime(backend: str) -> Any:
    """Import the runtime package of backend, after ``onnx`` (which the export needs).

    Raises:
        ImportError: Naming the extra that installs both.

    """
    package = EXTRAS[backend]
    try:
        importlib.import_module("onnx")
        return importlib.import_module(package)
    except ImportError as exc:
        msg = f'backend={backend!r} needs onnx and {package}: pip install "bge-integrations[{backend}]"'
        raise ImportError(msg) from exc


def backend_folder(root: str | os.PathLike[str], name: str, settings: Mapping[str, Any]) -> Path:
    """The folder of one model's exported files under root: the model's name, then a digest of settings.

    Example:
        >>> backend_folder("/cache", "BAAI/bge-small-en-v1.5", {"model": "BAAI/bge-small-en-v1.5@main"}).parent
        PosixPath('/cache')

    """
    digest = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode()).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name.rstrip("/\\")).name or "model")[:60]
    return Path(root).expanduser() / f"{slug}-{digest}"


@dataclass
class GraphRuntime:
    """An exported graph compiled by ONNX Runtime or OpenVINO, run on padded input arrays.

    Built by :func:`load_runtime`; ``run`` may be called from several threads at once.

    Example:
        >>> runtime = load_runtime(model, make_inputs, backend="onnx", precision="fp32",
        ...                        folder=folder)  # doctest: +SKIP
        >>> runtime.run({"input_ids": ids, "attention_mask": mask}).shape  # doctest: +SKIP
        (2, 384)

    """

    backend: str
    precision: str
    path: Path
    """The graph file in use."""
    input_names: tuple[str, ...]
    _run: Callable[[dict[str, np.ndarray]], np.ndarray]

    def run(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The sentence embeddings (float32, one row per input row) of a padded batch."""
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            msg = f"the exported graph takes {list(self.input_names)}; the batch lacks {missing}"
            raise ValueError(msg)
        out = self._run({name: np.ascontiguousarray(inputs[name], dtype=np.int64) for name in self.input_names})
        return np.asarray(out, dtype=np.float32)


def load_runtime(
    model: SentenceTransformer,
    make_inputs: MakeInputs,
    *,
    backend: str,
    precision: str,
    folder: str | os.PathLike[str],
    threads: int | None = None,
) -> GraphRuntime:
    """The graph of model for backend and precision: read from folder, or exported (and stored) first.

    Args:
        model: The loaded pipeline; its output ``sentence_embedding`` is what the graph computes.
        make_inputs: Tokenises texts into the pipeline's input tensors.
        backend: ``"onnx"`` or ``"openvino"``.
        precision: As :func:`check_backend` returns it.
        folder: This model's folder (see :func:`backend_folder`).
        threads: Threads per forward pass; None: torch's (``torch.get_num_threads()``).

    Raises:
        ImportError: If the runtime is not installed (naming the extra).
        ValueError: If OpenVINO cannot run bf16 on this CPU.
        RuntimeError: If a fresh export does not reproduce the torch pipeline.

    """
    runtime = import_runtime(backend)
    threads = threads or torch.get_num_threads()
    folder = Path(folder)
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    graph = _artifact(folder / "fp32", lambda out: _export(model, make_inputs, out, backend))
    if precision == "int8":
        graph = _artifact(folder / "int8", lambda out: _quantize(graph, out))
    if backend == "onnx":
        return _onnx_runtime(runtime, graph, precision, threads)
    return _openvino_runtime(runtime, graph, precision, threads)


# --- stored folders -----------------------------------------------------------------------------


def _artifact(final: Path, build: Callable[[Path], None]) -> Path:
    """The graph file in final, built (in a temporary folder renamed into place) unless final is intact."""
    if _intact(final):
        return final / _GRAPH
    final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))  # created 0o700
    try:
        build(temporary)
        files = sorted(p.name for p in temporary.iterdir() if p.is_file())
        for name in files:
            (temporary / name).chmod(0o600)
        manifest = {"format": FORMAT, "files": {name: _sha256(temporary / name) for name in files}}
        (temporary / _MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        (temporary / _MANIFEST).chmod(0o600)
        _replace_folder(temporary, final)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if not _intact(final):
        msg = f"the exported files in {final} do not match their manifest right after writing them"
        raise RuntimeError(msg)
    return final / _GRAPH


def _intact(folder: Path) -> bool:
    """Whether folder holds a manifest, the graph, and exactly the files listed, each with its SHA-256."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
        listed: dict[str, str] = manifest["files"]
        present = {p.name for p in folder.iterdir() if p.is_file()} - {_MANIFEST}
        if manifest.get("format") != FORMAT or _GRAPH not in listed or present != set(listed):
            return False
        return all(_sha256(folder / name) == digest for name, digest in listed.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _replace_folder(temporary: Path, final: Path) -> None:
    """Move temporary to final; a damaged final is moved aside first, an intact one (a racing writer's) kept."""
    if final.exists():
        if _intact(final):
            return
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}-old-", dir=final.parent))
        with contextlib.suppress(OSError):  # removed meanwhile by another writer
            os.replace(final, aside / final.name)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.replace(temporary, final)
    except OSError:
        if not _intact(final):  # another writer put a folder there in between; only a good one may stay
            raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- export -------------------------------------------------------------------------------------


class _Pipeline(torch.nn.Module):
    """The pipeline as a module of positional tensors, as ONNX export needs."""

    def __init__(self, model: SentenceTransformer, names: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        embeddings: torch.Tensor = self.model(dict(zip(self.names, tensors, strict=True)))["sentence_embedding"]
        return embeddings


def _export(model: SentenceTransformer, make_inputs: MakeInputs, out: Path, backend: str) -> None:
    """Export model to out/model.onnx, then check it against torch on inputs of other shapes."""
    example = make_inputs(list(_EXPORT_TEXTS))
    names = tuple(example)
    wrapper = _Pipeline(model, names).eval()
    options: dict[str, Any] = {
        "input_names": list(names),
        "output_names": ["sentence_embedding"],
        "dynamic_axes": {**{name: {0: "batch", 1: "sequence"} for name in names}, "sentence_embedding": {0: "batch"}},
        "opset_version": _OPSET,
        "do_constant_folding": True,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        # The TorchScript exporter: no extra dependency, and what it traces is checked below.
        options["dynamo"] = False
    with warnings.catch_warnings(), _eager_attention(model):
        # Tracer notes on shape checks (constant for an encoder) and the exporter's deprecation notice.
        warnings.filterwarnings("ignore", module=r"(torch|transformers|sentence_transformers)(\.|$)")
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(wrapper, tuple(example.values()), str(out / _GRAPH), **options)
    _verify(model, make_inputs, out / _GRAPH, backend)


@contextmanager
def _eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """Trace attention as plain matrix products, which ONNX Runtime and OpenVINO fuse into their own kernels.

    The traced SDPA call is left unfused by ONNX Runtime (about 15% slower on the CPU). A model
    that has no eager attention is exported as it is; the check after export covers both.
    """
    switched: list[tuple[Callable[[str], Any], str]] = []
    try:
        for module in model.modules():
            current = getattr(getattr(module, "config", None), "_attn_implementation", None)
            switch: Callable[[str], Any] | None = getattr(module, "set_attn_implementation", None)
            if switch is None or current in (None, "eager"):
                continue
            try:
                switch("eager")
            except (ValueError, ImportError, NotImplementedError):
                continue
            switched.append((switch, current))
        yield
    finally:
        for switch, implementation in reversed(switched):
            switch(implementation)


def _verify(model: SentenceTransformer, make_inputs: MakeInputs, graph: Path, backend: str) -> None:
    """Raise unless the graph gives the pipeline's vectors on a batch shaped unlike the export's."""
    probe = make_inputs(list(_PROBE_TEXTS))
    with torch.inference_mode():
        expected = model(dict(probe))["sentence_embedding"].float().numpy()
    build = _onnx_runtime if backend == "onnx" else _openvino_runtime
    runtime = build(import_runtime(backend), graph, "fp32", torch.get_num_threads())
    got = runtime.run({name: tensor.numpy() for name, tensor in probe.items()})
    scale = max(float(np.abs(expected).max()), 1e-6)
    error = float(np.abs(got - expected).max()) / scale if got.shape == expected.shape else float("inf")
    if not error <= _TOLERANCE:
        msg = (
            f"the ONNX export of this model does not reproduce it (relative difference {error:.2g} on a "
            f"batch of another shape, shapes {got.shape} and {expected.shape}); use backend='torch'"
        )
        raise RuntimeError(msg)


def _quantize(source: Path, out: Path) -> None:
    """Dynamic int8 quantisation of source's matrix multiplications (weights per channel)."""
    import_runtime("onnx")
    quantization = importlib.import_module("onnxruntime.quantization")
    prepare = importlib.import_module("onnxruntime.quantization.shape_inference").quant_pre_process
    external = any(p.name not in (_GRAPH, _MANIFEST) for p in source.parent.iterdir())
    prepared = out / "prepared.onnx"
    # ONNX Runtime's recommended preparation (shape inference, basic graph optimisation); its
    # symbolic shape inference does not handle these graphs, and is not needed for MatMul.
    prepare(source, prepared, skip_symbolic_shape=True, save_as_external_data=external)
    quantization.quantize_dynamic(
        prepared,
        out / _GRAPH,
        weight_type=quantization.QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=external,
    )
    for path in out.iterdir():
        if path.name.startswith("prepared.onnx"):
            path.unlink()


# --- runtimes -----------------------------------------------------------------------------------


def _onnx_runtime(ort: Any, graph: Path, precision: str, threads: int) -> GraphRuntime:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = tuple(node.name for node in session.get_inputs())

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        outputs: list[np.ndarray] = session.run(None, inputs)
        return outputs[0]

    return GraphRuntime("onnx", precision, graph, names, run)


def _openvino_runtime(ov: Any, graph: Path, precision: str, threads: int) -> GraphRuntime:
    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if precision == "bf16" and "BF16" not in capabilities:
        msg = (
            f"backend_precision='bf16' needs a CPU with bf16 instructions (AVX512_BF16 or AMX); "
            f"OpenVINO reports this CPU's capabilities as {capabilities}"
        )
        raise ValueError(msg)
    config = {
        "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
    }
    compiled = core.compile_model(str(graph), "CPU", config)
    names = tuple(port.get_any_name() for port in compiled.inputs)

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        request = compiled.create_infer_request()  # one per call: requests are not shared between threads
        return np.array(request.infer(inputs)[0], copy=True)

    return GraphRuntime("openvino", precision, graph, names, run)


__all__ = [
    "AUTO_BACKEND",
    "EXTRAS",
    "PRECISIONS",
    "Backend",
    "BackendPrecision",
    "BackendUnavailableError",
    "GraphRuntime",
    "backend_folder",
    "check_backend",
    "choose_backend",
    "default_backend_dir",
    "import_runtime",
    "load_runtime",
    "runtime_installed",
]
