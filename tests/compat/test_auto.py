"""compat.FlagAutoModel / FlagAutoReranker against FlagEmbedding 1.3+'s ``from_finetuned``.

Hub ids are resolved offline through a hub cache on disk (tests/compat/hub_cache.py) passed as
``cache_dir``; results are checked against FlagEmbedding's computation (the references of
test_flag_model.py and test_flag_reranker.py) on the tiny models.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from bge_integrations import TruncationWarning
from bge_integrations.compat import (
    EmbedderModelClass,
    FlagAutoModel,
    FlagAutoReranker,
    FlagModel,
    FlagReranker,
    RerankerModelClass,
)
from bge_integrations.compat._mapping import AUTO_EMBEDDER_MAPPING, AUTO_RERANKER_MAPPING
from bge_integrations.compat.auto import flag_model_name
from bge_integrations.core.loading import REGISTRY
from tests.compat.hub_cache import make_hub_cache
from tests.compat.test_flag_model import flag_reference as embedder_reference
from tests.compat.test_flag_reranker import flag_reference as reranker_reference

TEXTS = ["The giant panda is a bear species endemic to China.", "Paris is the capital of France.", "short"]
QUERIES = ["where do pandas live?", "capital of France"]
PAIRS = [["what is panda?", "hi"], ["what is panda?", "The giant panda is a bear species endemic to China."]]

BGE_ENCODERS = [
    f"BAAI/bge-{size}-{lang}{version}"
    for size in ("small", "base", "large")
    for lang in ("en", "zh")
    for version in ("", "-v1.5")
]
BGE_RERANKERS = ["BAAI/bge-reranker-base", "BAAI/bge-reranker-large", "BAAI/bge-reranker-v2-m3"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, tiny_embedder_path: str, tiny_reranker_path: str) -> str:
    """A hub cache (for cache_dir) with the tiny models under BGE, e5 and unknown hub ids."""
    models = dict.fromkeys([*BGE_ENCODERS, "intfloat/e5-small-v2", "acme/encoder"], tiny_embedder_path)
    models |= dict.fromkeys([*BGE_RERANKERS, "acme/cross-encoder"], tiny_reranker_path)
    return str(make_hub_cache(tmp_path_factory.mktemp("hub"), models))


class TestSignatures:
    def test_flag_auto_model(self) -> None:
        params = inspect.signature(FlagAutoModel.from_finetuned).parameters
        expected = {
            "model_name_or_path": inspect.Parameter.empty,
            "model_class": None,
            "normalize_embeddings": True,
            "use_fp16": True,
            "query_instruction_for_retrieval": None,
            "devices": None,
            "pooling_method": None,
            "trust_remote_code": None,
            "query_instruction_format": None,
            "kwargs": inspect.Parameter.empty,
        }
        assert {name: p.default for name, p in params.items()} == expected
        assert list(params) == list(expected)

    def test_flag_auto_reranker(self) -> None:
        params = inspect.signature(FlagAutoReranker.from_finetuned).parameters
        expected = {
            "model_name_or_path": inspect.Parameter.empty,
            "model_class": None,
            "use_fp16": False,
            "trust_remote_code": None,
            "kwargs": inspect.Parameter.empty,
        }
        assert {name: p.default for name, p in params.items()} == expected
        assert list(params) == list(expected)

    @pytest.mark.parametrize("auto", [FlagAutoModel, FlagAutoReranker])
    def test_not_instantiable(self, auto: type) -> None:
        with pytest.raises(OSError, match=rf"instantiated using the `{auto.__name__}.from_finetuned"):
            auto()


class TestTable:
    def test_bge_encoders_are_flag_models_with_cls_pooling(self) -> None:
        for hub_id in [*BGE_ENCODERS, "BAAI/bge-large-zh-noinstruct"]:
            entry = AUTO_EMBEDDER_MAPPING[flag_model_name(hub_id)]
            assert entry.model_class is EmbedderModelClass.ENCODER_ONLY_BASE, hub_id
            assert (entry.pooling_method, entry.trust_remote_code, entry.query_instruction_format) == (
                "cls",
                False,
                "{}{}",
            )

    def test_other_families_as_flagembedding(self) -> None:
        assert AUTO_EMBEDDER_MAPPING["bge-m3"].model_class is EmbedderModelClass.ENCODER_ONLY_M3
        assert AUTO_EMBEDDER_MAPPING["bge-en-icl"].model_class is EmbedderModelClass.DECODER_ONLY_ICL
        gemma = AUTO_EMBEDDER_MAPPING["bge-multilingual-gemma2"]
        assert (gemma.model_class, gemma.pooling_method) == (EmbedderModelClass.DECODER_ONLY_BASE, "last_token")
        assert gemma.query_instruction_format == "<instruct>{}\n<query>{}"
        assert AUTO_EMBEDDER_MAPPING["e5-small-v2"].pooling_method == "mean"
        assert AUTO_EMBEDDER_MAPPING["gte-base-en-v1.5"].trust_remote_code is True
        for name in BGE_RERANKERS:
            assert AUTO_RERANKER_MAPPING[flag_model_name(name)].model_class is RerankerModelClass.ENCODER_ONLY_BASE
        assert AUTO_RERANKER_MAPPING["bge-reranker-v2-gemma"].model_class is RerankerModelClass.DECODER_ONLY_BASE

    @pytest.mark.parametrize(
        ("path", "name"),
        [
            ("BAAI/bge-base-en-v1.5", "bge-base-en-v1.5"),
            ("/models/bge-base-en-v1.5", "bge-base-en-v1.5"),
            ("output/bge-small-zh/checkpoint-500", "bge-small-zh"),
            ("bge-m3", "bge-m3"),
        ],
    )
    def test_model_name_is_flagembeddings(self, path: str, name: str) -> None:
        assert flag_model_name(path) == name


class TestFlagAutoModel:
    @pytest.mark.parametrize("hub_id", ["BAAI/bge-small-en-v1.5", "BAAI/bge-large-zh", "BAAI/bge-base-zh-v1.5"])
    def test_bge_hub_id_gives_a_cls_flag_model(self, hub_id: str, hub: str, tiny_embedder_path: str) -> None:
        model = FlagAutoModel.from_finetuned(
            hub_id, query_instruction_for_retrieval="query: ", devices="cpu", cache_dir=hub
        )
        assert type(model) is FlagModel
        assert (model.pooling_method, model.trust_remote_code, model.query_instruction_format) == ("cls", False, "{}{}")
        assert model.model_name_or_path == hub_id
        np.testing.assert_allclose(model.encode(TEXTS), embedder_reference(tiny_embedder_path, TEXTS), atol=1e-5)
        np.testing.assert_allclose(
            model.encode_queries(QUERIES),
            embedder_reference(tiny_embedder_path, [f"query: {q}" for q in QUERIES]),
            atol=1e-5,
        )

    def test_mean_pooling_from_the_table(self, hub: str, tiny_embedder_path: str) -> None:
        model = FlagAutoModel.from_finetuned("intfloat/e5-small-v2", devices="cpu", cache_dir=hub)
        assert model.pooling_method == "mean"
        np.testing.assert_allclose(
            model.encode(TEXTS), embedder_reference(tiny_embedder_path, TEXTS, pooling="mean"), atol=1e-5
        )

    def test_explicit_arguments_win_over_the_table(self, hub: str, tiny_embedder_path: str) -> None:
        model = FlagAutoModel.from_finetuned(
            "BAAI/bge-small-en-v1.5",
            normalize_embeddings=False,
            use_fp16=False,
            query_instruction_for_retrieval="Q",
            devices=["cpu"],
            pooling_method="mean",
            query_instruction_format="{}: {}",
            cache_dir=hub,
            batch_size=2,
            query_max_length=8,
            passage_max_length=16,
            convert_to_numpy=True,
        )
        assert (model.batch_size, model.query_max_length, model.passage_max_length) == (2, 8, 16)
        assert (model.use_fp16, model.normalize_embeddings, model.target_devices) == (False, False, ["cpu"])
        expected = embedder_reference(
            tiny_embedder_path, [f"Q: {q}" for q in QUERIES], pooling="mean", normalize=False, max_length=8
        )
        with pytest.warns(TruncationWarning, match="longer than the 8 tokens"):  # query_max_length
            np.testing.assert_allclose(model.encode_queries(QUERIES), expected, atol=1e-5)

    def test_flagembedding_1_4_arguments(self, tiny_embedder_path: str) -> None:
        with pytest.warns(UserWarning, match=r"FlagModel ignores keyword argument\(s\) 'use_bf16'"):
            model = FlagAutoModel.from_finetuned(tiny_embedder_path, use_bf16=True, truncate_dim=8, devices="cpu")
        assert model.encode(TEXTS).shape == (len(TEXTS), 8)

    def test_unknown_name_is_flagembeddings_error_and_loads_nothing(self, hub: str) -> None:
        with pytest.raises(ValueError, match=r"Model name 'encoder' not found in the model mapping\..*`model_class`"):
            FlagAutoModel.from_finetuned("acme/encoder", cache_dir=hub)
        assert REGISTRY.load_count == 0

    def test_model_class_for_an_unknown_name(
        self, hub: str, tiny_embedder_path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.WARNING, logger="bge_integrations.compat.auto"):
            model = FlagAutoModel.from_finetuned(
                "acme/encoder", model_class="encoder-only-base", devices="cpu", cache_dir=hub
            )
        assert (model.pooling_method, model.trust_remote_code, model.query_instruction_format) == ("cls", False, "{}{}")
        assert [
            r.getMessage().split(" is not specified")[0]
            for r in caplog.records
            if r.name == "bge_integrations.compat.auto"
        ] == [
            "`pooling_method`",
            "`trust_remote_code`",
            "`query_instruction_format`",
        ]
        np.testing.assert_allclose(model.encode(TEXTS), embedder_reference(tiny_embedder_path, TEXTS), atol=1e-5)
        enum = FlagAutoModel.from_finetuned(
            "acme/encoder", model_class=EmbedderModelClass.ENCODER_ONLY_BASE, pooling_method="mean", cache_dir=hub
        )
        assert enum.pooling_method == "mean"

    def test_bad_model_class_names_the_choices(self) -> None:
        with pytest.raises(ValueError, match=r"model_class must be one of 'encoder-only-base', .*got 'encoder'"):
            FlagAutoModel.from_finetuned("acme/encoder", model_class="encoder")


class TestFineTunedFolders:
    """FlagEmbedding needs model_class for these; the core's recognition of BGE checkpoints does not."""

    def test_folder_named_after_a_bge_model(self, tiny_embedder_path: str) -> None:
        assert flag_model_name(tiny_embedder_path) == "bge-small-en-v1.5-tiny"  # not in the table
        model = FlagAutoModel.from_finetuned(tiny_embedder_path, devices="cpu")
        assert (type(model), model.pooling_method) == (FlagModel, "cls")
        np.testing.assert_allclose(model.encode(TEXTS), embedder_reference(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_checkpoint_folder_takes_its_parents_name(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "bge-base-zh-v1.5" / "checkpoint-500"
        shutil.copytree(tiny_embedder_path, folder)
        assert FlagAutoModel.from_finetuned(str(folder), devices="cpu").pooling_method == "cls"

    def test_folder_recording_its_base_model(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "my-retriever"
        shutil.copytree(tiny_embedder_path, folder)
        with pytest.raises(ValueError, match="Model name 'my-retriever' not found"):
            FlagAutoModel.from_finetuned(str(folder))
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "_name_or_path": "intfloat/e5-base-v2"}))
        assert FlagAutoModel.from_finetuned(str(folder), devices="cpu").pooling_method == "mean"

    def test_a_recorded_base_model_never_switches_remote_code_on(
        self, tiny_embedder_path: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        # gte-base-en-v1.5's row runs remote code; a checkpoint's own config.json must not choose that.
        assert AUTO_EMBEDDER_MAPPING["gte-base-en-v1.5"].trust_remote_code
        folder = tmp_path / "my-finetune"
        shutil.copytree(tiny_embedder_path, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "_name_or_path": "Alibaba-NLP/gte-base-en-v1.5"}))
        with caplog.at_level(logging.WARNING):
            model = FlagAutoModel.from_finetuned(str(folder), devices="cpu")
        assert model.trust_remote_code is False
        assert "trust_remote_code stays False unless passed" in caplog.text
        assert FlagAutoModel.from_finetuned(str(folder), devices="cpu", trust_remote_code=True).trust_remote_code

    def test_folder_of_a_bge_m3_finetune(self, tiny_m3_path: str, tmp_path: Path) -> None:
        folder = tmp_path / "bge-m3-legal" / "checkpoint-20"
        shutil.copytree(tiny_m3_path, folder)
        model = FlagAutoModel.from_finetuned(str(folder), devices="cpu", use_fp16=False)
        assert type(model).__name__ == "BGEM3FlagModel"  # more in test_m3_flag_model.py

    def test_reranker_folder(self, tiny_reranker_path: str) -> None:
        reranker = FlagAutoReranker.from_finetuned(tiny_reranker_path, devices="cpu")
        assert type(reranker) is FlagReranker
        np.testing.assert_allclose(
            reranker.compute_score(PAIRS), reranker_reference(tiny_reranker_path, PAIRS), atol=1e-5
        )


class TestUnsupported:
    """Never load something else: a clear error naming the model, before anything loads."""

    @pytest.mark.parametrize(
        ("hub_id", "model_class"),
        [
            ("BAAI/bge-en-icl", "decoder-only-icl"),
            ("BAAI/bge-multilingual-gemma2", "decoder-only-base"),
            ("Qwen/Qwen3-Embedding-0.6B", "decoder-only-base"),
        ],
    )
    def test_decoder_only_embedders(self, hub_id: str, model_class: str) -> None:
        match = rf"'{hub_id}' needs model_class='{model_class}'.*not supported yet.*nothing was loaded"
        with pytest.raises(NotImplementedError, match=match):
            FlagAutoModel.from_finetuned(hub_id)
        assert REGISTRY.load_count == 0

    def test_decoder_only_model_class(self, tiny_embedder_path: str) -> None:
        with pytest.raises(NotImplementedError, match="FlagEmbedding's FlagLLMModel"):
            FlagAutoModel.from_finetuned(tiny_embedder_path, model_class="decoder-only-base")


class TestFlagAutoReranker:
    @pytest.mark.parametrize("hub_id", BGE_RERANKERS)
    def test_bge_hub_id_gives_a_flag_reranker(self, hub_id: str, hub: str, tiny_reranker_path: str) -> None:
        reranker = FlagAutoReranker.from_finetuned(
            hub_id, cache_dir=hub, devices=["cpu"], batch_size=1, query_max_length=4, max_length=16
        )
        assert type(reranker) is FlagReranker
        assert (reranker.use_fp16, reranker.trust_remote_code, reranker.batch_size) == (False, False, 1)
        expected = reranker_reference(tiny_reranker_path, PAIRS, max_length=16, query_max_length=4)
        with pytest.warns(TruncationWarning, match="queries are longer"):  # cut to query_max_length=4
            np.testing.assert_allclose(reranker.compute_score(PAIRS), expected, atol=1e-5)
        normalized = FlagAutoReranker.from_finetuned(hub_id, cache_dir=hub, devices="cpu", normalize=True)
        assert all(0 < s < 1 for s in normalized.compute_score(PAIRS))

    def test_unknown_name_and_model_class(self, hub: str, caplog: pytest.LogCaptureFixture) -> None:
        with pytest.raises(ValueError, match=r"Model name 'cross-encoder' not found in the model mapping"):
            FlagAutoReranker.from_finetuned("acme/cross-encoder", cache_dir=hub)
        with caplog.at_level(logging.WARNING, logger="bge_integrations.compat.auto"):
            reranker = FlagAutoReranker.from_finetuned(
                "acme/cross-encoder", model_class="encoder-only-base", cache_dir=hub, devices="cpu"
            )
        assert type(reranker) is FlagReranker
        assert "`trust_remote_code` is not specified" in caplog.text

    def test_org_named_rows_are_not_found_as_in_flagembedding(self) -> None:
        # FlagEmbedding's table names these with their organisation; its lookup uses the last path part.
        with pytest.raises(ValueError, match="Model name 'jina-reranker-v2-base-multilingual' not found"):
            FlagAutoReranker.from_finetuned("jinaai/jina-reranker-v2-base-multilingual")
