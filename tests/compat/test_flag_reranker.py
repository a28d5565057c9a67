"""compat.FlagReranker against FlagEmbedding 1.4's encoder reranker, on a tiny XLM-RoBERTa.

The reference is FlagEmbedding's own computation (``BaseReranker.compute_score_single_gpu``):
the query tokenized without special tokens and cut to ``query_max_length`` (3/4 of max_length by
default), the passage cut so that the pair fits (``prepare_for_model(..., truncation="only_second")``,
which transformers 5 no longer has, so it is written out for XLM-R's ``<s> q </s></s> p </s>``),
padded, ``AutoModelForSequenceClassification`` logits, ``float(1 / (1 + np.exp(-x)))`` to normalise.
"""

from __future__ import annotations

import inspect
import warnings
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bge_integrations import BGEReranker, TruncationWarning
from bge_integrations.compat import FlagReranker
from bge_integrations.core.loading import REGISTRY

PAIRS = [
    ["what is panda?", "hi"],
    ["what is panda?", "The giant panda is a bear species endemic to China."],
    ["capital of France", "Paris is the capital and most populous city of France."],
    ["capital of France", ""],
]
LONG = "The quick brown fox jumps over the lazy dog. " * 20


@cache
def _loaded(path: str) -> tuple[Any, Any]:
    return AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(path).eval()


def flag_reference(
    path: str, pairs: list[list[str]], *, max_length: int = 512, query_max_length: int | None = None
) -> list[float]:
    """FlagEmbedding's compute_score_single_gpu, raw logits."""
    tokenizer, model = _loaded(path)
    query_max_length = max_length * 3 // 4 if query_max_length is None else query_max_length
    items = []
    for query, passage in pairs:
        q = tokenizer(query, add_special_tokens=False, max_length=query_max_length, truncation=True)["input_ids"]
        p = tokenizer(passage, add_special_tokens=False, max_length=max_length, truncation=True)["input_ids"]
        p = p[: max(0, max_length - len(q) - tokenizer.num_special_tokens_to_add(pair=True))]  # only_second
        ids = [tokenizer.cls_token_id, *q, tokenizer.sep_token_id, tokenizer.sep_token_id, *p, tokenizer.sep_token_id]
        items.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    inputs = tokenizer.pad(items, padding=True, return_tensors="pt")
    with torch.no_grad():
        scores: list[float] = model(**inputs, return_dict=True).logits.view(-1).float().tolist()
    return scores


def flag_sigmoid(x: float) -> float:
    return float(1 / (1 + np.exp(-x)))


def test_reference_matches_transformers_pair_encoding(tiny_reranker_path: str) -> None:
    """The written-out prepare_for_model equals the tokenizer's own pair encoding on short pairs."""
    tokenizer, model = _loaded(tiny_reranker_path)
    inputs = tokenizer(PAIRS, padding=True, truncation="only_second", max_length=512, return_tensors="pt")
    with torch.no_grad():
        expected = model(**inputs).logits.view(-1).tolist()
    np.testing.assert_allclose(flag_reference(tiny_reranker_path, PAIRS), expected, atol=1e-5)


class TestSignatures:
    """The parameters, order and defaults of FlagEmbedding 1.4's FlagReranker (BaseReranker)."""

    def test_constructor(self) -> None:
        params = inspect.signature(FlagReranker).parameters
        expected = {
            "model_name_or_path": inspect.Parameter.empty,
            "use_fp16": False,
            "query_instruction_for_rerank": None,
            "query_instruction_format": "{}{}",
            "passage_instruction_for_rerank": None,
            "passage_instruction_format": "{}{}",
            "trust_remote_code": False,
            "cache_dir": None,
            "devices": None,
            "batch_size": 128,
            "query_max_length": None,
            "max_length": 512,
            "normalize": False,
        }
        assert list(params)[: len(expected)] == list(expected)
        assert {name: params[name].default for name in expected} == expected

    def test_compute_score(self) -> None:
        params = inspect.signature(FlagReranker.compute_score).parameters
        assert list(params)[1:6] == ["sentence_pairs", "batch_size", "query_max_length", "max_length", "normalize"]
        assert all(params[name].default is None for name in list(params)[2:6])


class TestScores:
    def test_list_of_pairs_gives_logits_equal_to_reference(self, tiny_reranker_path: str) -> None:
        scores = FlagReranker(tiny_reranker_path).compute_score(PAIRS)
        assert isinstance(scores, list)
        assert all(type(score) is float for score in scores)
        np.testing.assert_allclose(scores, flag_reference(tiny_reranker_path, PAIRS), atol=1e-5)

    def test_one_pair_gives_a_list_of_one_float(self, tiny_reranker_path: str) -> None:
        # FlagEmbedding >= 1.2.11 returns a list even for one pair (it used to return a float).
        reranker = FlagReranker(tiny_reranker_path)
        score = reranker.compute_score(["query", "passage"])
        assert isinstance(score, list)
        assert len(score) == 1
        assert type(score[0]) is float
        np.testing.assert_allclose(score, flag_reference(tiny_reranker_path, [["query", "passage"]]), atol=1e-5)
        assert reranker.compute_score(("query", "passage")) == score  # a tuple pair, too

    def test_tuples_lists_and_arrays_alike(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path)
        assert reranker.compute_score([tuple(pair) for pair in PAIRS]) == reranker.compute_score(PAIRS)
        assert reranker.compute_score(np.array(PAIRS)) == reranker.compute_score(PAIRS)  # type: ignore[arg-type]

    def test_normalize_is_flagembeddings_sigmoid(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path)
        logits = reranker.compute_score(PAIRS)
        assert reranker.compute_score(PAIRS, normalize=True) == [flag_sigmoid(x) for x in logits]
        normalized = FlagReranker(tiny_reranker_path, normalize=True)
        assert normalized.compute_score(PAIRS) == [flag_sigmoid(x) for x in logits]
        assert normalized.compute_score(PAIRS, normalize=False) == logits
        assert all(0 < s < 1 for s in normalized.compute_score(PAIRS))

    def test_equal_to_the_core_per_query(self, tiny_reranker_path: str) -> None:
        scores = FlagReranker(tiny_reranker_path).compute_score(PAIRS)
        core = BGEReranker(tiny_reranker_path, device="cpu", windows=False, normalize=False)
        for query in ("what is panda?", "capital of France"):
            rows = [i for i, (q, _) in enumerate(PAIRS) if q == query]
            expected = core.score(query, [PAIRS[i][1] for i in rows])
            np.testing.assert_allclose([scores[i] for i in rows], expected, atol=1e-5)
        assert REGISTRY.load_count == 1  # one copy of the weights for both

    def test_loads_in_the_constructor_once(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path)
        assert REGISTRY.load_count == 1
        reranker.compute_score(PAIRS)
        reranker.compute_score(PAIRS, max_length=64, query_max_length=16)
        assert REGISTRY.load_count == 1
        reranker.stop_self_pool()
        assert REGISTRY.loaded_keys() == []
        np.testing.assert_allclose(reranker.compute_score(PAIRS), flag_reference(tiny_reranker_path, PAIRS), atol=1e-5)
        assert REGISTRY.load_count == 2  # loaded again on use

    def test_batch_size_and_order_do_not_change_scores(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path, batch_size=1)
        scores = reranker.compute_score(PAIRS)
        np.testing.assert_allclose(reranker.compute_score(PAIRS, batch_size=3), scores, atol=1e-5)
        np.testing.assert_allclose(reranker.compute_score(PAIRS[::-1])[::-1], scores, atol=1e-5)

    def test_use_fp16_is_ignored_on_cpu(self, tiny_reranker_path: str) -> None:
        scores = FlagReranker(tiny_reranker_path, use_fp16=True, devices="cpu").compute_score(PAIRS)
        np.testing.assert_allclose(scores, flag_reference(tiny_reranker_path, PAIRS), atol=1e-5)

    def test_empty_list(self, tiny_reranker_path: str) -> None:
        assert FlagReranker(tiny_reranker_path).compute_score([]) == []


class TestTruncation:
    """FlagEmbedding cuts the query to query_max_length, then the passage to fit: never windows."""

    def test_long_passage_is_truncated_with_one_warning(self, tiny_reranker_path: str) -> None:
        pairs = [["what is panda?", LONG], ["what is panda?", "short"]]
        reranker = FlagReranker(tiny_reranker_path, max_length=32)
        # FlagEmbedding says nothing; the core's score_pairs counts and warns once per model, as FlagModel does.
        with pytest.warns(TruncationWarning, match=r"1 of 2 passages \(windows=False\) are longer") as record:
            scores = reranker.compute_score(pairs)
        assert record[0].filename == __file__
        np.testing.assert_allclose(scores, flag_reference(tiny_reranker_path, pairs, max_length=32), atol=1e-5)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per model
            assert reranker.compute_score(pairs) == scores

    def test_long_query_is_cut_to_three_quarters(self, tiny_reranker_path: str) -> None:
        pairs = [[LONG, LONG], [LONG, "short"]]
        with pytest.warns(TruncationWarning, match="1 of 1 queries are longer than the 30 tokens"):
            scores = FlagReranker(tiny_reranker_path, max_length=40).compute_score(pairs)
        np.testing.assert_allclose(scores, flag_reference(tiny_reranker_path, pairs, max_length=40), atol=1e-5)

    def test_query_max_length_setting_and_per_call(self, tiny_reranker_path: str) -> None:
        pairs = [[LONG, LONG], ["what is panda?", LONG]]
        expected = flag_reference(tiny_reranker_path, pairs, max_length=40, query_max_length=10)
        reranker = FlagReranker(tiny_reranker_path, max_length=40, query_max_length=10)
        with pytest.warns(TruncationWarning, match="queries are longer"):
            np.testing.assert_allclose(reranker.compute_score(pairs), expected, atol=1e-5)
        per_call = FlagReranker(tiny_reranker_path).compute_score(pairs, max_length=40, query_max_length=10)
        np.testing.assert_allclose(per_call, expected, atol=1e-5)

    def test_passage_max_length_is_accepted_and_has_no_effect(self, tiny_reranker_path: str) -> None:
        # FlagEmbedding's README passes it; FlagEmbedding keeps it as an attribute and never uses it.
        pairs = [["what is panda?", LONG]]
        reranker = FlagReranker(tiny_reranker_path, max_length=48, passage_max_length=8)
        assert reranker.passage_max_length == 8
        with pytest.warns(TruncationWarning, match="longer than the 48 tokens"):  # max_length, not 8
            scores = reranker.compute_score(pairs)
        np.testing.assert_allclose(scores, flag_reference(tiny_reranker_path, pairs, max_length=48), atol=1e-5)


class TestInstructions:
    def test_query_and_passage_instructions(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(
            tiny_reranker_path,
            query_instruction_for_rerank="A",
            query_instruction_format="{}: {}",
            passage_instruction_for_rerank="B",
            passage_instruction_format="{}: {}",
        )
        formatted = [[f"A: {q}", f"B: {p}"] for q, p in PAIRS]
        np.testing.assert_allclose(
            reranker.compute_score(PAIRS), flag_reference(tiny_reranker_path, formatted), atol=1e-5
        )

    def test_no_instruction_by_default(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path, query_instruction_for_rerank="query: ")
        formatted = [[f"query: {q}", p] for q, p in PAIRS]
        np.testing.assert_allclose(
            reranker.compute_score(PAIRS), flag_reference(tiny_reranker_path, formatted), atol=1e-5
        )
        assert FlagReranker(tiny_reranker_path).query_instruction_for_rerank is None


def test_two_devices_split_the_work_and_agree(tiny_reranker_path: str) -> None:
    pairs = [[q, f"{p} ({i})"] for i, (q, p) in enumerate(PAIRS * 3)]
    reranker = FlagReranker(tiny_reranker_path, devices=["cpu", "cpu:0"])
    assert REGISTRY.load_count == 2
    np.testing.assert_allclose(reranker.compute_score(pairs), flag_reference(tiny_reranker_path, pairs), atol=1e-5)


class TestErrors:
    @pytest.mark.parametrize(
        ("pairs", "match"),
        [
            ("query", "sentence_pairs must be a .query, passage. pair or a list of pairs, got 'query'"),
            (None, "got None"),
            ([["q", "p"], ["q"]], r"sentence_pairs\[1\] must be a \[query, passage\] pair, got \['q'\]"),
            ([["q", "p", "x"]], r"sentence_pairs\[0\] must be a \[query, passage\] pair"),
            ([["q", "p"], ["q", None]], r"sentence_pairs\[1\] passage must be a string, got NoneType"),
            ([[1, "p"]], r"sentence_pairs\[0\] query must be a string, got int: 1"),
            (["q", 2], r"sentence_pairs\[0\] passage must be a string, got int: 2"),
        ],
    )
    def test_bad_pairs(self, tiny_reranker_path: str, pairs: object, match: str) -> None:
        with pytest.raises(TypeError, match=match):
            FlagReranker(tiny_reranker_path).compute_score(pairs)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"batch_size": 0}, ValueError, "batch_size must be an int > 0, got 0"),
            ({"max_length": 0}, ValueError, "max_length must be an int > 0, got 0"),
            ({"query_max_length": 512}, ValueError, "query_max_length must be < max_length=512, got 512"),
            ({"query_max_length": 0}, ValueError, "query_max_length must be an int > 0, got 0"),
            ({"passage_instruction_format": 3}, TypeError, "passage_instruction_format must be a string"),
            ({"devices": []}, ValueError, r"devices must be .* got \[\]"),
        ],
    )
    def test_bad_settings(self, tiny_reranker_path: str, kwargs: dict[str, Any], error: type, match: str) -> None:
        with pytest.raises(error, match=match):
            FlagReranker(tiny_reranker_path, **kwargs)

    def test_bad_call_settings(self, tiny_reranker_path: str) -> None:
        reranker = FlagReranker(tiny_reranker_path)
        with pytest.raises(ValueError, match="query_max_length must be < max_length=16, got 20"):
            reranker.compute_score(PAIRS, max_length=16, query_max_length=20)
        with pytest.raises(ValueError, match="batch_size must be an int > 0, got 0"):
            reranker.compute_score(PAIRS, batch_size=0)
        with pytest.raises(TypeError, match=r"compute_score got unexpected keyword argument.*'cutoff_layers'"):
            reranker.compute_score(PAIRS, cutoff_layers=[28])

    def test_unknown_constructor_kwargs_are_ignored_with_a_warning(self, tiny_reranker_path: str) -> None:
        with pytest.warns(UserWarning, match=r"FlagReranker ignores keyword argument.*'model_class'"):
            FlagReranker(tiny_reranker_path, model_class="encoder-only-base")


@pytest.mark.gpu
def test_on_cuda_fp32_by_default_and_fp16_when_asked(tiny_reranker_path: str) -> None:
    expected = flag_reference(tiny_reranker_path, PAIRS)
    fp32 = FlagReranker(tiny_reranker_path)  # FlagReranker's use_fp16 defaults to False
    assert fp32.target_devices == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    np.testing.assert_allclose(fp32.compute_score(PAIRS), expected, atol=1e-4)
    fp16 = FlagReranker(tiny_reranker_path, use_fp16=True).compute_score(PAIRS)
    assert all(type(score) is float for score in fp16)
    np.testing.assert_allclose(fp16, expected, atol=2e-2)
