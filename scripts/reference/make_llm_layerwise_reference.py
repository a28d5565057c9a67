"""Record FlagEmbedding's own layerwise MiniCPM reranker scores on a tiny random checkpoint.

This script is NOT part of the package and does not run in the project's venv: FlagEmbedding needs
transformers < 5. Run it in the throwaway venv (see scripts/reference/README.md):

    /work/flagenv/bin/python scripts/reference/make_llm_layerwise_reference.py

1. If tests/data/llm-reranker-minicpm-layerwise-tiny/ does not exist, it builds it with FlagEmbedding's
   OWN ``LayerWiseMiniCPMConfig`` / ``LayerWiseMiniCPMForCausalLM`` (random weights, seed 0; RMSNorm
   weights randomised too), the shared tiny tokenizer (``llm_tiny.save_tokenizer``), safetensors
   weights, and a config.json with exactly the keys of the hub's BAAI/bge-reranker-v2-minicpm-layerwise
   config.json (``auto_map`` kept: loading with the class directly ignores it). An existing folder is
   never rebuilt: the committed files are the truth.
2. It runs ``LayerWiseFlagLLMReranker(folder, devices="cpu")`` (FlagEmbedding turns ``use_fp16`` on
   because both flags are False, then off again on CPU before ``.half()``: the script asserts every
   forward ran in float32) and writes tests/data/llm_layerwise_reference.json (``--out`` to override).

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
from FlagEmbedding import LayerWiseFlagLLMReranker
from FlagEmbedding.inference.reranker.decoder_only.models.configuration_minicpm_reranker import (
    LayerWiseMiniCPMConfig,
)
from FlagEmbedding.inference.reranker.decoder_only.models.modeling_minicpm_reranker import (
    LayerWiseMiniCPMForCausalLM,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_tiny import PAIRS, save_tokenizer, sha256

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "data" / "llm-reranker-minicpm-layerwise-tiny"
DEFAULT_OUT = REPO / "tests" / "data" / "llm_layerwise_reference.json"

# Keys (and order) of the hub config.json of BAAI/bge-reranker-v2-minicpm-layerwise; tiny values where
# the size differs. Real: hidden 2304, 36 heads (36 kv), 40 layers, intermediate 5760, vocab 122753,
# start_layer 8, head_type "simple", head_multi true, dim_model_base 256, scale_emb 12, scale_depth 1.4.
TINY_CONFIG: dict[str, Any] = {
    "_name_or_path": "BAAI/bge-reranker-v2-minicpm-layerwise",
    "architectures": ["LayerWiseMiniCPMForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "BAAI/bge-reranker-v2-minicpm-layerwise--configuration_minicpm_reranker.LayerWiseMiniCPMConfig",
        "AutoModel": "BAAI/bge-reranker-v2-minicpm-layerwise--modeling_minicpm_reranker.LayerWiseMiniCPMModel",
        "AutoModelForCausalLM": (
            "BAAI/bge-reranker-v2-minicpm-layerwise--modeling_minicpm_reranker.LayerWiseMiniCPMForCausalLM"
        ),
    },
    "bos_token_id": 2,  # the tiny tokenizer's <bos> (real: 1)
    "dim_model_base": 16,
    "eos_token_id": 1,  # the tiny tokenizer's <eos> (real: 2)
    "head_multi": True,
    "head_type": "simple",
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.1,
    "intermediate_size": 96,
    "max_position_embeddings": 2048,
    "model_type": "minicpm",
    "num_attention_heads": 4,
    "num_hidden_layers": 6,
    "num_key_value_heads": 2,  # grouped-query attention path (real: 36 = 36 heads)
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "scale_depth": 1.4,
    "scale_emb": 12,
    "start_layer": 2,
    "torch_dtype": "float32",
    "transformers_version": "4.57.6",
    "use_cache": False,
    "vocab_size": 400,
}


def build_checkpoint(folder: Path) -> None:
    torch.manual_seed(0)
    kwargs = {k: v for k, v in TINY_CONFIG.items() if k not in ("_name_or_path", "auto_map", "torch_dtype")}
    kwargs.pop("transformers_version")
    config = LayerWiseMiniCPMConfig(**kwargs)
    model = LayerWiseMiniCPMForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("layernorm.weight") or name == "model.norm.weight":
                param.copy_(1.0 + 0.2 * torch.randn_like(param))
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

    reranker = LayerWiseFlagLLMReranker(str(CHECKPOINT), devices="cpu", use_fp16=False, use_bf16=False)
    model = reranker.model
    loaded = {n for n, _ in model.named_parameters()}
    calls: list[dict[str, list[list[int]]]] = []

    def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if module.dtype != torch.float32:
            raise RuntimeError(f"the reference must run in float32, got {module.dtype}")
        calls.append({k: kwargs[k].tolist() for k in ("input_ids", "attention_mask")})

    model.register_forward_pre_hook(hook, with_kwargs=True)

    n_layers = TINY_CONFIG["num_hidden_layers"]
    start = TINY_CONFIG["start_layer"]
    case_kwargs: list[tuple[str, dict[str, Any]]] = [
        ("default", {}),
        ("layer_middle", {"cutoff_layers": [4]}),
        ("layer_start", {"cutoff_layers": [start]}),
        ("layers_several", {"cutoff_layers": [start, 4, n_layers]}),
        ("layers_all", {"cutoff_layers": list(range(start, n_layers + 1))}),
        ("layers_last_explicit", {"cutoff_layers": [n_layers]}),
        # FlagEmbedding quirks, recorded for the compat layer (see README):
        ("layers_unsorted", {"cutoff_layers": [5, 3]}),
        ("layers_some_out_of_range", {"cutoff_layers": [0, 3, n_layers + 1]}),
        ("prompt_custom", {"prompt": "Predict whether passage B contains an answer to query A."}),
        ("max_length_12", {"max_length": 12}),
        ("max_length_12_query_4", {"max_length": 12, "query_max_length": 4}),
        ("normalize", {"normalize": True}),
        ("normalize_layers", {"normalize": True, "cutoff_layers": [3, n_layers]}),
        ("batch_size_1", {"batch_size": 1}),
        ("batch_size_4", {"batch_size": 4}),
        ("batch_size_4_layers", {"batch_size": 4, "cutoff_layers": [3, 4]}),
    ]
    cases = []
    default_calls: list[dict[str, list[list[int]]]] = []
    for name, kwargs in case_kwargs:
        calls.clear()
        scores = reranker.compute_score([tuple(p) for p in PAIRS], **kwargs)
        if name == "default":
            default_calls = list(calls)
        cases.append({"name": name, "kwargs": kwargs, "scores": np.asarray(scores, dtype=np.float64).tolist()})

    # The default case: one trial forward (batch-size probe), then one batch of all 10 pairs (batch 128),
    # in descending length order (FlagEmbedding's np.argsort of -(query + passage lengths)).
    if len(default_calls) != 2:
        raise RuntimeError(f"expected a trial forward and one batch, got {len(default_calls)} calls")
    batch = default_calls[1]
    tok = reranker.tokenizer
    detailed = reranker.get_detailed_inputs([tuple(p) for p in PAIRS])  # "A: " + query, "B: " + passage
    q_len = [len(tok(q, add_special_tokens=False)["input_ids"][:384]) for q, _ in detailed]
    p_len = [len(tok(p, add_special_tokens=False)["input_ids"][:512]) for _, p in detailed]
    order = np.argsort([-a - b for a, b in zip(q_len, p_len, strict=True)])
    inputs: list[dict[str, Any]] = [{} for _ in PAIRS]
    for row, pair_index in enumerate(order):
        n = sum(batch["attention_mask"][row])
        if any(batch["attention_mask"][row][n:]) or not all(batch["attention_mask"][row][:n]):
            raise RuntimeError("expected right padding")
        inputs[int(pair_index)] = {"input_ids": batch["input_ids"][row][:n]}
    for (query, _), item in zip(detailed, inputs, strict=True):
        if not tok.decode(item["input_ids"]).startswith(tok.bos_token + query):
            raise RuntimeError(f"inputs not in pair order: {tok.decode(item['input_ids'])!r}")

    if {sha256(p) for p in files} != set(shas.values()):
        raise RuntimeError("the checkpoint changed while the script ran")
    out = {
        "meta": {
            "flagembedding": metadata.version("FlagEmbedding"),
            "transformers": metadata.version("transformers"),
            "torch": metadata.version("torch"),
            "checkpoint_sha256": shas,
            "reranker": "LayerWiseFlagLLMReranker(folder, devices='cpu', use_fp16=False, use_bf16=False)",
            "dtype": "float32 (asserted in a forward pre-hook)",
            "parameters": sorted(loaded),
            "padding_side": tok.padding_side,
            "default_cutoff_layers": [n_layers],
            "default_padded_shape": [len(batch["input_ids"]), len(batch["input_ids"][0])],
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
