"""BGE's LLM rerankers through Haystack's BGERanker, against FlagEmbedding's scores.

The references (tests/data/llm_*_reference.json) are FlagEmbedding 1.3.5's raw scores
(``normalize=False``: ``scale_score=False`` here) on the tiny checkpoints; long passages are
truncated there, so ``windows=False`` here.
"""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline

from bge_integrations.haystack import BGERanker

DATA = Path(__file__).resolve().parents[1] / "data"
LLM_SETTINGS = ("prompt", "cutoff_layers", "compress_ratio", "compress_layers")
# (family, reference case): the default, each family's settings, and several layers.
CASES = [
    ("gemma", "default"),
    ("gemma", "custom_prompt"),
    ("layerwise", "layers_several"),
    ("lightweight", "model_card"),
    ("lightweight", "compress_2_twice_layers"),
]
TOLERANCE = 1e-4  # issue 14: FlagEmbedding's scores to 1e-4
SETTINGS: dict[str, Any] = {
    "prompt": "Is B about A?",
    "cutoff_layers": [3, 5],
    "compress_ratio": 4,
    "compress_layers": 2,
}


def reference_case(family: str, name: str) -> tuple[list[tuple[str, str]], dict[str, Any], list[float], Any]:
    """Pairs, LLM settings, the ranking (deepest layer's) scores and ``{layer: scores}`` (None for one layer)."""
    path = DATA / f"llm_{family}_reference.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not committed yet")
    reference = json.loads(path.read_text(encoding="utf-8"))
    [case] = [case for case in reference["cases"] if case["name"] == name]
    settings = case["kwargs"]
    assert set(settings) <= set(LLM_SETTINGS)
    pairs = [tuple(pair) for pair in reference["pairs"]]
    layers = settings.get("cutoff_layers")
    if layers is None or len(layers) == 1:
        return pairs, settings, case["scores"], None
    by_layer = dict(zip(layers, case["scores"], strict=True))
    return pairs, settings, by_layer[max(layers)], by_layer


def largest_group(pairs: list[tuple[str, str]]) -> tuple[str, list[int]]:
    """The query with the most passages, and the indices of its pairs."""
    groups: dict[str, list[int]] = {}
    for index, (query, _) in enumerate(pairs):
        groups.setdefault(query, []).append(index)
    return max(groups.items(), key=lambda item: len(item[1]))


@pytest.mark.parametrize(("family", "case"), CASES)
def test_scores_and_order_equal_flagembedding(family: str, case: str, request: pytest.FixtureRequest) -> None:
    pairs, settings, want, want_layers = reference_case(family, case)
    path = request.getfixturevalue(f"tiny_llm_{family}_path")
    ranker = BGERanker(model=path, device="cpu", scale_score=False, windows=False, top_k=100, **settings)
    query, indices = largest_group(pairs)
    assert len(indices) >= 3
    docs = [Document(content=pairs[i][1], meta={"pair": i}) for i in indices]
    out = ranker.run(query=query, documents=docs)["documents"]
    got = [doc.meta["pair"] for doc in out]
    assert sorted(got) == indices
    assert [doc.score for doc in out] == pytest.approx([want[i] for i in got], abs=TOLERANCE)
    assert all(a >= b - 2 * TOLERANCE for a, b in pairwise([want[i] for i in got]))
    for doc in out:
        if want_layers is None:
            assert "layer_scores" not in doc.meta
        else:
            layers = doc.meta["layer_scores"]
            assert list(layers) == list(want_layers)  # in the order asked
            assert layers == pytest.approx({k: v[doc.meta["pair"]] for k, v in want_layers.items()}, abs=TOLERANCE)


async def test_layer_scores_follow_the_run_and_rank_as_the_core(tiny_llm_layerwise_path: str) -> None:
    docs = [Document(content=text) for text in ("hi", "Pandas eat bamboo.", "", "Giant pandas live in China.")]
    ranker = BGERanker(model=tiny_llm_layerwise_path, device="cpu", cutoff_layers=[6, 3], top_k=3)
    out = ranker.run(query="what is a panda?", documents=docs)["documents"]
    assert (await ranker.run_async(query="what is a panda?", documents=docs))["documents"] == out
    ranked = ranker.reranker.rank("what is a panda?", [doc.content or "" for doc in docs], top_n=3)
    assert [(doc.id, doc.score) for doc in out] == [(docs[item.index].id, item.score) for item in ranked]
    assert all(list(doc.meta["layer_scores"]) == [6, 3] and doc.meta["layer_scores"][6] == doc.score for doc in out)
    assert all(doc.meta == {} for doc in docs)  # inputs unchanged
    raw = ranker.run(query="what is a panda?", documents=docs, scale_score=False)["documents"]
    assert [doc.id for doc in raw] == [doc.id for doc in out]
    for logits, scaled in zip(raw, out, strict=True):  # every layer's score on the run's scale
        assert {k: 1 / (1 + math.exp(-v)) for k, v in logits.meta["layer_scores"].items()} == pytest.approx(
            scaled.meta["layer_scores"], abs=1e-6
        )
    kept = ranker.run(query="what is a panda?", documents=docs, score_threshold=out[1].score)["documents"]
    assert [doc.score for doc in kept] == [doc.score for doc in out[:2]]


def test_llm_settings_reach_the_core_config(tiny_llm_lightweight_path: str) -> None:
    config = BGERanker(model=tiny_llm_lightweight_path, device="cpu", **SETTINGS).reranker.config
    assert (config.prompt, config.cutoff_layers, config.compress_ratio, config.compress_layers) == (
        "Is B about A?",
        (3, 5),
        4,
        (2,),
    )


def test_to_dict_from_dict_and_yaml_keep_the_llm_settings(tiny_llm_lightweight_path: str) -> None:
    ranker = BGERanker(model=tiny_llm_lightweight_path, device="cpu", **SETTINGS)
    data = ranker.to_dict()
    assert {name: data["init_parameters"][name] for name in SETTINGS} == SETTINGS
    again = BGERanker.from_dict(data)
    assert {name: getattr(again, name) for name in SETTINGS} == SETTINGS
    assert again.reranker.config == ranker.reranker.config
    pipeline = Pipeline()
    pipeline.add_component("ranker", ranker)
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["bge_integrations.*"])
    component = loaded.get_component("ranker")
    assert isinstance(component, BGERanker)
    assert component.to_dict() == data
    defaults = BGERanker().to_dict()["init_parameters"]
    assert {name: defaults[name] for name in SETTINGS} == dict.fromkeys(SETTINGS)


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
    path = request.getfixturevalue("tiny_reranker_path" if family == "cross_encoder" else f"tiny_llm_{family}_path")
    ranker = BGERanker(model=path, device="cpu", **setting)
    with pytest.raises(ValueError, match=message):
        ranker.warm_up()
    with pytest.raises(ValueError, match=message):
        ranker.run(query="q", documents=[Document(content="hi")])


def test_bad_llm_settings_fail_at_construction_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"compress_ratio must be 1, 2, 4 or 8 .*got 3"):
        BGERanker(compress_ratio=3)
    with pytest.raises(ValueError, match=r"cutoff_layers must be an int or a non-empty list of ints, got \[\]"):
        BGERanker(cutoff_layers=[])
