"""examples/haystack_pipeline.py runs end to end on the tiny models."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from bge_integrations import BGEReranker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "haystack_pipeline.py"


def test_example_main(tiny_embedder_path, tiny_reranker_path, capsys):
    example = runpy.run_path(str(EXAMPLE), run_name="example")
    ranked = example["main"](model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu")
    out = capsys.readouterr().out
    assert out.startswith(f"Query: {example['QUERY']}\n")
    assert len(ranked) == 3
    scores = [doc.score for doc in ranked]
    assert scores == sorted(scores, reverse=True)
    texts = [f"{doc.meta['title']}\n{doc.content}" for doc in ranked]
    core_scores = BGEReranker(tiny_reranker_path, device="cpu").score(example["QUERY"], texts)
    assert scores == pytest.approx(core_scores, rel=0, abs=1e-7)  # tiny-model scores differ by ~1e-6
    for rank, doc in enumerate(ranked, start=1):
        assert f"{rank}. {doc.score:.4f}  [{doc.meta['title']}] {doc.content}" in out
