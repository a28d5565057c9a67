"""examples/llama_index_query_engine.py runs end to end on the tiny models."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from bge_integrations.core.loading import REGISTRY
from bge_integrations.demo_corpus import PASSAGES
from bge_integrations.llama_index import RETRIEVAL_SCORE_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llama_index_query_engine.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("llama_index_query_engine", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_main_prints_three_reranked_sources(
    tiny_embedder_path: str, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = load_example().main(model=tiny_embedder_path, reranker=tiny_reranker_path, device="cpu")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Q: ")
    assert [line.split(".")[0] for line in lines[1:]] == ["1", "2", "3"]
    scores = [source.score for source in response.source_nodes]
    assert scores == sorted(scores, reverse=True)
    assert all(source.node.get_content() in PASSAGES for source in response.source_nodes)
    assert all(isinstance(source.node.metadata[RETRIEVAL_SCORE_KEY], float) for source in response.source_nodes)
    assert REGISTRY.load_count == 2


def test_defaults_are_real_bge_models() -> None:
    defaults = {name: p.default for name, p in inspect.signature(load_example().main).parameters.items()}
    assert defaults == {
        "model": "BAAI/bge-small-en-v1.5",
        "reranker": "BAAI/bge-reranker-base",
        "device": None,
        "llm": None,
    }
