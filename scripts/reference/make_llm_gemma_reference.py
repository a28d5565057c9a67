"""Record FlagEmbedding's own bge-reranker-v2-gemma scores on a tiny Gemma checkpoint.

This script is NOT part of the package and does not run in the project's venv: FlagEmbedding needs
transformers < 5. Run it in the throwaway venv (see scripts/reference/README.md):

    /work/flagenv/bin/python scripts/reference/make_llm_gemma_reference.py

The first run builds ``tests/data/llm-reranker-gemma-tiny`` (a random ``GemmaForCausalLM`` with
transformers' own class, as bge-reranker-v2-gemma is, and the shared tiny tokenizer of
``llm_tiny.py``); later runs keep the committed folder. It then scores fixed pairs with
FlagEmbedding 1.3.5's ``FlagLLMReranker`` (``BaseLLMReranker``) on CPU in float32, single-threaded,
and writes ``tests/data/llm_gemma_reference.json`` (path overridable with --out): the scores of each
``compute_score`` call, and the input ids each pair was given to the model with (captured by a
forward pre-hook), in pair order.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from FlagEmbedding import FlagLLMReranker
from transformers import GemmaConfig, GemmaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_tiny import save_tokenizer, sha256

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "data" / "llm-reranker-gemma-tiny"
DEFAULT_OUT = REPO / "tests" / "data" / "llm_gemma_reference.json"

LONG = (
    "retrieval augmented generation ranks passages for a question with a reranker model. "
    "the cat sat on the mat and the cat sat again. Paris is the capital of France. "
) * 3

PAIRS: list[tuple[str, str]] = [
    ("what is a panda?", "The giant panda is a bear native to China."),
    ("what is a panda?", "hi"),
    ("what is a panda?", ""),
    ("capital of France", "Paris is the capital of France. Berlin is the capital of Germany."),
    ("hello world", "hello world, how are you? fine thanks."),
    ("a quick brown fox jumps over the lazy dog, while the small bird sings", "fox"),
    ("reranker", LONG),
    ("naïve café ☃ 🙂", "señor 中文 测试"),
    ("Yes or No?", "Yes No Yes No"),
    ("capital of France", LONG),
]

CUSTOM_PROMPT = "Does passage B answer query A? Answer 'Yes' or 'No'."

# compute_score keyword arguments, one recorded call each.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("default", {}),
    ("batch_size_1", {"batch_size": 1}),
    ("batch_size_4", {"batch_size": 4}),
    ("normalize", {"normalize": True}),
    ("custom_prompt", {"prompt": CUSTOM_PROMPT}),
    ("max_length_32", {"max_length": 32}),
    ("query_max_length_4", {"query_max_length": 4, "max_length": 48}),
]


def build(folder: Path) -> None:
    """A random GemmaForCausalLM of two layers with the tiny tokenizer (tied embeddings, as Gemma)."""
    torch.manual_seed(0)
    tokenizer = save_tokenizer(folder)
    config = GemmaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=8,
        max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=0.2,
        torch_dtype="float32",
    )
    model = GemmaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)


def checkpoint_hashes() -> dict[str, str]:
    return {str(p.relative_to(CHECKPOINT)): sha256(p) for p in sorted(CHECKPOINT.rglob("*")) if p.is_file()}


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("FlagEmbedding", "transformers", "torch", "tokenizers", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


class InputRecorder:
    """Forward pre-hook keeping every row the model is given (padding stripped), in call order."""

    def __init__(self) -> None:
        self.rows: list[list[int]] = []

    def __call__(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        for row, row_mask in zip(ids.tolist(), mask.tolist(), strict=True):
            self.rows.append([t for t, m in zip(row, row_mask, strict=True) if m])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    if not CHECKPOINT.exists():
        build(CHECKPOINT)
    before = checkpoint_hashes()

    reranker = FlagLLMReranker(str(CHECKPOINT), use_fp16=False, devices="cpu")
    tokenizer = reranker.tokenizer
    cases = []
    for name, kwargs in CASES:
        scores = reranker.compute_score([list(p) for p in PAIRS], **kwargs)
        cases.append({"name": name, "kwargs": kwargs, "scores": [float(s) for s in scores]})

    # The input ids of each pair (default settings): one pair per call, so that rows map to pairs.
    recorder = InputRecorder()
    handle = reranker.model.register_forward_pre_hook(recorder, with_kwargs=True)
    inputs = []
    for pair in PAIRS:
        recorder.rows.clear()
        reranker.compute_score([list(pair)])
        inputs.append({"input_ids": recorder.rows[-1]})  # the first call is the batch-size probe
    handle.remove()

    # FlagEmbedding with a left-padding tokenizer: it reads logits[:, -1] but passes no position ids,
    # so a row's positions shift with its padding, and its score depends on the batch it is in.
    tokenizer.padding_side = "left"
    left = {
        f"left_padding_batch_size_{size}": [
            float(s) for s in reranker.compute_score([list(p) for p in PAIRS], batch_size=size)
        ]
        for size in (1, 4)
    }
    tokenizer.padding_side = "right"

    if checkpoint_hashes() != before:
        msg = "the checkpoint changed while the script ran"
        raise RuntimeError(msg)
    ref = {
        "meta": {
            "description": (
                "FlagEmbedding FlagLLMReranker (BaseLLMReranker) scores on tests/data/llm-reranker-gemma-tiny, "
                "made by scripts/reference/make_llm_gemma_reference.py; see scripts/reference/README.md."
            ),
            "versions": versions(),
            "checkpoint": "tests/data/llm-reranker-gemma-tiny",
            "checkpoint_sha256": before,
            "model_kwargs": {"use_fp16": False, "devices": "cpu"},
            "model_defaults": {
                "batch_size": reranker.batch_size,
                "max_length": reranker.max_length,
                "query_max_length": reranker.query_max_length,
                "normalize": reranker.normalize,
                "query_instruction_for_rerank": reranker.query_instruction_for_rerank,
                "passage_instruction_for_rerank": reranker.passage_instruction_for_rerank,
            },
            "yes_id": reranker.yes_loc,
            "padding_side": "right",
            "torch_threads": 1,
        },
        "pairs": [list(p) for p in PAIRS],
        "cases": cases,
        "left_padding": left,
        "inputs": inputs,
    }
    args.out.write_text(json.dumps(ref, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
