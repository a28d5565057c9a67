from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.reranker import BGEReranker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "langchain_rerank_retriever.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langchain_rerank_retriever", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_on_tiny_models(
    tiny_embedder_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    example = _load()
    hits = example.main(model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu")

    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    query = embedder.embed_query(example.QUESTION)
    similarity = [
        sum(a * b for a, b in zip(query, doc, strict=True)) for doc in embedder.embed_documents(example.PASSAGES)
    ]
    candidates = sorted(range(len(example.PASSAGES)), key=lambda i: -similarity[i])[:4]
    ranked = BGEReranker(tiny_reranker_path, device="cpu").rank(
        example.QUESTION, [example.PASSAGES[i] for i in candidates], top_n=2
    )

    assert [hit.page_content for hit in hits] == [item.text for item in ranked]
    assert [hit.metadata["relevance_score"] for hit in hits] == [item.score for item in ranked]
    assert [hit.metadata["source"] for hit in hits] == [f"passage-{candidates[item.index]}" for item in ranked]
    printed = capsys.readouterr().out
    assert printed.startswith(f"Q: {example.QUESTION}\n")
    assert all(hit.page_content in printed for hit in hits)
