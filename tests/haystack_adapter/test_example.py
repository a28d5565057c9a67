"""examples/haystack_pipeline.py runs end to end on the tiny models."""

from __future__ import annotations

import runpy
from pathlib import Path

from bge_integrations import BGEReranker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "haystack_pipeline.py"


def test_example_main(tiny_embedder_path, tiny_reranker_path, capsys):
    example = runpy.run_path(str(EXAMPLE), run_name="example")
    ranked = example["main"](model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Query: {example['QUERY']}"
    assert lines[1].startswith("Retrieved by embedding: ")
    assert lines[2] == "Reranked by the cross-encoder:"
    assert lines[3:] == [f"{rank}. {d.score:.4f}  [{d.meta['title']}] {d.content}" for rank, d in enumerate(ranked, 1)]
    assert len(ranked) == 3
    # The ranker scored exactly the retrieved candidates (title, then content), in one batch as the
    # core does: the same texts give bit-identical scores (a different batch would differ by ~1e-7).
    passages = dict(example["PASSAGES"])
    candidates = lines[1].removeprefix("Retrieved by embedding: ").split(", ")
    assert len(candidates) == 4
    texts = [f"{title}\n{passages[title]}" for title in candidates]
    scores = BGEReranker(tiny_reranker_path, device="cpu").score(example["QUERY"], texts)
    expected = sorted(zip(candidates, scores, strict=True), key=lambda pair: -pair[1])[:3]
    assert [(doc.meta["title"], doc.score) for doc in ranked] == expected
