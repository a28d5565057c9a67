"""compat.BGEM3FlagModel against FlagEmbedding's own BGEM3FlagModel outputs on the tiny bge-m3.

tests/data/m3_reference.json holds what FlagEmbedding 1.3.5 returned on tests/data/bge-m3-tiny
(CPU, float32), made by scripts/reference/make_m3_reference.py. Every number here is compared
with it: dense vectors to 1e-5; lexical weights (keys, their order, values), ColBERT vectors and
scores to 1e-4; result types as FlagEmbedding's.
"""

from __future__ import annotations

import inspect
import json
import shutil
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bge_integrations import BGEM3Embedder, TruncationWarning
from bge_integrations.compat import BGEM3FlagModel, FlagAutoModel
from bge_integrations.compat.m3 import SCORE_KEYS
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.m3_model import MissingHeadError
from tests.compat.hub_cache import make_hub_cache

REFERENCE_FILE = Path(__file__).parents[1] / "data" / "m3_reference.json"
DENSE_ATOL = 1e-5
ATOL = 1e-4


@cache
def reference() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def model(tiny_m3_path: str) -> BGEM3FlagModel:
    return BGEM3FlagModel(tiny_m3_path, use_fp16=False, devices="cpu")


def assert_lexical(ours: Any, pairs: list[list[Any]]) -> None:
    """One dict of ours against FlagEmbedding's ``[[key, value], ...]``: same keys, same order, same values."""
    assert isinstance(ours, defaultdict)
    assert ours.default_factory is int
    assert list(ours) == [key for key, _ in pairs]
    for key, value in pairs:
        assert type(ours[key]) is np.float32
        assert abs(float(ours[key]) - value) <= ATOL, key


def assert_encoded(out: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(out) == {"dense_vecs", "lexical_weights", "colbert_vecs"}
    dense = out["dense_vecs"]
    assert isinstance(dense, np.ndarray)
    assert dense.dtype == np.float32
    np.testing.assert_allclose(dense, np.asarray(expected["dense_vecs"], dtype=np.float32), atol=DENSE_ATOL)
    assert isinstance(out["lexical_weights"], list)
    assert len(out["lexical_weights"]) == len(expected["lexical_weights"])
    for ours, theirs in zip(out["lexical_weights"], expected["lexical_weights"], strict=True):
        assert_lexical(ours, theirs)
    assert isinstance(out["colbert_vecs"], list)
    assert len(out["colbert_vecs"]) == len(expected["colbert_vecs"])
    for ours, theirs in zip(out["colbert_vecs"], expected["colbert_vecs"], strict=True):
        assert isinstance(ours, np.ndarray)
        assert ours.dtype == np.float32
        wanted = np.asarray(theirs, dtype=np.float32).reshape(-1, ours.shape[-1])
        assert ours.shape == wanted.shape
        np.testing.assert_allclose(ours, wanted, atol=ATOL)


class TestSignature:
    def test_constructor_is_flagembeddings(self) -> None:
        params = inspect.signature(BGEM3FlagModel).parameters
        expected = {  # FlagEmbedding 1.3.5 M3Embedder.__init__, then our two passage-instruction extras
            "model_name_or_path": inspect.Parameter.empty,
            "normalize_embeddings": True,
            "use_fp16": True,
            "query_instruction_for_retrieval": None,
            "query_instruction_format": "{}{}",
            "devices": None,
            "pooling_method": "cls",
            "trust_remote_code": False,
            "cache_dir": None,
            "colbert_dim": -1,
            "batch_size": 256,
            "query_max_length": 512,
            "passage_max_length": 512,
            "return_dense": True,
            "return_sparse": False,
            "return_colbert_vecs": False,
            "passage_instruction_for_retrieval": None,
            "passage_instruction_format": "{}{}",
            "kwargs": inspect.Parameter.empty,
        }
        assert {name: p.default for name, p in params.items()} == expected
        assert list(params) == list(expected)

    @pytest.mark.parametrize("method", ["encode", "encode_queries", "encode_corpus"])
    def test_encode_methods(self, method: str) -> None:
        params = list(inspect.signature(getattr(BGEM3FlagModel, method)).parameters)
        assert params[2:7] == [
            "batch_size",
            "max_length",
            "return_dense",
            "return_sparse",
            "return_colbert_vecs",
        ]

    def test_compute_score(self) -> None:
        params = list(inspect.signature(BGEM3FlagModel.compute_score).parameters)
        assert params == [
            "self",
            "sentence_pairs",
            "batch_size",
            "max_query_length",
            "max_passage_length",
            "weights_for_different_modes",
            "kwargs",
        ]

    def test_reference_was_made_with_these_defaults(self, model: BGEM3FlagModel) -> None:
        defaults = reference()["meta"]["model_defaults"]
        for name, value in defaults.items():
            assert getattr(model, name) == value, name


class TestEncode:
    @pytest.mark.parametrize(
        ("record", "batch_size", "max_length"), [("bs3_ml512", 3, 512), ("bs1_ml512", 1, 512), ("bs3_ml8", 3, 8)]
    )
    def test_all_outputs_match_flagembedding(
        self, model: BGEM3FlagModel, record: str, batch_size: int, max_length: int
    ) -> None:
        out = model.encode(
            reference()["texts"],
            batch_size=batch_size,
            max_length=max_length,
            return_dense=True,
            return_sparse=True,
            return_colbert_vecs=True,
        )
        assert_encoded(out, reference()["encode"][record])

    def test_single_string_unwraps(self, model: BGEM3FlagModel) -> None:
        expected = reference()["encode_single_string"]
        out = model.encode(
            reference()["texts"][3], batch_size=3, return_dense=True, return_sparse=True, return_colbert_vecs=True
        )
        assert out["dense_vecs"].shape == tuple(expected["dense_shape"])
        np.testing.assert_allclose(out["dense_vecs"], expected["dense_vecs"], atol=DENSE_ATOL)
        assert_lexical(out["lexical_weights"], expected["lexical_weights"])
        assert out["colbert_vecs"].shape == tuple(expected["colbert_shape"])

    def test_outputs_not_asked_are_none(self, model: BGEM3FlagModel) -> None:
        out = model.encode([reference()["texts"][0]])  # the constructor's defaults: dense only
        assert out["lexical_weights"] is None
        assert out["colbert_vecs"] is None
        assert out["dense_vecs"].shape == (1, 32)
        sparse_only = model.encode(reference()["texts"][0], return_dense=False, return_sparse=True)
        assert sparse_only["dense_vecs"] is None
        assert sparse_only["colbert_vecs"] is None
        first_text = reference()["encode"]["bs1_ml512"]["lexical_weights"][0]
        assert list(sparse_only["lexical_weights"]) == [key for key, _ in first_text]

    def test_constructor_defaults_choose_outputs(self, tiny_m3_path: str) -> None:
        model = BGEM3FlagModel(tiny_m3_path, devices="cpu", return_dense=False, return_colbert_vecs=True)
        out = model.encode(["hello world"])
        assert out["dense_vecs"] is None
        assert out["lexical_weights"] is None
        assert [v.shape for v in out["colbert_vecs"]] == [(11, 32)]

    def test_queries_and_corpus(self, model: BGEM3FlagModel) -> None:
        expected = reference()["encode_queries_corpus"]
        kwargs = expected["call_kwargs"]
        assert_encoded(model.encode_queries(expected["texts"], **kwargs), expected["encode_queries"])
        assert_encoded(model.encode_corpus(expected["texts"], **kwargs), expected["encode_corpus"])

    def test_instructions_are_formatted_into_the_texts(self, tiny_m3_path: str) -> None:
        model = BGEM3FlagModel(
            tiny_m3_path,
            devices="cpu",
            query_instruction_for_retrieval="q: ",
            query_instruction_format="{}<{}>",
            passage_instruction_for_retrieval="p: ",
        )
        queries = model.encode_queries(["hello"], return_sparse=True)
        plain = model.encode(["q: <hello>"], return_sparse=True)
        np.testing.assert_array_equal(queries["dense_vecs"], plain["dense_vecs"])
        assert queries["lexical_weights"] == plain["lexical_weights"]
        corpus = model.encode_corpus(["hello"])["dense_vecs"]
        np.testing.assert_array_equal(corpus, model.encode(["p: hello"])["dense_vecs"])

    def test_query_max_length_is_the_query_default(self, tiny_m3_path: str) -> None:
        model = BGEM3FlagModel(tiny_m3_path, devices="cpu", query_max_length=8, return_colbert_vecs=True)
        texts = reference()["texts"]
        queries = model.encode_queries(texts, batch_size=3, return_sparse=True)
        assert_encoded(queries, reference()["encode"]["bs3_ml8"])
        corpus = model.encode_corpus(texts, batch_size=3, return_sparse=True)
        assert_encoded(corpus, reference()["encode"]["bs3_ml512"])

    def test_empty_list(self, model: BGEM3FlagModel) -> None:
        out = model.encode([], return_sparse=True, return_colbert_vecs=True)
        assert out["dense_vecs"].shape == (0, 32)
        assert out["lexical_weights"] == []
        assert out["colbert_vecs"] == []


class TestOneModelForEveryWindow:
    """The core fixes max_length at load; here every call's window runs on the one loaded model."""

    def test_windows_share_one_load(self, tiny_m3_path: str) -> None:
        model = BGEM3FlagModel(tiny_m3_path, devices="cpu", passage_max_length=8, return_sparse=True)
        assert REGISTRY.load_count == 2  # the encoder and the heads, in the constructor as FlagEmbedding does
        texts = reference()["texts"]
        long = model.encode(texts, batch_size=3, max_length=512, return_colbert_vecs=True)  # above the load window
        short = model.encode(texts, batch_size=3, return_colbert_vecs=True)
        scores = model.compute_score([("cat", texts[2])], max_query_length=4, max_passage_length=300)
        assert REGISTRY.load_count == 2  # still: no second copy of the encoder for any window
        assert_encoded(long, reference()["encode"]["bs3_ml512"])
        assert_encoded(short, reference()["encode"]["bs3_ml8"])
        assert len(scores["dense"]) == 1

    @pytest.mark.parametrize("max_length", [5, 8, 20])
    def test_same_numbers_as_a_core_model_loaded_with_that_window(self, tiny_m3_path: str, max_length: int) -> None:
        texts = reference()["texts"]
        ours = BGEM3FlagModel(tiny_m3_path, devices="cpu").encode(
            texts, max_length=max_length, return_sparse=True, return_colbert_vecs=True
        )
        with pytest.warns(TruncationWarning):  # the core counts what its window cuts; FlagEmbedding is silent
            core = BGEM3Embedder(tiny_m3_path, device="cpu", max_length=max_length).encode_documents(
                texts, outputs=["dense", "sparse", "colbert"]
            )
        assert core.dense is not None
        assert core.sparse is not None
        assert core.colbert is not None
        np.testing.assert_array_equal(ours["dense_vecs"], core.dense)
        assert [{int(k): float(v) for k, v in d.items()} for d in ours["lexical_weights"]] == [
            s.as_dict() for s in core.sparse
        ]
        for a, b in zip(ours["colbert_vecs"], core.colbert, strict=True):
            np.testing.assert_array_equal(a, b)


class TestLexical:
    def test_convert_id_to_token(self, model: BGEM3FlagModel) -> None:
        weights = model.encode(reference()["texts"], batch_size=3, return_dense=False, return_sparse=True)[
            "lexical_weights"
        ]
        converted = model.convert_id_to_token(weights)
        expected = reference()["convert_id_to_token"]["result"]
        assert len(converted) == len(expected)
        for ours, theirs in zip(converted, expected, strict=True):
            assert type(ours) is dict
            assert list(ours) == [token for token, _ in theirs]
            np.testing.assert_allclose([float(v) for v in ours.values()], [v for _, v in theirs], atol=ATOL)
        single = model.convert_id_to_token(weights[3])
        assert type(single) is dict
        assert single == converted[3]
        assert model.convert_id_to_token([weights[3]]) == converted[3]  # a list of one: one dict, as there

    def test_pairs(self, model: BGEM3FlagModel) -> None:
        weights = model.encode(reference()["texts"], batch_size=3, return_dense=False, return_sparse=True)[
            "lexical_weights"
        ]
        for case in reference()["compute_lexical_matching_score"]["pairs"]:
            score = model.compute_lexical_matching_score(weights[case["i"]], weights[case["j"]])
            assert f"{type(score).__module__}.{type(score).__qualname__}" == case["python_type"]
            assert abs(float(score) - case["score"]) <= ATOL

    def test_list_against_list(self, model: BGEM3FlagModel) -> None:
        weights = model.encode(reference()["texts"], batch_size=3, return_dense=False, return_sparse=True)[
            "lexical_weights"
        ]
        expected = reference()["compute_lexical_matching_score"]["list_vs_list"]
        matrix = model.compute_lexical_matching_score(weights, weights)
        assert isinstance(matrix, np.ndarray)
        assert str(matrix.dtype) == expected["dtype"]
        np.testing.assert_allclose(matrix, expected["scores"], atol=ATOL)

    @pytest.mark.parametrize(("a", "b"), [({"1": 0.5}, [{"1": 0.5}]), ([{"1": 0.5}], {"1": 0.5}), ("1", "1")])
    def test_mixed_inputs_raise(self, model: BGEM3FlagModel, a: Any, b: Any) -> None:
        with pytest.raises(ValueError, match="input format of lexical_weights is not correct"):
            model.compute_lexical_matching_score(a, b)


class TestColbertScore:
    def test_pairs_and_matrix(self, model: BGEM3FlagModel) -> None:
        vecs = model.encode(reference()["texts"], batch_size=3, return_dense=False, return_colbert_vecs=True)[
            "colbert_vecs"
        ]
        expected = reference()["colbert_score"]
        for case in expected["pairs"]:
            score = model.colbert_score(vecs[case["i"]], vecs[case["j"]])
            assert isinstance(score, torch.Tensor)
            assert score.ndim == 0
            assert abs(float(score) - case["score"]) <= ATOL
        matrix = [[float(model.colbert_score(q, p)) for p in vecs] for q in vecs]
        np.testing.assert_allclose(matrix, expected["matrix"], atol=ATOL)


class TestComputeScore:
    @pytest.mark.parametrize("run", range(8))
    def test_runs_match_flagembedding(self, model: BGEM3FlagModel, run: int) -> None:
        expected = reference()["compute_score"]["runs"][run]
        pairs = [tuple(p) for p in reference()["compute_score"]["pairs"]]
        scores = model.compute_score(pairs, **expected["call"])
        assert list(scores) == list(SCORE_KEYS)
        for key in SCORE_KEYS:
            assert all(type(v) is float for v in scores[key])
            np.testing.assert_allclose(scores[key], expected["scores"][key], atol=ATOL, err_msg=key)

    def test_padding_floor_is_reproduced(self, model: BGEM3FlagModel) -> None:
        demo = reference()["compute_score"]["colbert_padding_demo"]
        pairs = [tuple(p) for p in reference()["compute_score"]["pairs"]]
        index = demo["pair_index"]
        assert min(demo["per_query_token_max_similarity"]) < 0  # a query token the padding lifts to 0
        alone = model.compute_score(pairs, batch_size=1)["colbert"][index]
        padded = model.compute_score(pairs, batch_size=4)["colbert"][index]
        assert abs(alone - demo["compute_score_colbert"]["batch_size_1"]) <= ATOL
        assert abs(padded - demo["compute_score_colbert"]["batch_size_4"]) <= ATOL
        assert padded - alone > 1e-3
        # batch_size=1 has no padding: the plain colbert_score of the encoded vectors
        vecs = model.encode(list(pairs[index]), return_dense=False, return_colbert_vecs=True)["colbert_vecs"]
        assert abs(float(model.colbert_score(vecs[0], vecs[1])) - alone) <= ATOL

    def test_single_pair_gives_floats(self, model: BGEM3FlagModel) -> None:
        expected = reference()["compute_score"]["single_pair_call"]
        scores = model.compute_score(expected["pair"])
        assert list(scores) == list(SCORE_KEYS)
        for key in SCORE_KEYS:
            assert type(scores[key]) is float
            assert abs(scores[key] - expected["scores"][key]) <= ATOL, key

    def test_weights(self, model: BGEM3FlagModel) -> None:
        pairs = [("cat", "the cat sat"), ("hello", "world")]
        base = model.compute_score(pairs)
        weighted = model.compute_score(pairs, weights_for_different_modes=[0.5, 0.0, 2.0])
        for i in range(2):
            d, s, c = base["dense"][i], base["sparse"][i], base["colbert"][i]
            assert abs(base["colbert+sparse+dense"][i] - (d + s + c) / 3) <= ATOL
            assert abs(base["sparse+dense"][i] - (d + s) / 2) <= ATOL
            assert abs(weighted["colbert+sparse+dense"][i] - (0.5 * d + 2 * c) / 2.5) <= ATOL
            assert abs(weighted["sparse+dense"][i] - d) <= ATOL

    def test_empty(self, model: BGEM3FlagModel) -> None:
        assert model.compute_score([]) == []

    def test_numpy_inputs(self, model: BGEM3FlagModel) -> None:
        expected = reference()["compute_score"]["single_pair_call"]
        scores = model.compute_score(np.array(expected["pair"]), weights_for_different_modes=np.array([1.0, 1.0, 1.0]))
        assert type(scores["dense"]) is float  # one pair, as FlagEmbedding (np.str_ is a str)
        assert abs(scores["colbert+sparse+dense"] - expected["scores"]["colbert+sparse+dense"]) <= ATOL

    @pytest.mark.parametrize("weights", [[1, 1], "111", [1, "a", 1], [1, True, 1]])
    def test_bad_weights(self, model: BGEM3FlagModel, weights: Any) -> None:
        with pytest.raises(ValueError, match="weights_for_different_modes must be three numbers"):
            model.compute_score([("a", "b")], weights_for_different_modes=weights)

    def test_bad_pair(self, model: BGEM3FlagModel) -> None:
        with pytest.raises(TypeError, match=r"sentence_pairs\[1\]"):
            model.compute_score([("a", "b"), ("a",)])


class TestErrors:
    def test_no_output_asked(self, model: BGEM3FlagModel) -> None:
        with pytest.raises(ValueError, match="return_dense=False, return_sparse=False, return_colbert_vecs=False"):
            model.encode(["a"], return_dense=False)

    def test_unknown_keyword(self, model: BGEM3FlagModel) -> None:
        with pytest.raises(TypeError, match="'padding'"):
            model.encode(["a"], padding=True)
        model.encode(["a"], convert_to_numpy=True)  # FlagEmbedding drops it silently

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"pooling_method": "max"}, "pooling_method must be one of"),
            ({"batch_size": 0}, "batch_size"),
            ({"query_max_length": -1}, "query_max_length"),
            ({"colbert_dim": 0}, "colbert_dim must be -1"),
        ],
    )
    def test_bad_settings(self, tiny_m3_path: str, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            BGEM3FlagModel(tiny_m3_path, devices="cpu", **kwargs)
        assert REGISTRY.load_count == 0

    def test_checkpoint_without_heads(self, tiny_m3_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "no-heads"
        shutil.copytree(tiny_m3_path, folder)
        (folder / "sparse_linear.pt").unlink()
        model = BGEM3FlagModel(str(folder), devices="cpu")
        assert model.encode(["a"])["dense_vecs"].shape == (1, 32)  # dense needs no head
        with pytest.raises(MissingHeadError, match=r"sparse_linear\.pt"):
            model.encode(["a"], return_sparse=True)


class TestAuto:
    def test_bge_m3_hub_id(self, tiny_m3_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        hub = make_hub_cache(tmp_path / "hub", {"BAAI/bge-m3": tiny_m3_path})
        model = FlagAutoModel.from_finetuned("BAAI/bge-m3", cache_dir=str(hub), devices="cpu", use_fp16=False)
        assert type(model) is BGEM3FlagModel
        assert model.pooling_method == "cls"
        out = model.encode(reference()["texts"], batch_size=3, return_sparse=True, return_colbert_vecs=True)
        assert_encoded(out, reference()["encode"]["bs3_ml512"])

    def test_model_class(self, tiny_m3_path: str) -> None:
        model = FlagAutoModel.from_finetuned(tiny_m3_path, model_class="encoder-only-m3", devices="cpu")
        assert type(model) is BGEM3FlagModel
        assert model.pooling_method == "cls"


class TestDevicesAndPrecision:
    def test_two_devices_split_the_work(self, tiny_m3_path: str) -> None:
        model = BGEM3FlagModel(tiny_m3_path, devices=["cpu", "cpu:0"], use_fp16=False)
        assert model.target_devices == ["cpu", "cpu:0"]
        out = model.encode(
            reference()["texts"], batch_size=3, return_dense=True, return_sparse=True, return_colbert_vecs=True
        )
        assert_encoded(out, reference()["encode"]["bs3_ml512"])
        expected = reference()["compute_score"]["runs"][0]  # batch_size=1: no padding, any split gives these
        pairs = [tuple(p) for p in reference()["compute_score"]["pairs"]]
        scores = model.compute_score(pairs, **expected["call"])
        for key in SCORE_KEYS:
            np.testing.assert_allclose(scores[key], expected["scores"][key], atol=ATOL, err_msg=key)

    def test_fp16_results_are_float16(self, model: BGEM3FlagModel, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where fp16 runs (CUDA/MPS), FlagEmbedding returns float16 arrays and weights; the CPU never does."""
        full = model.encode(["hello world"], return_sparse=True, return_colbert_vecs=True)
        assert model._half() is False
        monkeypatch.setattr(model, "_half", lambda: True)
        half = model.encode(["hello world"], return_sparse=True, return_colbert_vecs=True)
        assert half["dense_vecs"].dtype == np.float16
        assert half["colbert_vecs"][0].dtype == np.float16
        assert {type(v) for v in half["lexical_weights"][0].values()} == {np.float16}
        np.testing.assert_allclose(half["dense_vecs"], full["dense_vecs"], atol=1e-3)
        assert list(half["lexical_weights"][0]) == list(full["lexical_weights"][0])


class TestLifecycle:
    def test_stop_self_pool_frees_and_reloads(self, model: BGEM3FlagModel) -> None:
        first = model.encode(["hello"], return_sparse=True)
        loads = REGISTRY.load_count
        model.stop_self_pool()
        again = model.encode(["hello"], return_sparse=True)
        assert REGISTRY.load_count == loads + 2  # the encoder and the heads, loaded again
        np.testing.assert_array_equal(first["dense_vecs"], again["dense_vecs"])
        assert first["lexical_weights"] == again["lexical_weights"]

    def test_tokenizer_attribute(self, model: BGEM3FlagModel) -> None:
        ids = reference()["input_ids"]["max_length_512"][0]
        assert model.tokenizer(reference()["texts"][0])["input_ids"] == ids
