"""The three bge-m3 hybrid examples: Qdrant local mode, RRF of dense and sparse hits, bge-m3 reranking.

Each runs offline on the tiny bge-m3; its candidates are checked against reciprocal rank fusion
computed here from the core's dense and lexical scores, its hits against ``BGEM3Reranker``, and
the three examples against each other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import ModuleType

import numpy as np
import pytest

from bge_integrations import BGEM3Embedder, BGEM3Reranker
from bge_integrations.core.m3_scoring import lexical_score
from bge_integrations.demo_corpus import PASSAGES, QUERIES
from tests.examples.conftest import EXAMPLES_DIR, load_example

HYBRID_EXAMPLES = ("hybrid_langchain", "hybrid_llama_index", "hybrid_haystack")
TOP_K, TOP_N = 4, 2


@pytest.fixture(scope="module")
def results(tiny_m3_path: str) -> dict[str, list]:
    return {
        name: load_example(name).main(None, model=tiny_m3_path, device="cpu", top_k=TOP_K, top_n=TOP_N)
        for name in HYBRID_EXAMPLES
    }


def _rrf(question: str, model: str, prefetch: int = 10) -> dict[str, float]:
    """Qdrant's RRF scores of the best prefetch dense and sparse passages, from the core's scores."""
    m3 = BGEM3Embedder(model, device="cpu")
    docs = m3.encode_documents(list(PASSAGES), outputs="dense,sparse")
    query = m3.encode_queries([question], outputs="dense,sparse")
    dense = docs.dense @ query.dense[0]
    sparse = np.array([lexical_score(query.sparse[0], s) for s in docs.sparse])
    fused: dict[int, float] = {}
    for scores, keep in ((dense, len(PASSAGES)), (sparse, int((sparse > 0).sum()))):
        order = sorted(range(len(PASSAGES)), key=lambda i: -scores[i])[: min(prefetch, keep)]
        for rank, i in enumerate(order):
            fused[i] = fused.get(i, 0.0) + 1 / (rank + 2)
    return {PASSAGES[i]: score for i, score in fused.items()}


@pytest.mark.parametrize("name", HYBRID_EXAMPLES)
def test_candidates_are_the_rrf_of_the_cores_rankings_and_hits_its_reranking(
    name: str, results: dict[str, list], tiny_m3_path: str
) -> None:
    reranker = BGEM3Reranker(tiny_m3_path, device="cpu")
    assert [result.question for result in results[name]] == list(QUERIES)
    for result in results[name]:
        fused = _rrf(result.question, tiny_m3_path)
        scores = [fused[text] for text in result.candidates]
        assert len(result.candidates) == TOP_K
        assert scores == sorted(scores, reverse=True)  # best first
        others = [score for text, score in fused.items() if text not in result.candidates]
        assert min(scores) >= max(others, default=0.0)  # a best top_k (RRF ties may go either way)
        expected = reranker.rank(result.question, result.candidates, top_n=TOP_N)
        assert [hit.text for hit in result.hits] == [item.text for item in expected]
        for hit, item in zip(result.hits, expected, strict=True):
            assert hit.score == pytest.approx(item.score, abs=1e-5)
            components = (item.dense, item.sparse, item.colbert)
            assert (hit.dense, hit.sparse, hit.colbert) == pytest.approx(components, abs=1e-5)


def test_the_three_frameworks_give_the_same_hits(results: dict[str, list]) -> None:
    first, *others = (results[name] for name in HYBRID_EXAMPLES)
    for other in others:
        # The same candidates (in an order that may differ among RRF ties: each store breaks them
        # by its own prefetch order), so the same reranked hits.
        assert [set(r.candidates) for r in other] == [set(r.candidates) for r in first]
        assert [[h.text for h in r.hits] for r in other] == [[h.text for h in r.hits] for r in first]
        assert [h.score for r in other for h in r.hits] == pytest.approx([h.score for r in first for h in r.hits])


@pytest.mark.parametrize("name", HYBRID_EXAMPLES)
def test_defaults_are_the_real_bge_m3(name: str) -> None:
    example: ModuleType = load_example(name)
    assert vars(example.parse_args([])) == {
        "questions": [],
        "model": "BAAI/bge-m3",
        "device": None,
        "top_k": 5,
        "top_n": 2,
    }


def test_runs_as_a_script_offline(tiny_m3_path: str) -> None:
    command = [sys.executable, str(EXAMPLES_DIR / "hybrid_langchain.py"), "Where do pandas live?"]
    command += ["--model", tiny_m3_path, "--device", "cpu", "--top-k", "3", "--top-n", "1"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    assert done.returncode == 0, done.stderr
    assert "Q: Where do pandas live?" in done.stdout
    assert done.stdout.count("(dense ") == 1
