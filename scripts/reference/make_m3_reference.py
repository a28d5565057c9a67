"""Record FlagEmbedding's own BGE-M3 outputs on the tiny checkpoint in tests/data/bge-m3-tiny.

This script is NOT part of the package and does not run in the project's venv: FlagEmbedding needs
transformers < 5. Run it in a throwaway venv (see scripts/reference/README.md):

    /work/flagenv/bin/python scripts/reference/make_m3_reference.py

It writes tests/data/m3_reference.json (path overridable with --out). Everything runs on CPU, in float32,
single-threaded, with no network access. Floats are stored as Python floats of the float32 values that
FlagEmbedding returned (json round-trips them exactly; cast back to float32 to compare bit for bit).
"""

from __future__ import annotations

import argparse
import hashlib
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

import numpy as np
import torch
from FlagEmbedding import BGEM3FlagModel

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "data" / "bge-m3-tiny"
DEFAULT_OUT = REPO / "tests" / "data" / "m3_reference.json"

# Fixed inputs. The tiny Unigram vocabulary is (mostly) lowercase ASCII characters plus a few CJK
# characters and "▁" (id 4); uppercase letters, accents, most CJK and emoji are <unk> (id 3).
TEXTS: list[str] = [
    "hello world",  # 0 short
    "",  # 1 empty string -> [<s>, </s>]
    "the cat sat on the mat and the cat sat again",  # 2 repeated words (max per token id)
    "Hello, world! How are you? Fine; thanks... (really) - ok?!",  # 3 punctuation, uppercase -> unk
    "中文 测试 中文",  # 4 Chinese: known chars and unk chars
    "naïve café ☃ 🙂 señor",  # 5 characters outside the vocab (unk)
    "x",  # 6 single character
    "a quick brown fox jumps over the lazy dog, while the small bird sings near the old river bank.",  # 7 > 40 tokens
    "repeat repeat repeat repeat, repeat!",  # 8 the same word many times
    "2024-12-31: 100% of 3.14 is ~3.14; [ok] {yes} <no> #tag @user",  # 9 digits and symbols
]

# (query, passage) pairs for compute_score, of differing lengths.
PAIRS: list[tuple[str, str]] = [
    ("hello world", "hello world"),
    ("cat", "the cat sat on the mat and the cat sat again"),
    ("what is bge m3?", "bge m3 computes dense, sparse and multi-vector (colbert) embeddings for retrieval."),
    ("中文", "中文 测试 中文"),
    ("a quick brown fox jumps over the lazy dog, while the small bird sings", "fox"),
    ("repeat repeat", "repeat repeat repeat repeat, repeat!"),
    ("hello", ""),
    # A query token of this query has a negative similarity with every token of "no" (found by search):
    # with batch_size=4 "no" is padded, and the padded (zero) ColBERT rows raise that token's max to 0.
    ("yes yes hello -", "no"),
    ("Hello, world!", "naïve café ☃ 🙂 señor"),
]
PADDING_DEMO_PAIR = 7

LEXICAL_PAIRS: list[tuple[int, int]] = [(0, 0), (0, 3), (2, 8), (3, 9), (7, 2), (1, 3)]
COLBERT_PAIRS: list[tuple[int, int]] = [(0, 0), (0, 3), (2, 7), (7, 2), (4, 5), (1, 0), (0, 1)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("FlagEmbedding", "transformers", "torch", "tokenizers", "numpy", "sentence-transformers"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def to_py(value: Any) -> Any:
    """Convert numpy / torch values to plain JSON values, keeping float32 values exact."""
    if isinstance(value, torch.Tensor):
        return to_py(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return value.tolist()  # float32 -> Python float (exact)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, dict):
        return [[str(k), to_py(v)] for k, v in value.items()]  # ordered pairs
    if isinstance(value, (list, tuple)):
        return [to_py(v) for v in value]
    return value


def type_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def encode_record(model: BGEM3FlagModel, texts: list[str], **kwargs: Any) -> dict[str, Any]:
    out = model.encode(texts, return_dense=True, return_sparse=True, return_colbert_vecs=True, **kwargs)
    lexical = out["lexical_weights"]
    return {
        "call": {
            "method": "encode",
            **kwargs,
            "return_dense": True,
            "return_sparse": True,
            "return_colbert_vecs": True,
        },
        "dense_vecs": to_py(out["dense_vecs"]),
        "lexical_weights": [to_py(lw) for lw in lexical],
        "colbert_vecs": [to_py(c) for c in out["colbert_vecs"]],
        "colbert_shapes": [list(c.shape) for c in out["colbert_vecs"]],
        "python_types": {
            "dense_vecs": f"{type_name(out['dense_vecs'])} {out['dense_vecs'].dtype} {list(out['dense_vecs'].shape)}",
            "lexical_weights_item": type_name(lexical[0]),
            "lexical_weight_value": next((type_name(v) for lw in lexical for v in lw.values()), "none"),
            "colbert_vecs_item": f"{type_name(out['colbert_vecs'][0])} {out['colbert_vecs'][0].dtype}",
        },
    }


def max_abs_diff(a: list[Any], b: list[Any]) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def compare_encodes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    dense = max_abs_diff(a["dense_vecs"], b["dense_vecs"])
    colbert = max(max_abs_diff(x, y) if x else 0.0 for x, y in zip(a["colbert_vecs"], b["colbert_vecs"], strict=True))
    keys_same = [
        [k for k, _ in x] == [k for k, _ in y] for x, y in zip(a["lexical_weights"], b["lexical_weights"], strict=True)
    ]
    lex = 0.0
    for x, y in zip(a["lexical_weights"], b["lexical_weights"], strict=True):
        dx, dy = dict(x), dict(y)
        for k in set(dx) | set(dy):
            lex = max(lex, abs(dx.get(k, 0.0) - dy.get(k, 0.0)))
    return {
        "dense_max_abs_diff": dense,
        "colbert_max_abs_diff": colbert,
        "lexical_max_abs_diff": lex,
        "lexical_key_order_identical": all(keys_same),
        "bitwise_identical": a["dense_vecs"] == b["dense_vecs"]
        and a["colbert_vecs"] == b["colbert_vecs"]
        and a["lexical_weights"] == b["lexical_weights"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    torch.manual_seed(0)  # only the unused, freshly initialised XLM-R pooler is random
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    files = sorted(p for p in CHECKPOINT.rglob("*") if p.is_file())
    hashes_before = {str(p.relative_to(CHECKPOINT)): sha256(p) for p in files}
    model = BGEM3FlagModel(str(CHECKPOINT), use_fp16=False, devices="cpu")
    tok = model.tokenizer

    ref: dict[str, Any] = {
        "meta": {
            "description": (
                "FlagEmbedding BGEM3FlagModel (M3Embedder) outputs on tests/data/bge-m3-tiny, made by "
                "scripts/reference/make_m3_reference.py; see scripts/reference/README.md."
            ),
            "versions": versions(),
            "checkpoint": "tests/data/bge-m3-tiny",
            "checkpoint_sha256": hashes_before,
            "model_kwargs": {"use_fp16": False, "devices": "cpu"},
            "model_defaults": {
                "normalize_embeddings": True,
                "pooling_method": model.pooling_method,
                "batch_size": model.batch_size,
                "query_max_length": model.query_max_length,
                "passage_max_length": model.passage_max_length,
                "return_dense": model.return_dense,
                "return_sparse": model.return_sparse,
                "return_colbert_vecs": model.return_colbert_vecs,
                "query_instruction_for_retrieval": model.query_instruction_for_retrieval,
            },
            "torch_threads": 1,
            "floats": "Python floats of float32 values (exact); compare after casting to float32.",
            "dicts": "every dict FlagEmbedding returned is stored as a list of [key, value] pairs in its order.",
        },
        "tokenizer": {
            "class": type_name(tok),
            "padding_side": tok.padding_side,
            "special_tokens_map": dict(tok.special_tokens_map),
            "special_ids": {
                "cls": tok.cls_token_id,
                "eos": tok.eos_token_id,
                "pad": tok.pad_token_id,
                "unk": tok.unk_token_id,
                "mask": tok.mask_token_id,
            },
            "lexical_excluded_ids": sorted(
                {
                    tok.convert_tokens_to_ids(tok.special_tokens_map[t])
                    for t in ("cls_token", "eos_token", "pad_token", "unk_token")
                }
            ),
        },
        "texts": TEXTS,
        "input_ids": {
            # exactly as encode_single_device tokenizes: tokenizer(batch, truncation=True, max_length=...)
            "max_length_512": tok(TEXTS, truncation=True, max_length=512)["input_ids"],
            "max_length_8": tok(TEXTS, truncation=True, max_length=8)["input_ids"],
        },
        "decoded_single_ids": {},
    }

    # ---- encode -------------------------------------------------------------------------------------
    enc: dict[str, Any] = {
        "bs3_ml512": encode_record(model, TEXTS, batch_size=3, max_length=512),
        "bs1_ml512": encode_record(model, TEXTS, batch_size=1, max_length=512),
        "bs3_ml8": encode_record(model, TEXTS, batch_size=3, max_length=8),
    }
    ref["encode"] = enc
    ref["encode_comparisons"] = {"bs3_ml512_vs_bs1_ml512": compare_encodes(enc["bs3_ml512"], enc["bs1_ml512"])}

    # relu(sparse_linear(h)) per token, one text at a time (no padding), to check the max / order rules
    raw_weights = []
    with torch.no_grad():
        for text in TEXTS:
            batch = tok([text], truncation=True, max_length=512, return_tensors="pt")
            out = model.model(batch, return_dense=False, return_sparse=True)
            raw_weights.append(to_py(out["sparse_vecs"].squeeze(-1)[0]))
    ref["raw_token_weights"] = {
        "description": "relu(sparse_linear(last_hidden_state)) for every token of input_ids.max_length_512, "
        "texts run one at a time; lexical_weights keep, per id not in lexical_excluded_ids, the max over its "
        "positions, keyed in order of the first position whose weight is > 0",
        "weights": raw_weights,
    }

    # a single string input (FlagEmbedding unwraps the batch dimension)
    single = model.encode(
        TEXTS[3], batch_size=3, max_length=512, return_dense=True, return_sparse=True, return_colbert_vecs=True
    )
    ref["encode_single_string"] = {
        "call": {"method": "encode", "sentences": "texts[3] as a bare str", "batch_size": 3, "max_length": 512},
        "dense_vecs": to_py(single["dense_vecs"]),
        "dense_shape": list(single["dense_vecs"].shape),
        "lexical_weights": to_py(single["lexical_weights"]),
        "colbert_shape": list(single["colbert_vecs"].shape),
        "equals_batched_bs1": to_py(single["dense_vecs"]) == enc["bs1_ml512"]["dense_vecs"][3],
    }

    # ---- convert_id_to_token ------------------------------------------------------------------------
    raw = model.encode(TEXTS, batch_size=3, max_length=512, return_dense=False, return_sparse=True)["lexical_weights"]
    ref["convert_id_to_token"] = {
        "call": "model.convert_id_to_token(encode(texts, batch_size=3, max_length=512).lexical_weights)",
        "result": [to_py(d) for d in model.convert_id_to_token(raw)],
        "single_dict_call_returns": type_name(model.convert_id_to_token(raw[3])),
    }
    ids_seen = sorted({int(k) for d in raw for k in d} | {0, 1, 2, 3, 4, 205})
    ref["decoded_single_ids"] = {str(i): tok.decode([i]) for i in ids_seen}

    # ---- compute_lexical_matching_score / colbert_score ----------------------------------------------
    lexical_pairs = []
    for i, j in LEXICAL_PAIRS:
        s = model.compute_lexical_matching_score(raw[i], raw[j])
        lexical_pairs.append({"i": i, "j": j, "score": float(s), "python_type": type_name(s)})
    matrix = model.compute_lexical_matching_score(raw, raw)
    ref["compute_lexical_matching_score"] = {
        "inputs": "lexical_weights of encode['bs3_ml512'] indexed by text number",
        "pairs": lexical_pairs,
        "list_vs_list": {"rows": "all texts", "cols": "all texts", "dtype": str(matrix.dtype), "scores": to_py(matrix)},
    }

    colbert = model.encode(TEXTS, batch_size=3, max_length=512, return_dense=False, return_colbert_vecs=True)[
        "colbert_vecs"
    ]
    colbert_pairs = []
    for i, j in COLBERT_PAIRS:
        s = model.colbert_score(colbert[i], colbert[j])
        colbert_pairs.append({"i": i, "j": j, "score": float(s), "python_type": type_name(s)})
    ref["colbert_score"] = {
        "inputs": "colbert_vecs of encode['bs3_ml512'] indexed by text number (q=i, p=j)",
        "pairs": colbert_pairs,
        "matrix": [
            [float(model.colbert_score(colbert[i], colbert[j])) for j in range(len(TEXTS))] for i in range(len(TEXTS))
        ],
    }

    # ---- compute_score -------------------------------------------------------------------------------
    runs = []
    for lengths in (None, 8):
        for weights in (None, [0.4, 0.2, 0.4]):
            for batch_size in (1, 4):
                kwargs: dict[str, Any] = {"batch_size": batch_size, "weights_for_different_modes": weights}
                if lengths is not None:
                    kwargs["max_query_length"] = lengths
                    kwargs["max_passage_length"] = lengths
                scores = model.compute_score(PAIRS, **kwargs)
                runs.append({"call": kwargs, "scores": {k: to_py(v) for k, v in scores.items()}})
    single_pair = model.compute_score(PAIRS[2])
    demo_q, demo_p = PAIRS[PADDING_DEMO_PAIR]
    demo_vecs = model.encode([demo_q, demo_p], batch_size=1, return_dense=False, return_colbert_vecs=True)[
        "colbert_vecs"
    ]
    demo_sims = demo_vecs[0] @ demo_vecs[1].T
    ref["compute_score"] = {
        "pairs": [list(p) for p in PAIRS],
        "runs": runs,
        "single_pair_call": {"pair": list(PAIRS[2]), "scores": {k: to_py(v) for k, v in single_pair.items()}},
        "colbert_padding_demo": {
            "pair_index": PADDING_DEMO_PAIR,
            "per_query_token_max_similarity": to_py(demo_sims.max(axis=1)),
            "colbert_score_of_encode_outputs": float(model.colbert_score(demo_vecs[0], demo_vecs[1])),
            "compute_score_colbert": {
                f"batch_size_{run['call']['batch_size']}": run["scores"]["colbert"][PADDING_DEMO_PAIR]
                for run in runs[:2]
            },
        },
    }

    # ---- encode_queries / encode_corpus --------------------------------------------------------------
    two = [TEXTS[0], TEXTS[2]]
    kw = {"return_dense": True, "return_sparse": True, "return_colbert_vecs": True}
    q = model.encode_queries(two, **kw)
    c = model.encode_corpus(two, **kw)
    e = model.encode(two, **kw)
    ref["encode_queries_corpus"] = {
        "texts": two,
        "call_kwargs": kw,
        "encode_queries": {
            "dense_vecs": to_py(q["dense_vecs"]),
            "lexical_weights": [to_py(d) for d in q["lexical_weights"]],
            "colbert_vecs": [to_py(x) for x in q["colbert_vecs"]],
        },
        "encode_corpus": {
            "dense_vecs": to_py(c["dense_vecs"]),
            "lexical_weights": [to_py(d) for d in c["lexical_weights"]],
            "colbert_vecs": [to_py(x) for x in c["colbert_vecs"]],
        },
        "queries_equal_plain_encode": to_py(q["dense_vecs"]) == to_py(e["dense_vecs"])
        and [to_py(d) for d in q["lexical_weights"]] == [to_py(d) for d in e["lexical_weights"]],
        "corpus_equal_plain_encode": to_py(c["dense_vecs"]) == to_py(e["dense_vecs"])
        and [to_py(d) for d in c["lexical_weights"]] == [to_py(d) for d in e["lexical_weights"]],
    }

    hashes_after = {str(p.relative_to(CHECKPOINT)): sha256(p) for p in sorted(CHECKPOINT.rglob("*")) if p.is_file()}
    if hashes_after != hashes_before:
        msg = f"the checkpoint changed while this script ran: {hashes_before} -> {hashes_after}"
        raise RuntimeError(msg)
    # one top-level key per line keeps the file greppable without inflating it
    lines = ["{"]
    for n, (key, value) in enumerate(ref.items()):
        sep = "," if n < len(ref) - 1 else ""
        lines.append(
            f"{json.dumps(key)}:{json.dumps(value, ensure_ascii=False, separators=(',', ':'), allow_nan=False)}{sep}"
        )
    lines.append("}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == json.loads(json.dumps(ref))
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode()):,} bytes) with {sys.executable}")


if __name__ == "__main__":
    main()
