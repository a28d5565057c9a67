"""BGEReranker on the layerwise and lightweight LLM rerankers, against FlagEmbedding's own scores.

tests/data/llm_{layerwise,lightweight}_reference.json hold what FlagEmbedding 1.3.5's
``LayerWiseFlagLLMReranker`` and ``LightWeightFlagLLMReranker`` computed on the committed tiny
checkpoints (scripts/reference/make_llm_*_reference.py). Every recorded call is replayed through the
core: ``score_pairs`` for one layer, ``score_layers`` for several (FlagEmbedding's list of lists).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bge_integrations import BGEReranker
from bge_integrations.core.llm_reranking_model import LoadedLLMReranker

DATA = Path(__file__).parents[1] / "data"
FAMILIES = {
    "layerwise": ("llm-reranker-minicpm-layerwise-tiny", "llm-layerwise"),
    "lightweight": ("llm-reranker-gemma2-lightweight-tiny", "llm-lightweight"),
}
NAMES = {"query_max_length": "max_query_length", "compress_layer": "compress_layers"}


def reference(family: str) -> dict[str, Any]:
    path = DATA / f"llm_{family}_reference.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not recorded yet")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def flag_layers(kwargs: dict[str, Any], valid: range) -> list[int] | None:
    """The layers FlagEmbedding scores: those in range (it drops the others), in the order given."""
    layers = kwargs.get("cutoff_layers")
    if layers is None:
        return None
    layers = [layers] if isinstance(layers, int) else layers
    return [layer for layer in dict.fromkeys(layers) if layer in valid]


def cases() -> list[tuple[str, str]]:
    out = []
    for family in FAMILIES:
        path = DATA / f"llm_{family}_reference.json"
        names = [case["name"] for case in json.loads(path.read_text())["cases"]] if path.exists() else ["missing"]
        out += [(family, name) for name in names]
    return out


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    # These tiny models run far faster on one thread than on two busy ones.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("family", "name"), cases())
def test_scores_equal_flagembedding(family: str, name: str) -> None:
    ref = reference(family)
    case = next(c for c in ref["cases"] if c["name"] == name)
    folder, kind = FAMILIES[family]
    path = str(DATA / folder)
    pairs = [(q, p) for q, p in ref["pairs"]]
    kwargs = {NAMES.get(k, k): v for k, v in case["kwargs"].items() if k not in ("batch_size",)}
    kwargs.setdefault("normalize", False)
    probe = BGEReranker(path, device="cpu")
    loaded = probe._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    assert loaded.family == kind
    valid = loaded.model.score_layers
    layers = flag_layers(kwargs, valid)
    if layers is not None and layers != sorted(layers):
        # FlagEmbedding pairs the heads of unsorted layers with the wrong states (a bug, recorded in
        # the reference); the core scores each asked layer with its own head.
        pytest.skip("FlagEmbedding's unsorted-layer scores are wrong by design of its loop")
    if layers is not None:
        kwargs["cutoff_layers"] = layers
    if case.get("attn_implementation") == "eager":
        # FlagEmbedding's class runs SDPA (no attention softcapping) unless asked for eager attention.
        kwargs["model_kwargs"] = {"attn_implementation": "eager"}
    reranker = BGEReranker(path, device="cpu", windows=False, batch_size=case["kwargs"].get("batch_size", 32), **kwargs)
    expected = np.array(case["scores"])
    if expected.ndim == 2:
        table: dict[int, list[float]] = {}
        for query, passage in pairs:
            for layer, scores in reranker.score_layers(query, [passage]).items():
                table.setdefault(layer, []).extend(scores)
        assert layers is not None
        got = np.array([table[layer] for layer in layers])
    else:
        got = np.array(reranker.score_pairs(pairs))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_input_ids_equal_flagembedding(family: str) -> None:
    ref = reference(family)
    folder, _ = FAMILIES[family]
    reranker = BGEReranker(str(DATA / folder), device="cpu")
    loaded = reranker._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    encoder = loaded.pair_encoder(512, 384, 64)
    for (query, passage), recorded in zip(ref["pairs"], ref["inputs"], strict=True):
        batch = encoder.encode(query, [passage], windows=False)
        assert batch.input_ids == [recorded["input_ids"]]
        if "query_length" in recorded:
            assert batch.query_lengths == [recorded["query_length"]]
            assert batch.prompt_lengths == [recorded["prompt_length"]]


@pytest.mark.parametrize("family", list(FAMILIES))
def test_score_ranks_by_the_deepest_layer_and_out_of_range_layers_are_refused(family: str) -> None:
    reference(family)
    folder, _ = FAMILIES[family]
    path = str(DATA / folder)
    probe = BGEReranker(path, device="cpu")
    loaded = probe._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    valid = loaded.model.score_layers
    low, high = valid[0], valid[-1]
    reranker = BGEReranker(path, device="cpu", cutoff_layers=[high, low])
    documents = ["The giant panda is a bear.", "hi", ""]
    layers = reranker.score_layers("what is a panda?", documents)
    assert list(layers) == [high, low]
    assert reranker.score("what is a panda?", documents) == pytest.approx(layers[high], abs=1e-6)
    assert not np.allclose(layers[high], layers[low])
    ranked = reranker.rank_layers("what is a panda?", documents, top_n=2)
    assert [item.index for item in ranked] == list(np.argsort(-np.array(layers[high]), kind="stable")[:2])
    for item in ranked:
        assert item.score == layers[high][item.index]
        assert item.layer_scores == {layer: scores[item.index] for layer, scores in layers.items()}
    assert asyncio.run(reranker.arank_layers("what is a panda?", documents, top_n=2)) == ranked
    threshold = sorted(layers[high])[1]
    assert {item.index for item in reranker.rank_layers("what is a panda?", documents, score_threshold=threshold)} == {
        i for i, score in enumerate(layers[high]) if score >= threshold
    }
    with pytest.raises(ValueError, match=str(high + 1)):
        BGEReranker(path, device="cpu", cutoff_layers=[high + 1]).score("q", ["p"])
