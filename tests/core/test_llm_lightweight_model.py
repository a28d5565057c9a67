"""The lightweight Gemma2 model port scores exactly as FlagEmbedding's own classes.

tests/data/llm_lightweight_reference.json holds what FlagEmbedding 1.3.5's ``LightWeightFlagLLMReranker``
(transformers 4.46.0, the version its Gemma2 code needs; float32, CPU) returned for
tests/data/llm-reranker-gemma2-lightweight-tiny, and the token ids, query and prompt lengths it fed the
model; made by scripts/reference/make_llm_lightweight_reference.py in a separate venv. The tiny checkpoint
has 6 layers (even ones with a 16-token sliding window), start_layer 2, layer_sep 1 (score layers 2..6),
attention softcapping 2.0 and final softcapping 3.0. FlagEmbedding runs SDPA (no attention softcapping)
unless loaded with ``attn_implementation="eager"``: the ``eager_*`` cases.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from bge_integrations.core.llm_models.gemma2_lightweight import (
    LightweightGemma2Config,
    LightweightGemma2ForReranking,
    token_compress,
)

DATA = Path(__file__).parents[1] / "data"
CHECKPOINT = DATA / "llm-reranker-gemma2-lightweight-tiny"
REFERENCE = DATA / "llm_lightweight_reference.json"
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


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
def model() -> LightweightGemma2ForReranking:
    loaded = LightweightGemma2ForReranking.from_pretrained(CHECKPOINT)
    assert loaded.dtype == torch.float32
    assert loaded.config._attn_implementation == "sdpa"
    return loaded.eval()


@pytest.fixture(scope="module")
def eager_model() -> LightweightGemma2ForReranking:
    loaded = LightweightGemma2ForReranking.from_pretrained(CHECKPOINT, attn_implementation="eager")
    return loaded.eval()


def case(reference: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in reference["cases"] if c["name"] == name)
    return found


def batch(items: list[dict[str, Any]]) -> Batch:
    """Right-pad rows with 0 (<pad>) and a mask, as FlagEmbedding's collator does."""
    width = max(len(item["input_ids"]) for item in items)
    ids = torch.tensor([item["input_ids"] + [0] * (width - len(item["input_ids"])) for item in items])
    mask = torch.tensor([[1] * len(item["input_ids"]) + [0] * (width - len(item["input_ids"])) for item in items])
    query = torch.tensor([item["query_length"] for item in items])
    prompt = torch.tensor([item["prompt_length"] for item in items])
    return ids, mask, query, prompt


def expected_by_layer(entry: dict[str, Any], layers: list[int]) -> dict[int, list[float]]:
    """FlagEmbedding returns one list per kept layer, in ascending layer order (one list: bare)."""
    scores = entry["scores"]
    lists = scores if isinstance(scores[0], list) else [scores]
    kept = sorted(set(layers))
    assert len(lists) == len(kept)
    return dict(zip(kept, lists, strict=True))


def assert_case(model: LightweightGemma2ForReranking, reference: dict[str, Any], name: str) -> None:
    entry = case(reference, name)
    kwargs = entry["kwargs"]
    cutoff = [layer for layer in kwargs.get("cutoff_layers", [6]) if layer in model.score_layers]
    items = entry.get("inputs", reference["inputs"])
    got = model.layer_scores(
        *batch(items),
        cutoff_layers=cutoff,
        compress_layers=kwargs.get("compress_layers"),
        compress_ratio=kwargs.get("compress_ratio"),
    )
    assert list(got) == list(dict.fromkeys(cutoff))
    for layer, want in expected_by_layer(entry, cutoff).items():
        scores = got[layer]
        assert scores.dtype == torch.float32
        assert scores.shape == (len(items),)
        if kwargs.get("normalize"):
            scores = torch.sigmoid(scores)
        torch.testing.assert_close(scores.double(), torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-4)


def test_reference_was_computed_on_the_committed_checkpoint(reference: dict[str, Any]) -> None:
    for name, digest in reference["meta"]["checkpoint_sha256"].items():
        assert hashlib.sha256((CHECKPOINT / name).read_bytes()).hexdigest() == digest
    assert reference["meta"]["attn_implementation"] == "sdpa"
    assert reference["meta"]["dtype"].startswith("float32")


def test_loads_the_checkpoint_unchanged(model: LightweightGemma2ForReranking, reference: dict[str, Any]) -> None:
    assert isinstance(model.config, LightweightGemma2Config)
    assert model.config.model_type == "cost_wise_gemma"
    assert sorted(name for name, _ in model.named_parameters()) == reference["meta"]["parameters"]
    assert model.score_layers == range(2, 7)
    assert model.default_cutoff_layers == (6,)


@pytest.mark.parametrize(
    "name",
    [
        "default",
        "layer_middle",
        "layer_start",
        "layers_several",
        "layers_all",
        "layers_unsorted",
        "layers_some_out_of_range",
        "normalize_layers",
        "batch_size_4_layers",
    ],
)
def test_cutoff_layers_match_flagembedding(
    model: LightweightGemma2ForReranking, reference: dict[str, Any], name: str
) -> None:
    assert_case(model, reference, name)


@pytest.mark.parametrize(
    "name",
    [
        "model_card",
        "compress_1",
        "compress_2",
        "compress_4",
        "compress_8",
        "compress_2_twice_layers",
        "compress_4_with_layer_0",
        "compress_only_layer_0",
        "compress_default_layers",
        "compress_2_batch_size_4",
    ],
)
def test_token_compression_matches_flagembedding(
    model: LightweightGemma2ForReranking, reference: dict[str, Any], name: str
) -> None:
    assert_case(model, reference, name)


@pytest.mark.parametrize("name", ["prompt_custom", "max_length_12", "max_length_12_query_4"])
def test_other_inputs_match_flagembedding(
    model: LightweightGemma2ForReranking, reference: dict[str, Any], name: str
) -> None:
    assert_case(model, reference, name)


@pytest.mark.parametrize("name", ["eager_default", "eager_layers_compress"])
def test_eager_attention_applies_softcapping_as_flagembedding(
    eager_model: LightweightGemma2ForReranking, reference: dict[str, Any], name: str
) -> None:
    assert case(reference, name)["attn_implementation"] == "eager"
    assert_case(eager_model, reference, name)


def test_sdpa_skips_the_attention_softcapping_as_flagembedding(reference: dict[str, Any]) -> None:
    eager, sdpa = case(reference, "eager_default")["scores"], case(reference, "default")["scores"]
    assert max(abs(a - b) for a, b in zip(eager, sdpa, strict=True)) > 0.1


def test_the_head_is_picked_by_rank_not_by_layer(
    model: LightweightGemma2ForReranking, reference: dict[str, Any]
) -> None:
    alone = case(reference, "layer_middle")["scores"]  # cutoff [4]: lm_head[0]
    among = expected_by_layer(case(reference, "layers_several"), [2, 4, 6])[4]  # lm_head[1]
    assert max(abs(a - b) for a, b in zip(alone, among, strict=True)) > 0.1
    ids, mask, query, prompt = batch(reference["inputs"])
    weight = model.lm_head[1].linear_head.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.copy_(model.lm_head[0].linear_head.weight)
    try:
        torch.testing.assert_close(
            model.layer_scores(ids, mask, query, prompt, cutoff_layers=[2, 4])[4].double(),
            torch.tensor(alone, dtype=torch.float64),
            rtol=0,
            atol=1e-4,
        )
    finally:
        with torch.no_grad():
            weight.copy_(saved)


def test_batch_composition_does_not_change_scores(
    model: LightweightGemma2ForReranking, reference: dict[str, Any]
) -> None:
    items = reference["inputs"]
    kwargs: dict[str, Any] = {"cutoff_layers": [3, 6], "compress_layers": [2], "compress_ratio": 2}
    together = model.layer_scores(*batch(items), **kwargs)
    reordered = [items[i] for i in (7, 2, 9)]
    subset = model.layer_scores(*batch(reordered), **kwargs)
    for layer in (3, 6):
        for row, i in enumerate((7, 2, 9)):
            single = model.layer_scores(*batch([items[i]]), **kwargs)[layer][0]
            assert abs(float(single) - float(together[layer][i])) < 1e-5
            assert abs(float(subset[layer][row]) - float(together[layer][i])) < 1e-5


def test_batch_size_cases_agree(reference: dict[str, Any]) -> None:
    for left, right in (("batch_size_1", "batch_size_4"), ("compress_2_batch_size_1", "compress_2_batch_size_4")):
        a, b = case(reference, left)["scores"], case(reference, right)["scores"]
        assert max(abs(x - y) for x, y in zip(a, b, strict=True)) < 1e-5


def test_forward_stops_at_the_deepest_requested_layer(
    model: LightweightGemma2ForReranking, reference: dict[str, Any]
) -> None:
    calls: list[int] = []
    handles = [
        layer.register_forward_hook(lambda module, args, out, i=i: calls.append(i))
        for i, layer in enumerate(model.model.layers)
    ]
    try:
        model.layer_scores(*batch(reference["inputs"][:3]), cutoff_layers=[4, 2])
        assert calls == [0, 1, 2, 3]
        calls.clear()
        model.layer_scores(*batch(reference["inputs"][:3]), cutoff_layers=[6])
        assert calls == [0, 1, 2, 3, 4, 5]
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize("layer", [0, 1, 7, -1])
def test_a_layer_outside_the_range_is_refused(
    model: LightweightGemma2ForReranking, reference: dict[str, Any], layer: int
) -> None:
    with pytest.raises(ValueError, match=rf"cutoff layer {layer} is outside the valid layers range\(2, 7\)"):
        model.layer_scores(*batch(reference["inputs"][:2]), cutoff_layers=[4, layer])


def test_an_empty_cutoff_list_is_refused(model: LightweightGemma2ForReranking, reference: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        model.layer_scores(*batch(reference["inputs"][:2]), cutoff_layers=[])


@pytest.mark.parametrize("ratio", [0, 3, 16])
def test_an_unsupported_compress_ratio_is_refused(
    model: LightweightGemma2ForReranking, reference: dict[str, Any], ratio: int
) -> None:
    with pytest.raises(ValueError, match=rf"compress_ratio must be one of \(1, 2, 4, 8\), got {ratio}"):
        model.layer_scores(*batch(reference["inputs"][:2]), compress_ratio=ratio, compress_layers=[2])


def test_token_compress_averages_passage_groups() -> None:
    hidden = torch.arange(1.0, 10.0).reshape(1, 9, 1).repeat(2, 1, 1)
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3])
    # row 0: query 2, passage 5 (3..7), prompt 2; row 1: query 1, passage 3 (2..4), prompt 2
    new, new_mask = token_compress(2, hidden, mask, [2, 1], [2, 2])
    assert new[0, :, 0].tolist() == [1.0, 2.0, 3.5, 5.5, 7.0, 8.0, 9.0]
    assert new[1, :, 0].tolist() == [1.0, 2.5, 4.0, 5.0, 6.0, 0.0, 0.0]
    assert new_mask.tolist() == [[1] * 7, [1] * 5 + [0] * 2]
    assert new_mask.dtype == mask.dtype


def test_non_layerwise_checkpoints_are_refused() -> None:
    config = LightweightGemma2Config(
        vocab_size=16, hidden_size=8, intermediate_size=8, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=4, start_layer=1, layer_sep=1, layer_wise=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="layer_wise=False"):
        LightweightGemma2ForReranking(config)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("dtype", "atol"), [(torch.bfloat16, 0.3), (torch.float16, 0.05)])
def test_half_precision_is_close_to_the_float32_reference(
    reference: dict[str, Any], device: str, dtype: torch.dtype, atol: float
) -> None:
    # Measured on CPU: bf16 within 0.08 of FlagEmbedding's float32 scores, fp16 within 0.008.
    half = LightweightGemma2ForReranking.from_pretrained(CHECKPOINT, dtype=dtype).to(device).eval()
    assert half.dtype == dtype
    entry = case(reference, "compress_2_twice_layers")
    ids, mask, query, prompt = (t.to(device) for t in batch(reference["inputs"]))
    got = half.layer_scores(
        ids, mask, query, prompt, cutoff_layers=[2, 3, 4, 6], compress_layers=[2, 4], compress_ratio=2
    )
    for layer, want in expected_by_layer(entry, [2, 3, 4, 6]).items():
        assert got[layer].dtype == torch.float32
        torch.testing.assert_close(
            got[layer].cpu().double(), torch.tensor(want, dtype=torch.float64), rtol=0, atol=atol
        )
