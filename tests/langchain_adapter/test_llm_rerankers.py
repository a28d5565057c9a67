"""BGE's LLM rerankers through LangChain's BGERerank and BGECrossEncoder, against FlagEmbedding's scores.

The references (tests/data/llm_*_reference.json) are FlagEmbedding 1.3.5's raw scores
(``normalize=False``) on the tiny checkpoints; long passages are truncated there, so
``windows=False`` here.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from bge_integrations.langchain import BGECrossEncoder, BGERerank

DATA = Path(__file__).resolve().parents[1] / "data"
LLM_SETTINGS = ("prompt", "cutoff_layers", "compress_ratio", "compress_layers")
# (family, reference case). Reranking one query's passages: the default, and several layers.
RERANK_CASES = [
    ("gemma", "default"),
    ("layerwise", "default"),
    ("layerwise", "layers_several"),
    ("lightweight", "compress_2_twice_layers"),
]
# Scoring every pair in one pass: each family with the settings it reads.
PAIR_CASES = [
    ("gemma", "custom_prompt"),
    ("layerwise", "layers_several"),
    ("lightweight", "default"),
    ("lightweight", "model_card"),
]
TOLERANCE = 1e-4  # issue 14: FlagEmbedding's scores to 1e-4


def reference_case(family: str, name: str) -> tuple[list[tuple[str, str]], dict[str, Any], list[float], Any]:
    """Pairs, LLM settings, the ranking (deepest layer's) scores and ``{layer: scores}`` (None for one layer)."""
    path = DATA / f"llm_{family}_reference.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not committed yet")
    reference = json.loads(path.read_text(encoding="utf-8"))
    [case] = [case for case in reference["cases"] if case["name"] == name]
    settings = case["kwargs"]
    assert set(settings) <= set(LLM_SETTINGS)
    layers = settings.get("cutoff_layers")
    if layers is None or len(layers) == 1:
        return [tuple(pair) for pair in reference["pairs"]], settings, case["scores"], None
    by_layer = dict(zip(layers, case["scores"], strict=True))
    return [tuple(pair) for pair in reference["pairs"]], settings, by_layer[max(layers)], by_layer


def largest_group(pairs: list[tuple[str, str]]) -> tuple[str, list[int]]:
    """The query with the most passages, and the indices of its pairs."""
    groups: dict[str, list[int]] = {}
    for index, (query, _) in enumerate(pairs):
        groups.setdefault(query, []).append(index)
    return max(groups.items(), key=lambda item: len(item[1]))


def assert_follows(reference_scores: list[float]) -> None:
    """Best first by FlagEmbedding's scores (scores closer than the tolerance may come either way)."""
    assert all(a >= b - 2 * TOLERANCE for a, b in pairwise(reference_scores))


@pytest.mark.parametrize(("family", "case"), RERANK_CASES)
def test_bge_rerank_scores_and_order_equal_flagembedding(
    family: str, case: str, request: pytest.FixtureRequest
) -> None:
    pairs, settings, want, want_layers = reference_case(family, case)
    path = request.getfixturevalue(f"tiny_llm_{family}_path")
    rerank = BGERerank(model_name=path, device="cpu", normalize=False, windows=False, top_n=None, **settings)
    query, indices = largest_group(pairs)
    assert len(indices) >= 3
    docs = [Document(pairs[i][1], metadata={"pair": i}) for i in indices]
    kept = rerank.compress_documents(docs, query)
    assert sorted(doc.metadata["pair"] for doc in kept) == indices
    for doc in kept:
        pair = doc.metadata["pair"]
        assert doc.metadata["relevance_score"] == pytest.approx(want[pair], abs=TOLERANCE)
        if want_layers is None:
            assert "layer_scores" not in doc.metadata
        else:
            layers = doc.metadata["layer_scores"]
            assert list(layers) == list(want_layers)  # in the order asked
            assert layers == pytest.approx({k: v[pair] for k, v in want_layers.items()}, abs=TOLERANCE)
    assert_follows([want[doc.metadata["pair"]] for doc in kept])


@pytest.mark.parametrize(("family", "case"), PAIR_CASES)
def test_cross_encoder_scores_equal_flagembedding(family: str, case: str, request: pytest.FixtureRequest) -> None:
    pairs, settings, want, _ = reference_case(family, case)
    path = request.getfixturevalue(f"tiny_llm_{family}_path")
    encoder = BGECrossEncoder(
        model_name=path, normalize=False, windows=False, model_kwargs={"device": "cpu"}, **settings
    )
    assert encoder.score(pairs) == pytest.approx(want, abs=TOLERANCE)


async def test_layer_scores_async_equal_sync_and_rank_as_the_core(tiny_llm_layerwise_path: str) -> None:
    docs = [Document(text) for text in ("hi", "Pandas eat bamboo.", "", "Giant pandas live in China.")]
    rerank = BGERerank(model_name=tiny_llm_layerwise_path, device="cpu", cutoff_layers=[6, 3], top_n=3)
    kept = rerank.compress_documents(docs, "what is a panda?")
    assert await rerank.acompress_documents(docs, "what is a panda?") == kept
    ranked = rerank.client.rank("what is a panda?", [doc.page_content for doc in docs], top_n=3)
    assert [doc.page_content for doc in kept] == [item.text for item in ranked]
    assert [doc.metadata["relevance_score"] for doc in kept] == [item.score for item in ranked]
    assert [list(doc.metadata["layer_scores"]) for doc in kept] == [[6, 3]] * 3
    assert all(doc.metadata["layer_scores"][6] == doc.metadata["relevance_score"] for doc in kept)
    assert all(0 < score < 1 for doc in kept for score in doc.metadata["layer_scores"].values())  # normalize=True
    threshold = kept[1].metadata["relevance_score"]
    rerank.score_threshold = threshold
    assert [doc.metadata["relevance_score"] for doc in rerank.compress_documents(docs, "what is a panda?")] == [
        doc.metadata["relevance_score"] for doc in kept[:2]
    ]


@pytest.mark.parametrize("cls", [BGERerank, BGECrossEncoder])
def test_llm_settings_reach_the_core_config(
    cls: type[BGERerank | BGECrossEncoder], tiny_llm_lightweight_path: str
) -> None:
    settings: dict[str, Any] = {
        "prompt": "Is B about A?",
        "cutoff_layers": [3, 5],
        "compress_ratio": 4,
        "compress_layers": 2,
    }
    config = cls(model_name=tiny_llm_lightweight_path, device="cpu", **settings).client.config
    assert (config.prompt, config.cutoff_layers, config.compress_ratio, config.compress_layers) == (
        "Is B about A?",
        (3, 5),
        4,
        (2,),
    )
    assert cls(model_name=tiny_llm_lightweight_path).client.config.cutoff_layers is None


@pytest.mark.parametrize(
    ("family", "setting", "message"),
    [
        ("gemma", {"compress_ratio": 2}, r"compress_ratio=2 applies to the lightweight LLM reranker"),
        ("gemma", {"cutoff_layers": [2, 3]}, r"cutoff_layers=\(2, 3\) applies to a layerwise LLM reranker"),
        ("layerwise", {"compress_layers": [2]}, r"compress_layers=\(2,\) applies to the lightweight"),
        (
            "cross_encoder",
            {"prompt": "Is B about A?"},
            r"prompt='Is B about A\?' applies to an LLM reranker.*cross-encoder",
        ),
    ],
)
def test_a_setting_the_family_does_not_read_is_the_cores_value_error(
    family: str, setting: dict[str, Any], message: str, request: pytest.FixtureRequest
) -> None:
    fixture = "tiny_reranker_path" if family == "cross_encoder" else f"tiny_llm_{family}_path"
    path = request.getfixturevalue(fixture)
    with pytest.raises(ValueError, match=message):
        BGERerank(model_name=path, device="cpu", **setting).compress_documents([Document("hi")], "q")
    with pytest.raises(ValueError, match=message):
        BGECrossEncoder(model_name=path, model_kwargs={"device": "cpu"}, **setting).score([("q", "hi")])


def test_bad_llm_settings_fail_at_construction_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"compress_ratio must be 1, 2, 4 or 8 .*got 3"):
        BGERerank(compress_ratio=3)
    with pytest.raises(ValueError, match=r"cutoff_layers must hold distinct ints >= 1, got \[0\]"):
        BGECrossEncoder(cutoff_layers=[0])
    with pytest.raises(ValueError, match="prompt must be a non-empty string"):
        BGERerank(prompt=" ")
