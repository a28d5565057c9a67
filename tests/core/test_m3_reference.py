"""The core's bge-m3 outputs equal FlagEmbedding's own computation on the same checkpoint.

tests/data/m3_reference.json holds what FlagEmbedding 1.3.5's ``BGEM3FlagModel`` (transformers 4.57,
which FlagEmbedding needs) returned for tests/data/bge-m3-tiny; it was made by
scripts/reference/make_m3_reference.py in a separate venv (scripts/reference/README.md). Bounds
from the issue: dense 1e-5; lexical weights, ColBERT vectors and combined scores 1e-4.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_integrations import BGEM3Embedder, BGEM3Reranker
from bge_integrations.core.m3_scoring import colbert_score, combined_score, dense_score, lexical_score

REFERENCE = Path(__file__).parents[1] / "data" / "m3_reference.json"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text())
    return data


def test_reference_was_computed_on_the_committed_checkpoint(reference: dict[str, Any], tiny_m3_path: str) -> None:
    for name, digest in reference["meta"]["checkpoint_sha256"].items():
        assert hashlib.sha256((Path(tiny_m3_path) / name).read_bytes()).hexdigest() == digest, name


def test_tokenization_equals_flagembeddings(reference: dict[str, Any], tiny_m3_path: str) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_m3_path)
    for key, length in (("max_length_512", 512), ("max_length_8", 8)):
        ours = [tokenizer(text, truncation=True, max_length=length)["input_ids"] for text in reference["texts"]]
        assert ours == reference["input_ids"][key]


@pytest.mark.parametrize(("run", "settings"), [("bs3_ml512", {}), ("bs3_ml8", {"max_length": 8})])
def test_encode_equals_flagembeddings(
    reference: dict[str, Any], tiny_m3_path: str, run: str, settings: dict[str, Any]
) -> None:
    expected = reference["encode"][run]
    texts = reference["texts"]
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu", batch_size=3, **settings)
    out = m3.encode_documents(texts, outputs="dense,sparse,colbert")
    np.testing.assert_allclose(out.dense, np.asarray(expected["dense_vecs"], dtype=np.float32), atol=1e-5, rtol=0)
    for ours, theirs in zip(out.sparse, expected["lexical_weights"], strict=True):
        assert [str(i) for i in ours.indices] == [key for key, _ in theirs]  # same ids, same order
        np.testing.assert_allclose(ours.values, [value for _, value in theirs], atol=1e-4, rtol=0)
    for ours, theirs in zip(out.colbert, expected["colbert_vecs"], strict=True):
        np.testing.assert_allclose(ours, np.asarray(theirs, dtype=np.float32).reshape(ours.shape), atol=1e-4, rtol=0)
        assert ours.shape == np.asarray(theirs).reshape(-1, 32).shape


def test_queries_are_encoded_as_flagembedding_encodes_them(reference: dict[str, Any], tiny_m3_path: str) -> None:
    case = reference["encode_queries_corpus"]
    out = BGEM3Embedder(tiny_m3_path, device="cpu").encode_queries(case["texts"], outputs="dense,sparse,colbert")
    expected = case["encode_queries"]
    np.testing.assert_allclose(out.dense, np.asarray(expected["dense_vecs"], dtype=np.float32), atol=1e-5, rtol=0)
    for ours, theirs in zip(out.sparse, expected["lexical_weights"], strict=True):
        assert [str(i) for i in ours.indices] == [key for key, _ in theirs]


def test_id_to_token_view_equals_flagembeddings(reference: dict[str, Any], tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    sparse = m3.embed_sparse_documents(reference["texts"])
    for ours, theirs in zip(sparse, reference["convert_id_to_token"]["result"], strict=True):
        tokens = m3.lexical_tokens(ours)
        assert list(tokens) == [token for token, _ in theirs]
        np.testing.assert_allclose(list(tokens.values()), [w for _, w in theirs], atol=1e-4, rtol=0)


def test_scores_equal_flagembeddings(reference: dict[str, Any], tiny_m3_path: str) -> None:
    out = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(reference["texts"], outputs="sparse,colbert")
    for case in reference["compute_lexical_matching_score"]["pairs"]:
        assert lexical_score(out.sparse[case["i"]], out.sparse[case["j"]]) == pytest.approx(case["score"], abs=1e-4)
    for case in reference["colbert_score"]["pairs"]:
        assert colbert_score(out.colbert[case["i"]], out.colbert[case["j"]]) == pytest.approx(case["score"], abs=1e-4)


@pytest.mark.parametrize("weights", [None, [0.4, 0.2, 0.4]])
@pytest.mark.parametrize("max_length", [None, 8])
def test_reranker_equals_compute_score(
    reference: dict[str, Any], tiny_m3_path: str, weights: list[float] | None, max_length: int | None
) -> None:
    """BGEM3Reranker's components and combined score equal compute_score's, pair by pair (batch_size=1 there:
    with larger batches FlagEmbedding's ColBERT max also runs over padding, see the compat layer)."""
    (run,) = [
        r
        for r in reference["compute_score"]["runs"]
        if r["call"]["batch_size"] == 1
        and r["call"]["weights_for_different_modes"] == weights
        and r["call"].get("max_passage_length") == max_length
    ]
    reranker = BGEM3Reranker(tiny_m3_path, device="cpu", weights=weights or (1, 1, 1), max_length=max_length)
    pairs = [tuple(pair) for pair in reference["compute_score"]["pairs"]]
    scores = reranker.score_pairs(pairs)
    expected = run["scores"]
    np.testing.assert_allclose(scores, expected["colbert+sparse+dense"], atol=1e-4, rtol=0)
    for i, (query, passage) in enumerate(pairs):
        (item,) = reranker.score_components(query, [passage])
        assert item["dense"] == pytest.approx(expected["dense"][i], abs=1e-5)
        assert item["sparse"] == pytest.approx(expected["sparse"][i], abs=1e-4)
        assert item["colbert"] == pytest.approx(expected["colbert"][i], abs=1e-4)
        w = weights or [1.0, 1.0, 1.0]
        sparse_dense = (w[1] * item["sparse"] + w[0] * item["dense"]) / (w[1] + w[0])
        assert sparse_dense == pytest.approx(expected["sparse+dense"][i], abs=1e-4)
        assert combined_score(item["dense"], item["sparse"], item["colbert"], w) == pytest.approx(
            expected["colbert+sparse+dense"][i], abs=1e-4
        )


def test_dense_score_of_the_reference_vectors(reference: dict[str, Any]) -> None:
    vectors = reference["encode"]["bs3_ml512"]["dense_vecs"]
    assert dense_score(vectors[0], vectors[0]) == pytest.approx(1.0, abs=1e-6)
