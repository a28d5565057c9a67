"""compat.FlagLLMReranker, LayerWiseFlagLLMReranker and LightWeightFlagLLMReranker against FlagEmbedding 1.3.5.

The references (tests/data/llm_*_reference.json, see scripts/reference/) are FlagEmbedding's own
``compute_score`` on the tiny checkpoints, each case's kwargs passed as FlagEmbedding got them;
every case is checked here to 1e-4, with FlagEmbedding's result shapes. Cases FlagEmbedding gets
wrong (layerwise cutoff layers out of increasing order) must raise instead. The layerwise and
lightweight references are skipped only while their file is missing.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch

from bge_integrations import BGEReranker
from bge_integrations.compat import (
    BaseLLMReranker,
    FlagAutoReranker,
    FlagLLMReranker,
    LayerWiseFlagLLMReranker,
    LayerWiseLLMReranker,
    LightWeightFlagLLMReranker,
    LightweightLLMReranker,
    RerankerModelClass,
)
from bge_integrations.compat.flag_llm_reranker import _NO_HALF
from bge_integrations.core.loading import REGISTRY
from tests.compat.hub_cache import make_hub_cache

pytestmark = pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")  # FlagEmbedding truncates too

DATA = Path(__file__).parent.parent / "data"
ATOL = 1e-4
NO_HALF = _NO_HALF.split(".")[0]
PANDA = [
    ["what is panda?", "hi"],
    ["what is panda?", "The giant panda (Ailuropoda melanoleuca) is a bear species endemic to China."],
]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny models on a shared CPU: one torch thread is many times faster (conftest restores the count)."""
    torch.set_num_threads(1)


def reference(name: str) -> dict[str, Any]:
    path = DATA / f"llm_{name}_reference.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def assert_scores(got: Any, expected: Any, what: str) -> None:
    """Same shape as FlagEmbedding's result (list of floats, or list of lists of floats), values to ATOL."""
    assert type(got) is list, what
    if expected and isinstance(expected[0], list):
        assert [len(column) for column in got] == [len(column) for column in expected], what
        for column, want in zip(got, expected, strict=True):
            assert_scores(column, want, what)
        return
    assert len(got) == len(expected), what
    assert all(type(score) is float for score in got), what
    worst = max((abs(a - b) for a, b in zip(got, expected, strict=True)), default=0.0)
    assert worst <= ATOL, f"{what}: off by {worst:.2e}"


def run_cases(reranker: Any, data: dict[str, Any], skip: set[str]) -> list[str]:
    checked = []
    for case in data["cases"]:
        if case["name"] in skip or case.get("attn_implementation", "sdpa") != "sdpa":
            continue
        assert_scores(reranker.compute_score(data["pairs"], **case["kwargs"]), case["scores"], case["name"])
        checked.append(case["name"])
    return checked


class TestReferences:
    def test_gemma(self, tiny_llm_gemma_path: str) -> None:
        data = reference("gemma")
        reranker = FlagLLMReranker(tiny_llm_gemma_path, use_fp16=False, devices="cpu")
        assert len(run_cases(reranker, data, skip=set())) == len(data["cases"])

    def test_layerwise(self, tiny_llm_layerwise_path: str) -> None:
        data = reference("layerwise")
        with pytest.warns(UserWarning, match=NO_HALF):
            reranker = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu", use_fp16=False, use_bf16=False)
        checked = run_cases(reranker, data, skip={"layers_unsorted"})
        assert {"default", "layers_several", "layers_some_out_of_range", "normalize_layers"} <= set(checked)
        # FlagEmbedding scores [5, 3] with each other's heads (layer 3 by layer 5's head): refused here.
        (unsorted,) = [case for case in data["cases"] if case["name"] == "layers_unsorted"]
        with pytest.raises(ValueError, match=r"cutoff_layers=\[5, 3\].*increasing order: \[3, 5\]"):
            reranker.compute_score(data["pairs"], **unsorted["kwargs"])

    def test_lightweight(self, tiny_llm_lightweight_path: str) -> None:
        data = reference("lightweight")
        with pytest.warns(UserWarning, match=NO_HALF):
            reranker = LightWeightFlagLLMReranker(
                tiny_llm_lightweight_path, devices="cpu", use_fp16=False, use_bf16=False
            )
        # The eager_* cases loaded FlagEmbedding's model with attn_implementation="eager", which its
        # reranker class cannot be asked for; every case made through the class is checked.
        checked = run_cases(reranker, data, skip=set())
        assert {"layers_unsorted", "model_card", "compress_2_twice_layers", "normalize_layers"} <= set(checked)
        assert len(checked) == len([c for c in data["cases"] if c.get("attn_implementation") == "sdpa"])


class TestShapes:
    def test_one_pair_is_a_list_of_one(self, tiny_llm_gemma_path: str) -> None:
        reranker = FlagLLMReranker(tiny_llm_gemma_path, devices="cpu")
        one = reranker.compute_score(["what is panda?", "hi"])
        assert type(one) is list
        assert len(one) == 1
        assert type(one[0]) is float
        both = reranker.compute_score([("what is panda?", "hi"), ("what is panda?", PANDA[1][1])])
        assert one[0] == pytest.approx(both[0], abs=1e-5)
        assert reranker.compute_score([]) == []

    def test_layers(self, tiny_llm_layerwise_path: str) -> None:
        reranker = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu", use_fp16=True)
        several = reranker.compute_score(PANDA[0], cutoff_layers=[3, 6])
        assert type(several) is list
        assert [len(column) for column in several] == [1, 1]
        assert several[1] == reranker.compute_score(PANDA[0])  # the last layer is the default
        assert reranker.compute_score(PANDA, cutoff_layers=4) == reranker.compute_score(PANDA, cutoff_layers=[4])
        assert reranker.compute_score(PANDA, cutoff_layers=[4, 4]) == reranker.compute_score(PANDA, cutoff_layers=[4])
        # FlagEmbedding's order is the layers' (dropped ones aside): the same columns either way.
        assert reranker.compute_score(PANDA, cutoff_layers=[1, 3, 6, 9]) == reranker.compute_score(
            PANDA, cutoff_layers=[3, 6]
        )

    def test_several_queries_and_layers(self, tiny_llm_lightweight_path: str) -> None:
        reranker = LightWeightFlagLLMReranker(tiny_llm_lightweight_path, devices=["cpu", "cpu:0"], use_fp16=True)
        pairs = [*PANDA, ["capital of France", "Paris"], ["what is panda?", "a bear"]]
        columns = reranker.compute_score(pairs, cutoff_layers=[3, 5], normalize=True)
        assert [len(column) for column in columns] == [4, 4]
        # Each pair's scores do not depend on the other pairs, their queries, or the device split.
        for index, pair in enumerate(pairs):
            alone = reranker.compute_score(pair, cutoff_layers=[3, 5], normalize=True)
            assert [column[index] for column in columns] == pytest.approx([s for (s,) in alone], abs=1e-6)
        assert all(0 < score < 1 for column in columns for score in column)


class TestSettings:
    def test_signatures(self) -> None:
        head = {
            "model_name_or_path": inspect.Parameter.empty,
            "peft_path": None,
            "use_fp16": False,
            "use_bf16": False,
            "query_instruction_for_rerank": "A: ",
            "query_instruction_format": "{}{}",
            "passage_instruction_for_rerank": "B: ",
            "passage_instruction_format": "{}{}",
            "cache_dir": None,
            "trust_remote_code": False,
            "devices": None,
        }
        tail = {"prompt": None, "batch_size": 128, "query_max_length": None, "max_length": 512, "normalize": False}
        layers = {"cutoff_layers": None}
        compress = {"compress_layers": [8], "compress_ratio": 1}
        rest = {"kwargs": inspect.Parameter.empty}
        expected = {
            FlagLLMReranker: {**head, **tail, **rest},
            LayerWiseFlagLLMReranker: {**head, **layers, **tail, **rest},
            LightWeightFlagLLMReranker: {**head, **layers, **compress, **tail, **rest},
        }
        for cls, params in expected.items():
            got = inspect.signature(cls.__init__).parameters
            assert {name: p.default for name, p in list(got.items())[1:]} == params, cls.__name__
        call = {"batch_size": None, "query_max_length": None, "max_length": None}
        flags = {"prompt": None, "normalize": None}
        loader = {"use_dataloader": False, "num_workers": None}
        calls = {
            FlagLLMReranker: {**call, **flags, **loader},
            LayerWiseFlagLLMReranker: {**call, **layers, **flags, **loader},
            LightWeightFlagLLMReranker: {
                **call,
                **layers,
                "compress_layer": None,
                "compress_layers": None,
                "compress_ratio": None,
                **flags,
            },
        }
        for cls, params in calls.items():
            got = inspect.signature(cls.compute_score).parameters
            assert {name: p.default for name, p in list(got.items())[2:-1]} == params, cls.__name__
        assert (BaseLLMReranker, LayerWiseLLMReranker, LightweightLLMReranker) == (
            FlagLLMReranker,
            LayerWiseFlagLLMReranker,
            LightWeightFlagLLMReranker,
        )

    def test_precision(self, tiny_llm_layerwise_path: str, tiny_llm_lightweight_path: str) -> None:
        with pytest.warns(UserWarning, match=NO_HALF):
            layerwise = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu")
        assert layerwise.use_fp16 is True  # FlagEmbedding's: float16, except on the CPU
        with pytest.warns(UserWarning, match=NO_HALF):
            lightweight = LightWeightFlagLLMReranker(tiny_llm_lightweight_path, devices="cpu")
        assert lightweight.use_fp16 is False  # FlagEmbedding warns the same but stays float32
        fp32 = layerwise.compute_score(PANDA)
        bf16 = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu", use_bf16=True).compute_score(PANDA)
        assert bf16 == pytest.approx(fp32, abs=0.1)  # bfloat16 even on the CPU, as FlagEmbedding loads it
        assert bf16 != pytest.approx(fp32, abs=1e-6)

    def test_equivalent_instruction_format(self, tiny_llm_gemma_path: str) -> None:
        default = FlagLLMReranker(tiny_llm_gemma_path, devices="cpu").compute_score(PANDA)
        same = FlagLLMReranker(
            tiny_llm_gemma_path, devices="cpu", query_instruction_for_rerank="", query_instruction_format="A: {}{}"
        )
        assert same.compute_score(PANDA) == pytest.approx(default, abs=1e-6)

    def test_compress_layer_alias(self, tiny_llm_lightweight_path: str) -> None:
        reranker = LightWeightFlagLLMReranker(tiny_llm_lightweight_path, devices="cpu", use_fp16=True)
        new = reranker.compute_score(PANDA, compress_ratio=2, compress_layers=[3])
        with pytest.warns(FutureWarning, match="use `compress_layers` instead"):
            old = reranker.compute_score(PANDA, compress_ratio=2, compress_layer=[3], compress_layers=[5])
        assert old == new  # compress_layer wins, as in FlagEmbedding
        assert new != reranker.compute_score(PANDA)
        assert reranker.compute_score(PANDA, compress_ratio=2, compress_layers=[]) == reranker.compute_score(PANDA)

    def test_out_of_range_layers_are_logged(
        self, tiny_llm_layerwise_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        reranker = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu", use_fp16=True)
        with caplog.at_level(logging.WARNING, logger="bge_integrations.compat.flag_llm_reranker"):
            kept = reranker.compute_score(PANDA, cutoff_layers=[0, 4, 28])
        assert "layers [0, 28] are incompatible" in caplog.text
        assert kept == reranker.compute_score(PANDA, cutoff_layers=[4])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bge_integrations.compat.flag_llm_reranker"):
            reranker.compute_score(PANDA, cutoff_layers=[0, 4, 28])
        assert caplog.text == ""  # once, as FlagEmbedding's warning_once


class TestErrors:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"query_instruction_for_rerank": "Q: "}, r"query_instruction_for_rerank='Q: '"),
            ({"query_instruction_for_rerank": None}, r"query_instruction_for_rerank=None"),
            ({"passage_instruction_format": "{}\\n{}"}, r"passage_instruction_format='\{\}\\\\n\{\}'"),
            ({"peft_path": "lora/"}, r"peft_path='lora/' is not supported.*merge_and_unload"),
        ],
    )
    def test_unsupported_arguments(self, tiny_llm_gemma_path: str, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            FlagLLMReranker(tiny_llm_gemma_path, devices="cpu", **kwargs)
        assert REGISTRY.load_count == 0  # refused before anything loads

    def test_compute_score_arguments(self, tiny_llm_layerwise_path: str) -> None:
        reranker = LayerWiseFlagLLMReranker(tiny_llm_layerwise_path, devices="cpu", use_fp16=True)
        with pytest.raises(ValueError, match="use_dataloader=True is not supported"):
            reranker.compute_score(PANDA, use_dataloader=True)
        assert reranker.compute_score(PANDA, use_dataloader=False, num_workers=4) == reranker.compute_score(PANDA)
        with pytest.raises(TypeError, match="'padding'"):
            reranker.compute_score(PANDA, padding=True)
        with pytest.raises(ValueError, match=r"must in \[2, 6\]"):
            reranker.compute_score(PANDA, cutoff_layers=[28])
        with pytest.raises(ValueError, match="cutoff_layers must be an int or a list of ints"):
            reranker.compute_score(PANDA, cutoff_layers="28")
        with pytest.raises(TypeError, match=r"sentence_pairs\[1\]"):
            reranker.compute_score([PANDA[0], ["only one"]])
        with pytest.raises(ValueError, match="query_max_length must be < max_length=8"):
            reranker.compute_score(PANDA, max_length=8, query_max_length=8)

    def test_lightweight_arguments(self, tiny_llm_lightweight_path: str) -> None:
        reranker = LightWeightFlagLLMReranker(tiny_llm_lightweight_path, devices="cpu", use_bf16=True)
        with pytest.raises(ValueError, match="compress_ratio must be 1, 2, 4 or 8, got 3"):
            reranker.compute_score(PANDA, compress_ratio=3)
        with pytest.raises(TypeError, match="'use_dataloader'"):  # not an argument of FlagEmbedding's either
            reranker.compute_score(PANDA, use_dataloader=True)

    def test_wrong_class_for_the_checkpoint(
        self, tiny_llm_gemma_path: str, tiny_llm_layerwise_path: str, tiny_reranker_path: str
    ) -> None:
        with pytest.raises(ValueError, match=r"a layerwise LLM reranker.*use LayerWiseFlagLLMReranker"):
            FlagLLMReranker(tiny_llm_layerwise_path, devices="cpu")
        with pytest.raises(ValueError, match=r"an LLM reranker such as bge-reranker-v2-gemma.*use FlagLLMReranker"):
            LightWeightFlagLLMReranker(tiny_llm_gemma_path, devices="cpu", use_fp16=True)
        with pytest.raises(ValueError, match=r"not an LLM reranker.*use FlagReranker"):
            FlagLLMReranker(tiny_reranker_path, devices="cpu")
        assert REGISTRY.load_count == 0

    def test_unused_constructor_arguments_warn(self, tiny_llm_gemma_path: str) -> None:
        with pytest.warns(UserWarning, match="FlagLLMReranker ignores keyword argument.*'cutoff_layers'"):
            reranker = FlagLLMReranker(tiny_llm_gemma_path, devices="cpu", cutoff_layers=[4], passage_max_length=512)
        assert reranker.passage_max_length == 512  # FlagEmbedding's docs pass it; it has no effect there either


class TestAuto:
    @pytest.fixture
    def hub(self, tmp_path: Path, tiny_llm_gemma_path: str, tiny_llm_layerwise_path: str) -> str:
        models = {
            "BAAI/bge-reranker-v2-gemma": tiny_llm_gemma_path,
            "BAAI/bge-reranker-v2-minicpm-layerwise": tiny_llm_layerwise_path,
        }
        return str(make_hub_cache(tmp_path / "hub", models))

    def test_hub_ids(self, hub: str, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        gemma = FlagAutoReranker.from_finetuned("BAAI/bge-reranker-v2-gemma", cache_dir=hub, devices="cpu")
        assert type(gemma) is FlagLLMReranker
        data = reference("gemma")
        assert_scores(gemma.compute_score(data["pairs"]), data["cases"][0]["scores"], "auto gemma")
        with pytest.warns(UserWarning, match=NO_HALF):
            layerwise = FlagAutoReranker.from_finetuned(
                "BAAI/bge-reranker-v2-minicpm-layerwise", cache_dir=hub, devices="cpu"
            )
        assert type(layerwise) is LayerWiseFlagLLMReranker

    def test_model_class(self, tiny_llm_lightweight_path: str) -> None:
        reranker = FlagAutoReranker.from_finetuned(
            tiny_llm_lightweight_path, model_class=RerankerModelClass.DECODER_ONLY_LIGHTWEIGHT, use_bf16=True
        )
        assert type(reranker) is LightWeightFlagLLMReranker
        assert reranker.trust_remote_code is False

    def test_finetuned_folder(self, tmp_path: Path, tiny_llm_gemma_path: str) -> None:
        folder = tmp_path / "bge-reranker-v2-gemma" / "checkpoint-100"
        folder.parent.mkdir()
        folder.symlink_to(tiny_llm_gemma_path, target_is_directory=True)
        reranker = FlagAutoReranker.from_finetuned(str(folder), devices="cpu")
        assert type(reranker) is FlagLLMReranker


def test_scores_are_the_cores(tiny_llm_gemma_path: str) -> None:
    """The compat class adds nothing to the core's scores: BGEReranker(windows=False, normalize=False)."""
    long = ["what is panda?", "The giant panda is a bear. " * 40]
    compat = FlagLLMReranker(tiny_llm_gemma_path, devices="cpu", max_length=32).compute_score([*PANDA, long])
    core = BGEReranker(tiny_llm_gemma_path, device="cpu", max_length=32, windows=False, normalize=False)
    assert compat == pytest.approx(core.score_pairs([tuple(p) for p in [*PANDA, long]]), abs=1e-6)
