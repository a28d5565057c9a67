"""Record FlagEmbedding's own lightweight Gemma2 reranker scores on a tiny random checkpoint.

This script is NOT part of the package and does not run in the project's venv. FlagEmbedding 1.3.5's
lightweight model code (``models/gemma_model.py``) does not even import under transformers 4.57
(``GEMMA2_START_DOCSTRING`` is gone; ``lightweight.py`` asks for transformers==4.46.0), so it runs in a
second throwaway venv that layers transformers 4.46.0 over /work/flagenv (see scripts/reference/README.md):

    /work/flagenv446/bin/python scripts/reference/make_llm_lightweight_reference.py

1. If tests/data/llm-reranker-gemma2-lightweight-tiny/ does not exist, it builds it with FlagEmbedding's
   OWN ``CostWiseGemmaConfig`` / ``CostWiseGemmaForCausalLM`` (random weights, seed 0, std 0.2; RMSNorm
   weights randomised too, so the ``1 + weight`` path matters), the shared tiny tokenizer
   (``llm_tiny.save_tokenizer``), safetensors weights, and a config.json with exactly the keys of the hub's
   BAAI/bge-reranker-v2.5-gemma2-lightweight config.json (``auto_map`` kept: loading with the class
   directly ignores it). An existing folder is never rebuilt: the committed files are the truth.
2. It runs ``LightWeightFlagLLMReranker(folder, devices="cpu")`` (FlagEmbedding turns ``use_fp16`` on
   because both flags are False, then off again on CPU before ``.half()``: the script asserts every
   forward ran in float32) and writes tests/data/llm_lightweight_reference.json (``--out`` to override).
   FlagEmbedding's class does not override transformers' SDPA default (unlike ``Gemma2PreTrainedModel``),
   so it runs ``Gemma2SdpaAttention``, which drops the attention-logit softcapping; the ``eager_*`` cases
   reload the same class with ``attn_implementation="eager"`` (softcapping applied) for comparison.

Deterministic: single thread, ``torch.use_deterministic_algorithms``, no network, no model hub.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from FlagEmbedding import LightWeightFlagLLMReranker
from FlagEmbedding.inference.reranker.decoder_only.models.gemma_config import CostWiseGemmaConfig
from FlagEmbedding.inference.reranker.decoder_only.models.gemma_model import CostWiseGemmaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_tiny import PAIRS, save_tokenizer, sha256

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "data" / "llm-reranker-gemma2-lightweight-tiny"
DEFAULT_OUT = REPO / "tests" / "data" / "llm_lightweight_reference.json"

# Keys (and order) of the hub config.json of BAAI/bge-reranker-v2.5-gemma2-lightweight; tiny values
# where the size differs. Real (gemma-2-9b based): hidden 3584, 16 heads, 8 kv heads, head_dim 256,
# 42 layers, intermediate 14336, vocab 256000, query_pre_attn_scalar 256, sliding_window 4096,
# attn_logit_softcapping 50.0, final_logit_softcapping 30.0, start_layer 8, layer_sep 1, layer_wise true.
TINY_CONFIG: dict[str, Any] = {
    "_name_or_path": "BAAI/bge-reranker-v2.5-gemma2-lightweight",
    "architectures": ["CostWiseGemmaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": 2.0,  # small, so that softcapping changes the eager scores (real: 50.0)
    "auto_map": {
        "AutoConfig": "BAAI/bge-reranker-v2.5-gemma2-lightweight--gemma_config.CostWiseGemmaConfig",
        "AutoModel": "BAAI/bge-reranker-v2.5-gemma2-lightweight--gemma_model.CostWiseGemmaModel",
        "AutoModelForCausalLM": "BAAI/bge-reranker-v2.5-gemma2-lightweight--gemma_model.CostWiseGemmaForCausalLM",
    },
    "bos_token_id": 2,
    "cache_implementation": "hybrid",
    "eos_token_id": 1,
    "final_logit_softcapping": 3.0,  # small, so that tanh bends the scores (real: 30.0)
    "head_dim": 16,  # heads * head_dim = 64 != hidden 32, as on the real model (16 * 256 != 3584)
    "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 32,
    "initializer_range": 0.2,
    "intermediate_size": 64,
    "layer_sep": 1,
    "layer_wise": True,
    "max_position_embeddings": 8192,
    "model_type": "cost_wise_gemma",
    "num_attention_heads": 4,
    "num_hidden_layers": 6,
    "num_key_value_heads": 2,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 24,  # != head_dim, so the scaling is checked (real: 256 = head_dim)
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "sliding_window": 16,  # shorter than the longest inputs, so the even layers' window matters
    "sliding_window_size": 16,
    "start_layer": 2,
    "torch_dtype": "float32",
    "transformers_version": "4.46.0",
    "use_cache": True,
    "vocab_size": 400,
}


def build_checkpoint(folder: Path) -> None:
    torch.manual_seed(0)
    skip = ("_name_or_path", "auto_map", "torch_dtype", "transformers_version", "architectures", "model_type")
    config = CostWiseGemmaConfig(**{k: v for k, v in TINY_CONFIG.items() if k not in skip})
    model = CostWiseGemmaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):  # Gemma2 RMSNorm scales by (1 + weight); zeros by default
                param.copy_(0.3 * torch.randn_like(param))
    folder.mkdir(parents=True)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2) + "\n")
    (folder / "generation_config.json").unlink(missing_ok=True)
    save_tokenizer(folder)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if not CHECKPOINT.exists():
        build_checkpoint(CHECKPOINT)
    files = sorted(p for p in CHECKPOINT.iterdir() if p.is_file())
    shas = {p.name: sha256(p) for p in files}

    reranker = LightWeightFlagLLMReranker(str(CHECKPOINT), devices="cpu", use_fp16=False, use_bf16=False)
    sdpa_model = reranker.model
    eager_model = CostWiseGemmaForCausalLM.from_pretrained(
        str(CHECKPOINT), torch_dtype=torch.float32, attn_implementation="eager"
    )
    calls: list[dict[str, Any]] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if module.dtype != torch.float32:
            raise RuntimeError(f"the reference must run in float32, got {module.dtype}")
        call = {k: kwargs[k].tolist() for k in ("input_ids", "attention_mask")}
        call.update({k: list(kwargs[k]) for k in ("query_lengths", "prompt_lengths")})
        call["attn_implementation"] = module.config._attn_implementation
        calls.append(call)

    sdpa_model.register_forward_pre_hook(hook, with_kwargs=True)
    eager_model.register_forward_pre_hook(hook, with_kwargs=True)

    n_layers = TINY_CONFIG["num_hidden_layers"]
    start = TINY_CONFIG["start_layer"]
    case_kwargs: list[tuple[str, dict[str, Any]]] = [
        ("default", {}),
        ("layer_middle", {"cutoff_layers": [4]}),
        ("layer_start", {"cutoff_layers": [start]}),
        ("layers_several", {"cutoff_layers": [start, 4, n_layers]}),
        ("layers_all", {"cutoff_layers": list(range(start, n_layers + 1))}),
        ("layers_last_explicit", {"cutoff_layers": [n_layers]}),
        # FlagEmbedding quirks, recorded for the compat layer:
        ("layers_unsorted", {"cutoff_layers": [5, 3]}),
        ("layers_some_out_of_range", {"cutoff_layers": [0, 3, n_layers + 1]}),
        # The model card's call (cutoff 28, compress 2 at [24, 40] of 42 layers), scaled to 6 layers.
        ("model_card", {"cutoff_layers": [4], "compress_ratio": 2, "compress_layers": [3, 5]}),
        ("compress_1", {"compress_ratio": 1, "compress_layers": [2]}),
        ("compress_2", {"compress_ratio": 2, "compress_layers": [2]}),
        ("compress_4", {"compress_ratio": 4, "compress_layers": [2]}),
        ("compress_8", {"compress_ratio": 8, "compress_layers": [2]}),
        ("compress_2_twice_layers", {"compress_ratio": 2, "compress_layers": [2, 4], "cutoff_layers": [2, 3, 4, 6]}),
        ("compress_4_with_layer_0", {"compress_ratio": 4, "compress_layers": [0, 3]}),
        ("compress_only_layer_0", {"compress_ratio": 2, "compress_layers": [0]}),
        ("compress_default_layers", {"compress_ratio": 2}),  # FlagEmbedding's default [8] > 6 layers: no-op
        ("compress_2_batch_size_1", {"compress_ratio": 2, "compress_layers": [3], "batch_size": 1}),
        ("compress_2_batch_size_4", {"compress_ratio": 2, "compress_layers": [3], "batch_size": 4}),
        (
            "prompt_custom",
            {"prompt": "Given a query A and a passage B, determine whether the passage contains an answer."},
        ),
        ("max_length_12", {"max_length": 12}),
        ("max_length_12_query_4", {"max_length": 12, "query_max_length": 4}),
        ("normalize", {"normalize": True}),
        ("normalize_layers", {"normalize": True, "cutoff_layers": [3, n_layers]}),
        ("batch_size_1", {"batch_size": 1}),
        ("batch_size_4", {"batch_size": 4}),
        ("batch_size_4_layers", {"batch_size": 4, "cutoff_layers": [3, 4]}),
    ]
    eager_cases: list[tuple[str, dict[str, Any]]] = [
        ("eager_default", {}),
        ("eager_layers_compress", {"cutoff_layers": [3, n_layers], "compress_ratio": 2, "compress_layers": [2]}),
    ]
    cases = []
    case_calls: dict[str, list[dict[str, Any]]] = {}
    for model, todo in ((sdpa_model, case_kwargs), (eager_model, eager_cases)):
        reranker.model = model
        for name, kwargs in todo:
            calls.clear()
            scores = reranker.compute_score([tuple(p) for p in PAIRS], **kwargs)
            case_calls[name] = list(calls)
            case = {
                "name": name,
                "kwargs": kwargs,
                "attn_implementation": model.config._attn_implementation,
                "scores": np.asarray(scores, dtype=np.float64).tolist(),
            }
            cases.append(case)
    reranker.model = sdpa_model

    tok = reranker.tokenizer
    detailed = reranker.get_detailed_inputs([tuple(p) for p in PAIRS])  # "A: " + query, "B: " + passage

    def inputs_of(name: str, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        """Map the (single, length-sorted) batch of a case back to pair order, padding stripped."""
        batches = case_calls[name]
        if len(batches) != 2:
            raise RuntimeError(f"{name}: expected a trial forward and one batch, got {len(batches)} calls")
        batch = batches[1]
        max_length = kwargs.get("max_length", 512)
        query_max_length = kwargs.get("query_max_length", max_length * 3 // 4)
        q_len = [len(tok(q, add_special_tokens=False)["input_ids"][:query_max_length]) for q, _ in detailed]
        p_len = [len(tok(p, add_special_tokens=False)["input_ids"][:max_length]) for _, p in detailed]
        order = np.argsort([-a - b for a, b in zip(q_len, p_len, strict=True)])
        inputs: list[dict[str, Any]] = [{} for _ in PAIRS]
        for row, pair_index in enumerate(order):
            mask = batch["attention_mask"][row]
            n = sum(mask)
            if any(mask[n:]) or not all(mask[:n]):
                raise RuntimeError("expected right padding")
            inputs[int(pair_index)] = {
                "input_ids": batch["input_ids"][row][:n],
                "query_length": int(batch["query_lengths"][row]),
                "prompt_length": int(batch["prompt_lengths"][row]),
            }
        for (query, _), item in zip(detailed, inputs, strict=True):
            query_ids = tok(query, add_special_tokens=False)["input_ids"][:query_max_length]
            if item["input_ids"][: len(query_ids) + 1] != [tok.bos_token_id, *query_ids]:
                raise RuntimeError(f"inputs not in pair order: {tok.decode(item['input_ids'])!r}")
        return inputs

    inputs = inputs_of("default", {})
    for case in cases:
        if case["name"] in ("prompt_custom", "max_length_12", "max_length_12_query_4"):
            case["inputs"] = inputs_of(case["name"], case["kwargs"])
    default_batch = case_calls["default"][1]

    if {sha256(p) for p in files} != set(shas.values()):
        raise RuntimeError("the checkpoint changed while the script ran")
    out = {
        "meta": {
            "flagembedding": metadata.version("FlagEmbedding"),
            "transformers": metadata.version("transformers"),
            "tokenizers": metadata.version("tokenizers"),
            "torch": metadata.version("torch"),
            "checkpoint_sha256": shas,
            "reranker": "LightWeightFlagLLMReranker(folder, devices='cpu', use_fp16=False, use_bf16=False)",
            "dtype": "float32 (asserted in a forward pre-hook)",
            "attn_implementation": sdpa_model.config._attn_implementation,
            "eager_cases": "CostWiseGemmaForCausalLM.from_pretrained(folder, attn_implementation='eager')",
            "parameters": sorted(n for n, _ in sdpa_model.named_parameters()),
            "padding_side": tok.padding_side,
            "default_cutoff_layers": [n_layers],
            "default_compress_layers": [8],
            "default_compress_ratio": 1,
            "default_padded_shape": [len(default_batch["input_ids"]), len(default_batch["input_ids"][0])],
        },
        "pairs": PAIRS,
        "cases": cases,
        "inputs": inputs,
    }
    text = "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in out.items()) + "\n}\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
