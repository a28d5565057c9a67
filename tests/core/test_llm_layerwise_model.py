"""The MiniCPM layerwise model port scores exactly as FlagEmbedding's own classes.

tests/data/llm_layerwise_reference.json holds what FlagEmbedding 1.3.5's ``LayerWiseFlagLLMReranker``
(transformers 4.57, float32, CPU) returned for tests/data/llm-reranker-minicpm-layerwise-tiny, and the
token ids it fed the model; made by scripts/reference/make_llm_layerwise_reference.py in a separate venv.
The tiny checkpoint has 6 layers, start_layer 2 (score layers 2..6), one "simple" head per layer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bge_integrations.core.llm_models.minicpm_layerwise import (
    LayerwiseMiniCPMConfig,
    LayerwiseMiniCPMForReranking,
)

DATA = Path(__file__).parents[1] / "data"
CHECKPOINT = DATA / "llm-reranker-minicpm-layerwise-tiny"
REFERENCE = DATA / "llm_layerwise_reference.json"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # A tiny model: intra-op threads only add overhead (and seconds on a busy shared machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def model() -> LayerwiseMiniCPMForReranking:
    loaded = LayerwiseMiniCPMForReranking.from_pretrained(CHECKPOINT)
    assert loaded.dtype == torch.float32
    return loaded.eval()


def case(reference: dict[str, Any], name: str) -> Any:
    return next(c for c in reference["cases"] if c["name"] == name)


def batch(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad rows with 0 (<pad>) and a mask, as FlagEmbedding's collator does."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def reference_rows(reference: dict[str, Any]) -> list[list[int]]:
    return [item["input_ids"] for item in reference["inputs"]]


def test_reference_was_computed_on_the_committed_checkpoint(reference: dict[str, Any]) -> None:
    for name, digest in reference["meta"]["checkpoint_sha256"].items():
        assert hashlib.sha256((CHECKPOINT / name).read_bytes()).hexdigest() == digest, name


def test_loads_every_checkpoint_parameter(reference: dict[str, Any]) -> None:
    loaded, info = LayerwiseMiniCPMForReranking.from_pretrained(CHECKPOINT, output_loading_info=True)
    assert not any(info.values()), info
    assert sorted(name for name, _ in loaded.named_parameters()) == reference["meta"]["parameters"]
    assert loaded.score_layers == range(2, 7)
    assert loaded.default_cutoff_layers == (6,)


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("default", None),
        ("layer_middle", [4]),
        ("layer_start", [2]),
        ("layers_last_explicit", [6]),
        ("layers_several", [2, 4, 6]),
        ("layers_all", [2, 3, 4, 5, 6]),
    ],
)
def test_scores_equal_flagembeddings(
    reference: dict[str, Any], model: LayerwiseMiniCPMForReranking, name: str, layers: list[int] | None
) -> None:
    recorded = case(reference, name)
    assert recorded["kwargs"].get("cutoff_layers") == layers
    expected = np.array(recorded["scores"], dtype=np.float64).reshape(len(layers or [6]), -1)
    ids, mask = batch(reference_rows(reference))
    assert (mask.sum(1) != mask.shape[1]).any()  # rows of different lengths: padding is exercised

    scores = model.layer_scores(ids, mask, cutoff_layers=layers)

    assert list(scores) == (layers or [6])
    for layer, want in zip(scores, expected, strict=True):
        assert scores[layer].dtype == torch.float32
        assert scores[layer].shape == (len(ids),)
        np.testing.assert_allclose(scores[layer].numpy(), want, rtol=0, atol=1e-4)


def test_layers_come_back_in_the_order_given(model: LayerwiseMiniCPMForReranking, reference: dict[str, Any]) -> None:
    ids, mask = batch(reference_rows(reference))
    forward = model.layer_scores(ids, mask, cutoff_layers=[3, 5])
    backward = model.layer_scores(ids, mask, cutoff_layers=[5, 3])
    assert list(backward) == [5, 3]
    assert list(model.layer_scores(ids, mask, cutoff_layers=np.array([5, 3]))) == [5, 3]  # numpy ints: plain keys
    for layer in (3, 5):
        torch.testing.assert_close(backward[layer], forward[layer], rtol=0, atol=0)


def test_flagembedding_pairs_unsorted_layers_with_the_wrong_heads(
    reference: dict[str, Any], model: LayerwiseMiniCPMForReranking
) -> None:
    # FlagEmbedding collects hidden states in ascending layer order but indexes heads by the order given:
    # cutoff_layers=[5, 3] returns [head_5(h_3), head_3(h_5)]. The compat layer must know; we do not copy it.
    normed: list[torch.Tensor] = []
    handle = model.model.norm.register_forward_hook(lambda _m, _i, out: normed.append(out))
    try:
        model.layer_scores(*batch(reference_rows(reference)), cutoff_layers=[3, 5])
    finally:
        handle.remove()
    h3, h5 = normed
    with torch.no_grad():
        swapped = [model.lm_head[5 - 2].linear_head(h3), model.lm_head[3 - 2].linear_head(h5)]
    recorded = case(reference, "layers_unsorted")["scores"]
    for got, want in zip(swapped, recorded, strict=True):
        np.testing.assert_allclose(got.reshape(-1).numpy(), want, rtol=0, atol=1e-4)


def test_bad_layers_raise_with_the_valid_range(reference: dict[str, Any], model: LayerwiseMiniCPMForReranking) -> None:
    ids, mask = batch(reference_rows(reference))
    for layers in ([1], [3, 7], [0, 3]):
        bad = next(layer for layer in layers if layer not in range(2, 7))
        with pytest.raises(ValueError, match=rf"cutoff layer {bad} is outside the valid range \[2, 6\]"):
            model.layer_scores(ids, mask, cutoff_layers=layers)
    with pytest.raises(ValueError, match="at least one layer"):
        model.layer_scores(ids, mask, cutoff_layers=[])
    # FlagEmbedding drops the out-of-range layers instead (its compat layer filters, then calls us):
    recorded = case(reference, "layers_some_out_of_range")
    assert recorded["kwargs"]["cutoff_layers"] == [0, 3, 7]
    kept = model.layer_scores(ids, mask, cutoff_layers=[3])[3]
    np.testing.assert_allclose(kept.numpy(), recorded["scores"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(("layers", "calls"), [([2], 2), ([4], 4), ([2, 4], 4), (None, 6), ([6, 3], 6)])
def test_forward_stops_at_the_deepest_requested_layer(
    reference: dict[str, Any], model: LayerwiseMiniCPMForReranking, layers: list[int] | None, calls: int
) -> None:
    ran: list[int] = []
    head_inputs: list[tuple[int, ...]] = []
    handles = [
        layer.register_forward_pre_hook(lambda _m, _a, i=i: ran.append(i)) for i, layer in enumerate(model.model.layers)
    ]
    handles += [
        head.linear_head.register_forward_pre_hook(lambda _m, args: head_inputs.append(tuple(args[0].shape)))
        for head in model.lm_head
    ]
    rows = reference_rows(reference)
    try:
        model.layer_scores(*batch(rows), cutoff_layers=layers)
    finally:
        for handle in handles:
            handle.remove()
    assert ran == list(range(calls))
    # the heads see one vector per row (the last real token), never every position
    assert head_inputs == [(len(rows), 32 * 2)] * len(layers or [6])


def test_batch_composition_does_not_change_a_rows_score(
    reference: dict[str, Any], model: LayerwiseMiniCPMForReranking
) -> None:
    rows = reference_rows(reference)
    layers = [2, 4, 6]
    together = model.layer_scores(*batch(rows), cutoff_layers=layers)
    alone = [model.layer_scores(*batch([row]), cutoff_layers=layers) for row in rows]
    mixed_order = [7, 0, 3]
    mixed = model.layer_scores(*batch([rows[i] for i in mixed_order]), cutoff_layers=layers)
    for layer in layers:
        single = torch.cat([scores[layer] for scores in alone])
        torch.testing.assert_close(single, together[layer], rtol=0, atol=1e-5)
        torch.testing.assert_close(mixed[layer], together[layer][mixed_order], rtol=0, atol=1e-5)
    # FlagEmbedding itself: batch sizes 1 and 4 agree with the default batch of 10
    default = np.array(case(reference, "default")["scores"])
    for name in ("batch_size_1", "batch_size_4"):
        np.testing.assert_allclose(case(reference, name)["scores"], default, rtol=0, atol=1e-5)


def test_normalize_is_the_sigmoid_of_these_scores(
    reference: dict[str, Any], model: LayerwiseMiniCPMForReranking
) -> None:
    scores = model.layer_scores(*batch(reference_rows(reference)), cutoff_layers=[3, 6])
    recorded = case(reference, "normalize_layers")
    assert recorded["kwargs"] == {"normalize": True, "cutoff_layers": [3, 6]}
    for layer, want in zip((3, 6), recorded["scores"], strict=True):
        np.testing.assert_allclose(torch.sigmoid(scores[layer]).numpy(), want, rtol=0, atol=1e-5)


def test_single_shared_head(reference: dict[str, Any], model: LayerwiseMiniCPMForReranking) -> None:
    # head_multi=False: one head for every layer (lm_head.linear_head.weight in the checkpoint).
    config = LayerwiseMiniCPMConfig.from_pretrained(CHECKPOINT, head_multi=False)
    shared = LayerwiseMiniCPMForReranking(config).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("lm_head.")}
    state["lm_head.linear_head.weight"] = model.state_dict()["lm_head.2.linear_head.weight"]  # layer 4's head
    shared.load_state_dict(state)
    ids, mask = batch(reference_rows(reference))
    scores = shared.layer_scores(ids, mask, cutoff_layers=[4, 6])
    np.testing.assert_allclose(scores[4].numpy(), case(reference, "layer_middle")["scores"], rtol=0, atol=1e-4)
    assert not torch.allclose(scores[6], model.layer_scores(ids, mask)[6])  # layer 6 uses layer 4's head here


def test_unsupported_settings_are_refused() -> None:
    small = {"hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 6, "start_layer": 2, "vocab_size": 400}
    for head_type in ("raw", "complex"):
        with pytest.raises(ValueError, match=f"head_type '{head_type}' is not supported"):
            LayerwiseMiniCPMForReranking(LayerwiseMiniCPMConfig(**small, head_type=head_type))
    dynamic = LayerwiseMiniCPMConfig(**small, rope_scaling={"type": "dynamic", "factor": 2.0})
    with pytest.raises(ValueError, match="rope_scaling type 'dynamic' is not supported"):
        LayerwiseMiniCPMForReranking(dynamic)
    with pytest.raises(ValueError, match="start_layer must be in"):
        LayerwiseMiniCPMForReranking(LayerwiseMiniCPMConfig(**{**small, "start_layer": 7}))


def test_bfloat16_runs_close_to_float32(reference: dict[str, Any], model: LayerwiseMiniCPMForReranking) -> None:
    half = LayerwiseMiniCPMForReranking.from_pretrained(CHECKPOINT, dtype=torch.bfloat16).eval()
    ids, mask = batch(reference_rows(reference))
    scores = half.layer_scores(ids, mask, cutoff_layers=[4, 6])
    for layer in (4, 6):
        assert scores[layer].dtype == torch.float32
        torch.testing.assert_close(scores[layer], model.layer_scores(ids, mask, [layer])[layer], rtol=0, atol=5e-2)
