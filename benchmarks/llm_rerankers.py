"""Pairs/s of BGE's LLM rerankers through ``BGEReranker``, beside a cross-encoder and across their settings.

``python -m benchmarks.llm_rerankers`` scores the same (query, passage) pairs with each contestant,
round-robin over ``--repeats`` (so noise on a shared machine falls on all alike), and prints a
Markdown table: pairs/s (median and best repeat), and the median time as a multiple of the
cross-encoder's and of its family's first row. In one run:

* ``cross-encoder``: an XLM-RoBERTa cross-encoder (the bge-reranker-base / -v2-m3 path);
* ``llm``: bge-reranker-v2-gemma (Gemma, the logit of "Yes" at the last token);
* ``llm-layerwise``: bge-reranker-v2-minicpm-layerwise, scored at its last layer (the default)
  and at a middle one (``cutoff_layers``: the forward pass stops there);
* ``llm-lightweight``: bge-reranker-v2.5-gemma2-lightweight with ``compress_ratio`` 1, 2 and 4
  (passage tokens merged before layer 8, FlagEmbedding's default ``compress_layers``, or before
  layer 2 in models of 8 layers or fewer; ``cutoff_layers`` left at its default, the last layer).

Every pair fills ``--max-length`` tokens: passages are longer and are cut (``windows=False``,
FlagEmbedding's truncation), so every contestant reads sequences of the same length.

Shapes (``--shape``), all random weights, which cost what real weights cost:

* ``tiny`` (default): the committed tiny checkpoints of tests/data (hidden 32-64, 2-6 layers), and a
  cross-encoder of the gemma checkpoint's size (XLM-R: hidden 32, 2 layers, 4 heads, intermediate 64).
  Seconds on a CPU; the time is mostly outside the matmuls, so it shows the engine's overheads and
  the settings' effect on the work done, not a real model's speed.
* ``small``: the same families at hidden 256, built on first use under benchmarks/.cache.
* ``real``: the real shapes: v2-gemma = Gemma-2B (hidden 2048, 18 layers, 8 heads, 1 kv head,
  head_dim 256, intermediate 16384, vocab 256000); v2-minicpm-layerwise = MiniCPM-2B (hidden 2304,
  40 layers, 36 heads, intermediate 5760, vocab 122753); v2.5-gemma2-lightweight = Gemma-2-9B
  (hidden 3584, 42 layers, 16 heads, 8 kv heads, intermediate 14336, vocab 256000); the
  cross-encoder is bge-reranker-v2-m3's XLM-R large (hidden 1024, 24 layers). For a GPU:
  ``python -m benchmarks.llm_rerankers --device cuda --dtype bf16 --shape real`` (default families
  there: the cross-encoder and v2-gemma; ``--families`` adds the others, 5 and 18 GB of weights).

Every model reads the tiny checkpoints' tokenizer (400 pieces; the real ones are not available
offline): token counts are what the table says, the cost per token is the real shape's.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.backends import load, machine, time_call
from benchmarks.models import CACHE
from bge_integrations import BGEReranker, TruncationWarning, clear_model_cache

TINY = Path(__file__).resolve().parents[1] / "tests" / "data"
TINY_FOLDERS = {
    "llm": TINY / "llm-reranker-gemma-tiny",
    "llm-layerwise": TINY / "llm-reranker-minicpm-layerwise-tiny",
    "llm-lightweight": TINY / "llm-reranker-gemma2-lightweight-tiny",
}
FAMILIES = ("llm", "llm-layerwise", "llm-lightweight")

# Config values by shape; unlisted keys keep the tiny checkpoint's. "cross-encoder" is XLM-R's config.
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "tiny": {
        "cross-encoder": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64},
    },
    "small": {
        "cross-encoder": {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "intermediate_size": 1024,
        },
        "llm": {
            "hidden_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 1,
            "head_dim": 64,
            "intermediate_size": 1024,
        },
        "llm-layerwise": {
            "hidden_size": 256,
            "num_hidden_layers": 8,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "intermediate_size": 640,
            "start_layer": 4,
        },
        "llm-lightweight": {
            "hidden_size": 256,
            "num_hidden_layers": 8,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 64,
            "intermediate_size": 1024,
            "query_pre_attn_scalar": 64,
            "sliding_window": 4096,
            "sliding_window_size": 4096,
            "start_layer": 4,
        },
    },
    "real": {
        "cross-encoder": {
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "intermediate_size": 4096,
            "vocab_size": 250002,
        },
        "llm": {
            "hidden_size": 2048,
            "num_hidden_layers": 18,
            "num_attention_heads": 8,
            "num_key_value_heads": 1,
            "head_dim": 256,
            "intermediate_size": 16384,
            "vocab_size": 256000,
        },
        "llm-layerwise": {
            "hidden_size": 2304,
            "num_hidden_layers": 40,
            "num_attention_heads": 36,
            "num_key_value_heads": 36,
            "intermediate_size": 5760,
            "vocab_size": 122753,
            "dim_model_base": 256,
            "start_layer": 8,
        },
        "llm-lightweight": {
            "hidden_size": 3584,
            "num_hidden_layers": 42,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 256,
            "intermediate_size": 14336,
            "vocab_size": 256000,
            "query_pre_attn_scalar": 256,
            "sliding_window": 4096,
            "sliding_window_size": 4096,
            "attn_logit_softcapping": 50.0,
            "final_logit_softcapping": 30.0,
            "start_layer": 8,
        },
    },
}


def model_folder(family: str, shape: str, *, dtype: str = "fp32", device: str = "cpu", cache: Path = CACHE) -> Path:
    """The checkpoint folder of a family ('cross-encoder' or an LLM family) in a shape, built on first use."""
    if shape == "tiny" and family in TINY_FOLDERS:
        return TINY_FOLDERS[family]
    folder = cache / "models" / f"llm-rerankers-{shape}-{dtype}" / family
    if (folder / "DONE").exists():
        return folder
    import torch

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    source = TINY_FOLDERS["llm" if family == "cross-encoder" else family]
    building = "cuda" if device.startswith("cuda") else "cpu"  # random init of billions of weights: on the GPU
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(building):
            model = _random_model(family, SHAPES[shape][family], source)
        model.to(torch_dtype).save_pretrained(folder)
    finally:
        torch.set_default_dtype(previous)
    del model
    # The hub's architectures name the family (our classes save their own names).
    saved = json.loads((folder / "config.json").read_text())
    original = json.loads((source / "config.json").read_text())
    if family != "cross-encoder":
        saved.update({key: original[key] for key in ("architectures", "auto_map", "model_type") if key in original})
    (folder / "config.json").write_text(json.dumps(saved, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    (folder / "DONE").touch()
    return folder


def _random_model(family: str, shape: dict[str, Any], source: Path) -> Any:
    if family == "cross-encoder":
        from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

        tokenizer = AutoTokenizer.from_pretrained(str(source))
        config = XLMRobertaConfig(
            **{"vocab_size": len(tokenizer), **shape},
            max_position_embeddings=1026,
            type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=1,
        )
        return XLMRobertaForSequenceClassification(config).eval()
    # The config built whole from the merged values, so that derived ones (Gemma-2's layer_types) follow.
    raw = {**json.loads((source / "config.json").read_text()), **shape}
    raw.pop("layer_types", None)
    if family == "llm":
        from transformers import GemmaConfig, GemmaForCausalLM

        return GemmaForCausalLM(GemmaConfig.from_dict(raw)).eval()
    from bge_integrations.core.llm_reranking_model import _model_class

    model_class = _model_class(family)  # type: ignore[arg-type]
    return model_class(model_class.config_class.from_dict(raw)).eval()


def make_pairs(
    tokenizer: Any, count: int, query_tokens: int, passage_tokens: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Distinct (query, passage) pairs of about that many tokens, from words the tokenizer reads as one token."""
    rng = random.Random(seed)
    words = sorted(
        piece[1:]
        for piece in tokenizer.get_vocab()
        if piece.startswith("\u0120") and piece[1:].isascii() and piece[1:].isalpha()
    )
    if len(words) < 2:
        msg = f"the tokenizer has too few whole-word pieces to build the pairs, got {words!r}"
        raise RuntimeError(msg)
    return [
        (" ".join(rng.choices(words, k=query_tokens)), " ".join(rng.choices(words, k=passage_tokens)))
        for _ in range(count)
    ]


def contestants(args: argparse.Namespace) -> dict[str, tuple[str, BGEReranker]]:
    """Row name -> (group, reranker); the first row of each group is the group's reference."""
    settings: dict[str, Any] = {
        "device": args.device,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "windows": False,
        "normalize": False,
    }
    if args.device != "cpu":
        settings["use_fp16"] = args.dtype != "fp32"
        if args.dtype == "fp16":
            settings["model_kwargs"] = {"dtype": "float16"}
    stored = "fp32" if args.device == "cpu" else args.dtype

    def folder(family: str) -> str:
        return str(model_folder(family, args.shape, dtype=stored, device=args.device))

    rows: dict[str, tuple[str, BGEReranker]] = {
        "cross-encoder (XLM-R)": ("cross-encoder", BGEReranker(folder("cross-encoder"), **settings))
    }
    for family in args.families:
        if args.shape == "tiny" and not (TINY_FOLDERS[family] / "model.safetensors").exists():
            print(f"({family} skipped: {TINY_FOLDERS[family]} is not there yet)")
            continue
        path = folder(family)
        if family == "llm":
            rows["llm (v2-gemma)"] = ("llm", BGEReranker(path, **settings))
        elif family == "llm-layerwise":
            config = json.loads(Path(path, "config.json").read_text())
            last, first = config["num_hidden_layers"], config["start_layer"]
            middle = (first + last) // 2
            rows[f"llm-layerwise, cutoff layer {last} (last, default)"] = (family, BGEReranker(path, **settings))
            rows[f"llm-layerwise, cutoff layer {middle}"] = (
                family,
                BGEReranker(path, cutoff_layers=middle, **settings),
            )
        else:
            layers = json.loads(Path(path, "config.json").read_text())["num_hidden_layers"]
            at = 8 if layers > 8 else 2  # FlagEmbedding's default (8), where the model is that deep
            for ratio in args.compress_ratios:
                name = f"llm-lightweight, compress_ratio {ratio} (from layer {at})"
                reranker = BGEReranker(path, compress_ratio=ratio, compress_layers=at, **settings)
                rows[name] = (family, reranker)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Time every contestant round-robin and print the table (and JSON with --output)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_rerankers", description=__doc__)
    parser.add_argument("--shape", choices=tuple(SHAPES), default="tiny")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, help="LLM families (default: all; real: llm)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="on CUDA (CPU: fp32)")
    parser.add_argument("--pairs", type=int, default=64, help="pairs scored per timed run")
    parser.add_argument("--max-length", type=int, default=512, help="tokens per pair (every pair fills it)")
    parser.add_argument("--query-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compress-ratios", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--output", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if args.families is None:
        args.families = ["llm"] if args.shape == "real" else list(FAMILIES)
    if args.device == "cpu" and args.dtype != "fp32":
        parser.error(f"--dtype {args.dtype} is for --device cuda; the CPU runs fp32")
    warnings.filterwarnings("ignore", category=TruncationWarning)
    import torch

    cuda = args.device.startswith("cuda")
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize()) if cuda else (lambda: None)
    calls = contestants(args)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(TINY_FOLDERS["llm"]))  # every model reads this one
    pairs = make_pairs(tokenizer, args.pairs, args.query_tokens, args.max_length)
    device_name = torch.cuda.get_device_name(0) if cuda else "CPU"
    print(f"Machine: {machine()}; device {device_name}")
    print(
        f"Shape: {args.shape}, random weights; {len(pairs)} pairs of {args.max_length} tokens (passages cut, "
        f"windows=False), batch size {args.batch_size}, {args.dtype}, {args.repeats} round-robin repeats\n"
    )
    for _, reranker in calls.values():  # load, warm up
        reranker.score_pairs(pairs[: args.batch_size])
    sync()
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}

    def run(name: str) -> None:
        calls[name][1].score_pairs(pairs)
        sync()

    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            times[name].append(time_call(lambda name=name: run(name)))
    print(f"Load average after the timed runs: {load()}\n")
    base = statistics.median(times[names[0]])
    first_of: dict[str, float] = {}
    results = []
    print("| reranker | pairs/s (median) | pairs/s (best) | time × cross-encoder | time × family's first row |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name in names:
        group = calls[name][0]
        median, best = statistics.median(times[name]), min(times[name])
        first_of.setdefault(group, median)
        row = {
            "name": name,
            "pairs_per_second": len(pairs) / median,
            "best_pairs_per_second": len(pairs) / best,
            "vs_cross_encoder": median / base,
            "vs_family_first": median / first_of[group],
            "seconds": times[name],
        }
        results.append(row)
        print(
            f"| {name} | {row['pairs_per_second']:.1f} | {row['best_pairs_per_second']:.1f} | "
            f"{row['vs_cross_encoder']:.3f} | {row['vs_family_first']:.3f} |"
        )
    if args.output:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        payload = {"machine": machine(), "device": device_name, "settings": settings, "results": results}
        args.output.write_text(json.dumps(payload, indent=2))
    clear_model_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
