"""BGE's LLM rerankers through LlamaIndex's BGERerank, against FlagEmbedding's scores.

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
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from bge_integrations.llama_index import BGERerank
from bge_integrations.llama_index.postprocessors import LAYER_SCORES_KEY, RETRIEVAL_SCORE_KEY

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


def nodes_of(texts: list[str]) -> list[NodeWithScore]:
    return [NodeWithScore(node=TextNode(text=text, id_=str(i)), score=0.5) for i, text in enumerate(texts)]


@pytest.mark.parametrize(("family", "case"), CASES)
def test_scores_and_order_equal_flagembedding(family: str, case: str, request: pytest.FixtureRequest) -> None:
    pairs, settings, want, want_layers = reference_case(family, case)
    path = request.getfixturevalue(f"tiny_llm_{family}_path")
    rerank = BGERerank(path, device="cpu", normalize=False, windows=False, top_n=None, **settings)
    query, indices = largest_group(pairs)
    assert len(indices) >= 3
    out = rerank.postprocess_nodes(nodes_of([pairs[i][1] for i in indices]), query_str=query)
    got = [indices[int(scored.node.node_id)] for scored in out]
    assert sorted(got) == indices
    assert [scored.score for scored in out] == pytest.approx([want[i] for i in got], abs=TOLERANCE)
    assert all(a >= b - 2 * TOLERANCE for a, b in pairwise([want[i] for i in got]))
    for pair, scored in zip(got, out, strict=True):
        if want_layers is None:
            assert LAYER_SCORES_KEY not in scored.node.metadata
        else:
            layers = scored.node.metadata[LAYER_SCORES_KEY]
            assert list(layers) == list(want_layers)  # in the order asked
            assert layers == pytest.approx({k: v[pair] for k, v in want_layers.items()}, abs=TOLERANCE)


async def test_layer_scores_async_equal_sync_and_rank_as_the_core(tiny_llm_layerwise_path: str) -> None:
    texts = ["hi", "Pandas eat bamboo.", "", "Giant pandas live in China."]
    rerank = BGERerank(tiny_llm_layerwise_path, device="cpu", cutoff_layers=[6, 3], top_n=3)
    out = rerank.postprocess_nodes(nodes_of(texts), query_str="what is a panda?")
    again = await rerank.apostprocess_nodes(nodes_of(texts), query_str="what is a panda?")
    assert [(s.node.node_id, s.score, s.node.metadata) for s in again] == [
        (s.node.node_id, s.score, s.node.metadata) for s in out
    ]
    ranked = rerank.core.rank("what is a panda?", texts, top_n=3)
    assert [(int(s.node.node_id), s.score) for s in out] == [(item.index, item.score) for item in ranked]
    for scored in out:
        assert list(scored.node.metadata[LAYER_SCORES_KEY]) == [6, 3]
        assert scored.node.metadata[LAYER_SCORES_KEY][6] == scored.score
        assert scored.node.metadata[RETRIEVAL_SCORE_KEY] == 0.5
        # Hidden from the LLM and the embedder, as the retrieval score.
        assert "layer_scores" not in scored.node.get_content(metadata_mode=MetadataMode.LLM)
        assert "layer_scores" not in scored.node.get_content(metadata_mode=MetadataMode.EMBED)
    rerank.score_threshold = out[1].score
    assert [s.score for s in rerank.postprocess_nodes(nodes_of(texts), query_str="what is a panda?")] == [
        s.score for s in out[:2]
    ]


def test_layer_scores_without_keep_retrieval_score_copy_the_node(tiny_llm_layerwise_path: str) -> None:
    nodes = nodes_of(["hi", "Pandas eat bamboo."])
    rerank = BGERerank(tiny_llm_layerwise_path, device="cpu", cutoff_layers=[2, 4], keep_retrieval_score=False)
    out = rerank.postprocess_nodes(nodes, query_str="what is a panda?")
    assert all(set(scored.node.metadata) == {LAYER_SCORES_KEY} for scored in out)
    assert all(scored.metadata == {} for scored in nodes)  # the caller's nodes are unchanged


def test_llm_settings_reach_the_core_config_and_to_dict(tiny_llm_lightweight_path: str) -> None:
    settings: dict[str, Any] = {
        "prompt": "Is B about A?",
        "cutoff_layers": [3, 5],
        "compress_ratio": 4,
        "compress_layers": 2,
    }
    rerank = BGERerank(tiny_llm_lightweight_path, device="cpu", **settings)
    config = rerank.core.config
    assert (config.prompt, config.cutoff_layers, config.compress_ratio, config.compress_layers) == (
        "Is B about A?",
        (3, 5),
        4,
        (2,),
    )
    data = rerank.to_dict()
    assert {name: data[name] for name in settings} == settings
    assert BGERerank.from_dict(data).core.config == config


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
    with pytest.raises(ValueError, match=message):
        BGERerank(path, device="cpu", **setting).postprocess_nodes(nodes_of(["hi"]), query_str="q")


def test_bad_llm_settings_fail_at_construction_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"compress_ratio must be 1, 2, 4 or 8 .*got 3"):
        BGERerank(compress_ratio=3)
    with pytest.raises(ValueError, match=r"compress_layers must hold distinct ints >= 0, got \[2, 2\]"):
        BGERerank(compress_layers=[2, 2])
