"""BGEReranker on BGE's LLM rerankers: bge-reranker-v2-gemma against FlagEmbedding's own scores.

tests/data/llm_gemma_reference.json holds what FlagEmbedding 1.3.5's ``FlagLLMReranker`` computed on
the committed tiny Gemma checkpoint (scripts/reference/make_llm_gemma_reference.py): the scores of
each ``compute_score`` call and the input ids of each pair.
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
from bge_integrations.core.llm_reranking_model import GEMMA_PROMPT, LoadedLLMReranker, llm_family
from bge_integrations.core.presets import find_preset

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "llm_gemma_reference.json").read_text())
PAIRS = [(q, p) for q, p in REFERENCE["pairs"]]
CASES = {case["name"]: case for case in REFERENCE["cases"]}
# FlagEmbedding's compute_score names -> BGEReranker's.
NAMES = {"query_max_length": "max_query_length"}


def settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {NAMES.get(key, key): value for key, value in kwargs.items()}
    out.setdefault("normalize", False)  # FlagEmbedding's default: raw scores
    return out


@pytest.fixture(scope="module")
def gemma(tiny_llm_gemma_path: str) -> BGEReranker:
    return BGEReranker(tiny_llm_gemma_path, device="cpu", normalize=False, windows=False)


@pytest.mark.parametrize("name", list(CASES))
def test_scores_equal_flagembedding(tiny_llm_gemma_path: str, name: str) -> None:
    case = CASES[name]
    reranker = BGEReranker(tiny_llm_gemma_path, device="cpu", windows=False, **settings(case["kwargs"]))
    got = reranker.score_pairs(PAIRS)
    np.testing.assert_allclose(got, case["scores"], atol=1e-4, rtol=0)


def test_input_ids_equal_flagembedding(gemma: BGEReranker) -> None:
    loaded = gemma._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    assert loaded.family == "llm"
    assert loaded.yes_id == REFERENCE["meta"]["yes_id"]
    encoder = loaded.pair_encoder(512, 384, 64)
    for (query, passage), recorded in zip(PAIRS, REFERENCE["inputs"], strict=True):
        assert encoder.encode(query, [passage], windows=False).input_ids == [recorded["input_ids"]]


def test_layout_is_bos_query_separator_passage_separator_prompt(gemma: BGEReranker) -> None:
    loaded = gemma._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    tokenizer = loaded.tokenizer
    row = loaded.pair_encoder(512, 384, 64).encode("what is a panda?", ["a bear"], windows=False).input_ids[0]
    expected = [tokenizer.bos_token_id]
    for text in ("A: what is a panda?", "\n", "B: a bear", "\n", GEMMA_PROMPT):
        expected += tokenizer(text, add_special_tokens=False)["input_ids"]
    assert row == expected


def test_score_is_the_yes_logit_at_the_last_token(gemma: BGEReranker, tiny_llm_gemma_path: str) -> None:
    """Independently of FlagEmbedding: the full causal LM's logits, read at the last token's "Yes" entry."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llm_gemma_path).eval()
    loaded = gemma._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    row = REFERENCE["inputs"][0]["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([row])).logits
    assert gemma.score_pairs([PAIRS[0]]) == pytest.approx([logits[0, -1, loaded.yes_id].item()], abs=1e-5)


def test_never_computes_the_vocabulary_at_every_position(gemma: BGEReranker) -> None:
    loaded = gemma._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    head = loaded.model.get_output_embeddings()
    calls: list[int] = []
    handle = head.register_forward_hook(lambda *_: calls.append(1))
    try:
        scores = gemma.score_pairs(PAIRS)
    finally:
        handle.remove()
    assert calls == []
    np.testing.assert_allclose(scores, CASES["default"]["scores"], atol=1e-4)


def test_batch_composition_does_not_change_a_score(tiny_llm_gemma_path: str) -> None:
    one = BGEReranker(tiny_llm_gemma_path, device="cpu", normalize=False, windows=False, batch_size=1)
    many = BGEReranker(tiny_llm_gemma_path, device="cpu", normalize=False, windows=False, batch_size=7)
    np.testing.assert_allclose(one.score_pairs(PAIRS), many.score_pairs(PAIRS), atol=1e-5)
    # FlagEmbedding with a left-padding tokenizer gives the same (RoPE sees relative positions only).
    for scores in REFERENCE["left_padding"].values():
        np.testing.assert_allclose(scores, CASES["default"]["scores"], atol=1e-4)


def test_default_normalize_is_the_sigmoid_and_matches_flagembedding(tiny_llm_gemma_path: str) -> None:
    reranker = BGEReranker(tiny_llm_gemma_path, device="cpu", windows=False)
    np.testing.assert_allclose(reranker.score_pairs(PAIRS), CASES["normalize"]["scores"], atol=1e-5)


def test_long_passages_are_read_in_windows(tiny_llm_gemma_path: str) -> None:
    """The first window is FlagEmbedding's truncated input; later windows can only raise a max."""
    truncated = BGEReranker(tiny_llm_gemma_path, device="cpu", normalize=False, windows=False, max_length=32)
    windowed = BGEReranker(tiny_llm_gemma_path, device="cpu", normalize=False, max_length=32)
    first = np.array(truncated.score_pairs(PAIRS))
    best = np.array(windowed.score_pairs(PAIRS))
    np.testing.assert_allclose(first, CASES["max_length_32"]["scores"], atol=1e-4)
    loaded = windowed._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    encoder = loaded.pair_encoder(32, 24, 64)
    counts = [len(encoder.encode(q, [p], windows=True).input_ids) for q, p in PAIRS]
    long = [i for i, n in enumerate(counts) if n > 1]
    assert long, "the fixture needs passages longer than one window"
    assert (best >= first - 1e-6).all()
    assert any(best[i] > first[i] + 1e-3 for i in long)
    short = [i for i, n in enumerate(counts) if n == 1]
    np.testing.assert_allclose(best[short], first[short], atol=1e-6)
    # Every later window repeats the query, starts again with "B: " and ends with the prompt.
    batch = encoder.encode(PAIRS[6][0], [PAIRS[6][1]], windows=True)
    rows, head, tail = batch.input_ids, batch.query_lengths[0], batch.prompt_lengths[0]
    prefix = loaded.tokenizer("B: ", add_special_tokens=False)["input_ids"]
    assert len(rows) > 1
    for row in rows[1:]:
        assert row[:head] == rows[0][:head]
        assert row[head : head + len(prefix)] == prefix
        assert row[-tail:] == rows[0][-tail:]
        assert len(row) <= len(rows[0])


def test_async_and_rank_agree_with_score(gemma: BGEReranker) -> None:
    query = PAIRS[0][0]
    documents = [p for q, p in PAIRS if q == query]
    scores = gemma.score(query, documents)
    assert asyncio.run(gemma.ascore(query, documents)) == pytest.approx(scores, abs=1e-6)
    ranked = gemma.rank(query, documents)
    assert [item.index for item in ranked] == sorted(range(len(documents)), key=lambda i: -scores[i])


def test_settings_the_family_does_not_read_are_refused(tiny_llm_gemma_path: str, tiny_reranker_path: str) -> None:
    with pytest.raises(ValueError, match=r"compress_ratio=2 applies to the lightweight"):
        BGEReranker(tiny_llm_gemma_path, device="cpu", compress_ratio=2).score("q", ["p"])
    with pytest.raises(ValueError, match=r"cutoff_layers=\(1,\) applies to a layerwise"):
        BGEReranker(tiny_llm_gemma_path, device="cpu", cutoff_layers=1).score("q", ["p"])
    with pytest.raises(ValueError, match=r"prompt='x' applies to an LLM reranker.*is a cross-encoder"):
        BGEReranker(tiny_reranker_path, device="cpu", prompt="x").score("q", ["p"])
    with pytest.raises(ValueError, match=r"score_layers needs a layerwise or lightweight"):
        BGEReranker(tiny_llm_gemma_path, device="cpu").score_layers("q", ["p"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compress_ratio": 3}, r"compress_ratio must be 1, 2, 4 or 8 \(or None\), got 3"),
        ({"compress_ratio": True}, r"compress_ratio must be 1, 2, 4 or 8"),
        ({"cutoff_layers": []}, r"cutoff_layers must be an int or a non-empty list of ints, got \[\]"),
        ({"cutoff_layers": [2, 2]}, r"cutoff_layers must hold distinct ints >= 1, got \[2, 2\]"),
        ({"cutoff_layers": 0}, r"cutoff_layers must hold distinct ints >= 1, got 0"),
        ({"compress_layers": "8"}, r"compress_layers must be an int or a non-empty list of ints, got '8'"),
        ({"prompt": ""}, r"prompt must be a non-empty string or None, got ''"),
    ],
)
def test_constructor_checks_llm_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BGEReranker("BAAI/bge-reranker-v2-gemma", **kwargs)


def test_presets_and_families() -> None:
    for name in ("BAAI/bge-reranker-v2-gemma", "BAAI/bge-reranker-v2-minicpm-layerwise"):
        preset = find_preset(name, kind="reranker")
        assert preset is not None
        assert preset.name == name
    preset = find_preset("/models/bge-reranker-v2.5-gemma2-lightweight-finetuned", kind="reranker")
    assert preset is not None
    assert preset.name == "BAAI/bge-reranker-v2.5-gemma2-lightweight"
    assert llm_family(["GemmaForCausalLM"]) == "llm"
    assert llm_family(["LayerWiseMiniCPMForCausalLM"]) == "llm-layerwise"
    assert llm_family(["CostWiseGemmaForCausalLM"]) == "llm-lightweight"
    assert llm_family(["XLMRobertaForSequenceClassification"]) is None
    assert llm_family(None) is None


def test_sentence_transformers_cross_encoder_scores_otherwise(tiny_llm_gemma_path: str) -> None:
    """sentence-transformers 6 loads the checkpoint as a CrossEncoder without complaint, but scores
    lowercase "yes"/"no" log-odds of its own input (no "A: "/"B: ", no prompt): not bge-reranker-v2-gemma's scores."""
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.modules.logit_score import LogitScore

    ce = CrossEncoder(tiny_llm_gemma_path, device="cpu")
    reference = np.array(CASES["normalize"]["scores"])
    got = np.asarray(ce.predict(PAIRS))
    # Here "yes" and "no" are both <unk>: every pair gets log-odds 0, sigmoid 0.5, whatever the passage.
    assert np.allclose(got, 0.5)
    assert not np.allclose(got, reference, atol=1e-2)
    # Even told to read the raw logit of "Yes" (FlagEmbedding's token), its input layout gives other scores.
    yes = ce.tokenizer("Yes", add_special_tokens=False)["input_ids"][0]
    ce[1] = LogitScore(true_token_id=yes)
    raw = np.asarray(ce.predict(PAIRS, activation_fn=torch.nn.Identity()))
    assert np.abs(raw - np.array(CASES["default"]["scores"])).max() > 0.1


def test_transformers_tokenizer_path_gives_the_same_ids(gemma: BGEReranker) -> None:
    """Where the tokenizer's backend would disagree with the tokenizer on the probes, the encoder
    tokenizes with the transformers tokenizer (FlagEmbedding's own path): the same inputs here."""
    loaded = gemma._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    encoder = loaded.pair_encoder(512, 384, 64)
    assert encoder._exact_backend
    slow = type(encoder)(loaded.tokenizer, max_length=512, max_query_length=384, window_overlap=64, prompt=GEMMA_PROMPT)
    slow._exact_backend = False
    slow._clips = False
    for (query, passage), recorded in zip(PAIRS, REFERENCE["inputs"], strict=True):
        assert slow.encode(query, [passage], windows=False).input_ids == [recorded["input_ids"]]


def test_a_setting_the_family_ignores_is_refused_when_the_model_is_already_loaded(tiny_llm_gemma_path: str) -> None:
    BGEReranker(tiny_llm_gemma_path, device="cpu").score("q", ["p"])
    with pytest.raises(ValueError, match=r"compress_ratio=2 applies to the lightweight"):
        BGEReranker(tiny_llm_gemma_path, device="cpu", compress_ratio=2).score("q", ["p"])
