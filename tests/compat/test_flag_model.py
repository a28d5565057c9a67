"""compat.FlagModel against FlagEmbedding 1.4's encoder embedder, on tiny offline models.

The reference is FlagEmbedding's own computation (``BaseEmbedder.encode_single_device``): the
tokenizer with ``truncation=True, max_length``, ``AutoModel``, CLS (or masked mean) pooling,
L2 normalisation; instructions by ``format(instruction, text)``.
"""

from __future__ import annotations

import inspect
import shutil
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from bge_integrations import BGEEmbedder, TruncationWarning
from bge_integrations.compat import FlagModel
from bge_integrations.compat._devices import target_devices
from bge_integrations.compat._hub import resolve_model
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY

TEXTS = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "short",
    "",
]
QUERIES = ["where do pandas live?", "capital of France"]
LONG = "The quick brown fox jumps over the lazy dog. " * 20


@cache
def _loaded(path: str) -> tuple[Any, Any]:
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def flag_reference(
    path: str, texts: list[str], *, pooling: str = "cls", normalize: bool = True, max_length: int = 512
) -> np.ndarray:
    """FlagEmbedding's BaseEmbedder: tokenize (truncation=True, max_length), pool, normalise."""
    tokenizer, model = _loaded(path)
    inputs = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        states = model(**inputs, return_dict=True).last_hidden_state
    if pooling == "cls":
        embeddings = states[:, 0]
    else:
        mask = inputs["attention_mask"]
        embeddings = torch.sum(states * mask.unsqueeze(-1).float(), dim=1) / mask.sum(dim=1, keepdim=True).float()
    if normalize:
        embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
    result: np.ndarray = embeddings.numpy()
    return result


class TestSignatures:
    """The parameters, order and defaults of FlagEmbedding 1.4's FlagModel (BaseEmbedder)."""

    def test_constructor(self) -> None:
        params = inspect.signature(FlagModel).parameters
        expected = {
            "model_name_or_path": inspect.Parameter.empty,
            "normalize_embeddings": True,
            "use_fp16": True,
            "query_instruction_for_retrieval": None,
            "query_instruction_format": "{}{}",
            "devices": None,
            "pooling_method": "cls",
            "trust_remote_code": False,
            "cache_dir": None,
            "batch_size": 256,
            "query_max_length": 512,
            "passage_max_length": 512,
            "convert_to_numpy": True,
        }
        assert {name: params[name].default for name in list(params)[: len(expected)]} == expected
        assert list(params)[: len(expected)] == list(expected)
        # FlagEmbedding reads these two from **kwargs; here they are named.
        assert params["passage_instruction_for_retrieval"].default is None
        assert params["passage_instruction_format"].default == "{}{}"

    @pytest.mark.parametrize("method", ["encode", "encode_queries", "encode_corpus"])
    def test_encode_methods(self, method: str) -> None:
        params = list(inspect.signature(getattr(FlagModel, method)).parameters)
        assert params[2:5] == ["batch_size", "max_length", "convert_to_numpy"]
        assert all(inspect.signature(getattr(FlagModel, method)).parameters[p].default is None for p in params[2:5])

    def test_encode_takes_an_instruction(self) -> None:
        params = inspect.signature(FlagModel.encode).parameters
        assert params["instruction"].default is None
        assert params["instruction_format"].default is None


class TestResults:
    def test_list_gives_2d_float32_equal_to_reference(self, tiny_embedder_path: str) -> None:
        embeddings = FlagModel(tiny_embedder_path).encode(TEXTS)
        assert isinstance(embeddings, np.ndarray)
        assert embeddings.shape == (len(TEXTS), 32)
        assert embeddings.dtype == np.float32
        np.testing.assert_allclose(embeddings, flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)

    def test_single_string_gives_1d_row(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        one = model.encode(TEXTS[0])
        assert isinstance(one, np.ndarray)
        assert one.shape == (32,)
        np.testing.assert_allclose(one, model.encode(TEXTS)[0], atol=1e-6)
        assert model.encode_queries(QUERIES[0]).shape == (32,)
        assert model.encode_corpus(TEXTS[0]).shape == (32,)

    def test_equal_to_the_core(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, query_instruction_for_retrieval=EN_QUERY_INSTRUCTION)
        core = BGEEmbedder(tiny_embedder_path, device="cpu", query_instruction=EN_QUERY_INSTRUCTION)
        np.testing.assert_allclose(model.encode_queries(QUERIES), core.embed_queries(QUERIES), atol=1e-6)
        np.testing.assert_allclose(model.encode_corpus(TEXTS), core.embed_documents(TEXTS), atol=1e-6)
        assert REGISTRY.load_count == 1  # configured alike, they share one copy of the weights

    def test_loads_in_the_constructor_once(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        assert REGISTRY.load_count == 1
        model.encode(TEXTS)
        model.encode_queries(QUERIES)
        model.encode_corpus(TEXTS)
        assert REGISTRY.load_count == 1

    def test_convert_to_numpy_false_gives_a_tensor(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        tensor = model.encode(TEXTS, convert_to_numpy=False)
        assert isinstance(tensor, torch.Tensor)
        assert tensor.dtype == torch.float32
        assert tensor.device.type == "cpu"
        np.testing.assert_allclose(tensor.numpy(), model.encode(TEXTS), atol=0)
        as_tensors = FlagModel(tiny_embedder_path, convert_to_numpy=False)
        assert isinstance(as_tensors.encode_queries(QUERIES[0]), torch.Tensor)
        assert isinstance(as_tensors.encode_corpus(TEXTS, convert_to_numpy=True), np.ndarray)

    def test_use_fp16_is_ignored_on_cpu(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, use_fp16=True, devices="cpu")  # FlagEmbedding: fp32 on the CPU
        assert model.encode(TEXTS).dtype == np.float32

    def test_batch_size_does_not_change_results(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, batch_size=1)
        np.testing.assert_allclose(model.encode(TEXTS), model.encode(TEXTS, batch_size=3), atol=1e-5)
        np.testing.assert_allclose(model.encode(TEXTS), flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_empty_list_gives_zero_rows(self, tiny_embedder_path: str) -> None:
        empty = FlagModel(tiny_embedder_path).encode([])
        assert isinstance(empty, np.ndarray)
        assert empty.shape == (0, 32)


class TestInstructions:
    def test_no_instruction_by_default_even_for_a_bge_name(self, tiny_embedder_path: str) -> None:
        # The checkpoint is named like bge-small-en-v1.5; FlagEmbedding adds no instruction unless given one.
        model = FlagModel(tiny_embedder_path)
        np.testing.assert_allclose(model.encode_queries(QUERIES), model.encode(QUERIES), atol=0)
        np.testing.assert_allclose(
            model.encode_queries(QUERIES), flag_reference(tiny_embedder_path, QUERIES), atol=1e-5
        )
        with_preset = BGEEmbedder(tiny_embedder_path, device="cpu").embed_queries(QUERIES)
        assert not np.allclose(model.encode_queries(QUERIES), with_preset)

    def test_instruction_on_queries_only(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, query_instruction_for_retrieval="query: ")
        expected = flag_reference(tiny_embedder_path, ["query: " + q for q in QUERIES])
        np.testing.assert_allclose(model.encode_queries(QUERIES), expected, atol=1e-5)
        np.testing.assert_allclose(model.encode_corpus(TEXTS), flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)
        np.testing.assert_allclose(model.encode(QUERIES), flag_reference(tiny_embedder_path, QUERIES), atol=1e-5)

    def test_instruction_format(self, tiny_embedder_path: str) -> None:
        # A typed "\n" (backslash, n) becomes a newline in the query format, as in FlagEmbedding.
        model = FlagModel(
            tiny_embedder_path,
            query_instruction_for_retrieval="Find the answer",
            query_instruction_format="<instruct>{}\\n<query>{}",
        )
        assert model.query_instruction_format == "<instruct>{}\n<query>{}"
        texts = [f"<instruct>Find the answer\n<query>{q}" for q in QUERIES]
        np.testing.assert_allclose(model.encode_queries(QUERIES), flag_reference(tiny_embedder_path, texts), atol=1e-5)

    def test_passage_instruction(self, tiny_embedder_path: str) -> None:
        model = FlagModel(
            tiny_embedder_path, passage_instruction_for_retrieval="passage", passage_instruction_format="{}: {}"
        )
        expected = flag_reference(tiny_embedder_path, [f"passage: {t}" for t in TEXTS])
        np.testing.assert_allclose(model.encode_corpus(TEXTS), expected, atol=1e-5)
        np.testing.assert_allclose(model.encode(TEXTS), flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_encode_with_an_instruction(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        expected = flag_reference(tiny_embedder_path, [f"Q: {q}" for q in QUERIES])
        np.testing.assert_allclose(model.encode(QUERIES, instruction="Q: "), expected, atol=1e-5)
        np.testing.assert_allclose(
            model.encode(QUERIES, instruction="Q", instruction_format="{}: {}"), expected, atol=1e-5
        )

    def test_settings_changed_after_construction_are_used(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        model.query_instruction_for_retrieval = "query: "
        model.normalize_embeddings = False
        expected = flag_reference(tiny_embedder_path, ["query: " + q for q in QUERIES], normalize=False)
        np.testing.assert_allclose(model.encode_queries(QUERIES), expected, atol=1e-5)


class TestPoolingAndLengths:
    def test_mean_pooling(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, pooling_method="mean")
        expected = flag_reference(tiny_embedder_path, TEXTS, pooling="mean")
        np.testing.assert_allclose(model.encode(TEXTS), expected, atol=1e-5)

    def test_normalize_embeddings_false(self, tiny_embedder_path: str) -> None:
        embeddings = FlagModel(tiny_embedder_path, normalize_embeddings=False).encode(TEXTS)
        np.testing.assert_allclose(embeddings, flag_reference(tiny_embedder_path, TEXTS, normalize=False), atol=1e-5)
        assert not np.allclose(np.linalg.norm(embeddings, axis=1), 1.0)

    def test_checkpoint_pooling_config_is_ignored(self, minilm_path: str) -> None:
        # all-MiniLM-L6-v2 declares mean pooling; FlagEmbedding loads AutoModel and pools by pooling_method.
        embeddings = FlagModel(minilm_path).encode(TEXTS)
        np.testing.assert_allclose(embeddings, flag_reference(minilm_path, TEXTS), atol=1e-5)

    def test_query_and_passage_max_length(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, query_max_length=6, passage_max_length=9)
        with pytest.warns(TruncationWarning):
            queries = model.encode_queries([LONG])
        passages = model.encode_corpus([LONG])  # warned once per model
        np.testing.assert_allclose(queries, flag_reference(tiny_embedder_path, [LONG], max_length=6), atol=1e-5)
        np.testing.assert_allclose(passages, flag_reference(tiny_embedder_path, [LONG], max_length=9), atol=1e-5)
        np.testing.assert_allclose(model.encode([LONG]), passages, atol=0)
        np.testing.assert_allclose(model.encode([LONG], max_length=6), queries, atol=0)
        assert REGISTRY.load_count == 2  # the core builds one pipeline per max length (docs/compat.md)


class TestDevices:
    def test_device_forms(self) -> None:
        assert target_devices("cpu") == ["cpu"]
        assert target_devices(["cpu", "cpu"]) == ["cpu"]  # one model per device, never two threads on one
        if not torch.cuda.is_available() and not torch.backends.mps.is_available():
            assert target_devices(None) == ["cpu"]

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
    @pytest.mark.parametrize("devices", [0, [0, 1], "cuda:1"])
    def test_gpu_index_without_cuda_names_the_device(self, devices: object) -> None:
        with pytest.raises(ValueError, match="cuda"):
            target_devices(devices)  # type: ignore[arg-type]

    @pytest.mark.parametrize("devices", [[], 1.5, True, ["cpu", None], {"cpu"}])
    def test_bad_devices(self, devices: object) -> None:
        with pytest.raises(ValueError, match="devices must be"):
            target_devices(devices)  # type: ignore[arg-type]

    def test_two_devices_split_the_work_and_agree(self, tiny_embedder_path: str) -> None:
        # "cpu" and "cpu:0" are two devices to torch: two copies, one thread each, as on two GPUs.
        texts = [f"{text} ({i})" for i, text in enumerate(TEXTS * 3)]
        model = FlagModel(tiny_embedder_path, devices=["cpu", "cpu:0"])
        assert model.target_devices == ["cpu", "cpu:0"]
        assert REGISTRY.load_count == 2
        np.testing.assert_allclose(model.encode(texts), flag_reference(tiny_embedder_path, texts), atol=1e-5)
        model.stop_self_pool()
        assert REGISTRY.loaded_keys() == []
        np.testing.assert_allclose(model.encode(texts[:2]), flag_reference(tiny_embedder_path, texts[:2]), atol=1e-5)
        assert REGISTRY.load_count == 4  # loaded again on use, on both devices


class TestErrors:
    @pytest.mark.parametrize(
        ("sentences", "match"),
        [(None, "sentences must be a sequence"), (["a", None], r"sentences\[1\] must be a string"), (3, "got int")],
    )
    def test_bad_sentences(self, tiny_embedder_path: str, sentences: object, match: str) -> None:
        with pytest.raises(TypeError, match=match):
            FlagModel(tiny_embedder_path).encode(sentences)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"pooling_method": "max"}, ValueError, "pooling_method must be 'cls' or 'mean', got 'max'"),
            ({"batch_size": 0}, ValueError, "batch_size must be an int > 0, got 0"),
            ({"query_max_length": -1}, ValueError, "query_max_length must be an int > 0, got -1"),
            ({"passage_max_length": "512"}, ValueError, "passage_max_length must be an int > 0, got '512'"),
            ({"query_instruction_for_retrieval": 1}, TypeError, "query_instruction_for_retrieval must be a string"),
            ({"query_instruction_format": "{}{}{}"}, ValueError, r"query_instruction_format .* got '\{\}\{\}\{\}'"),
            ({"devices": "gpu"}, ValueError, "got 'gpu'"),
        ],
    )
    def test_bad_settings(self, tiny_embedder_path: str, kwargs: dict[str, Any], error: type, match: str) -> None:
        with pytest.raises(error, match=match):
            FlagModel(tiny_embedder_path, **kwargs)

    def test_bad_call_settings(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        with pytest.raises(ValueError, match="max_length must be an int > 0, got 0"):
            model.encode(TEXTS, max_length=0)
        with pytest.raises(ValueError, match="batch_size must be an int > 0, got -2"):
            model.encode_queries(QUERIES, batch_size=-2)
        with pytest.raises(TypeError, match="instruction must be a string or None, got int"):
            model.encode(TEXTS, instruction=5)  # type: ignore[arg-type]

    def test_tokenizer_kwargs_are_refused_by_name(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path)
        with pytest.raises(TypeError, match=r"encode_queries got unexpected keyword argument.*'padding'"):
            model.encode_queries(QUERIES, padding="max_length")

    def test_unknown_constructor_kwargs_are_ignored_with_a_warning(self, tiny_embedder_path: str) -> None:
        with pytest.warns(UserWarning, match=r"FlagModel ignores keyword argument.*'normalise'") as record:
            model = FlagModel(tiny_embedder_path, normalise=False)
        assert record[0].filename == __file__
        assert not hasattr(model, "normalise")


class TestTruncateDim:
    """FlagEmbedding 1.4's truncate_dim: pooled vectors cut to the first N dimensions, then normalised."""

    def test_cut_then_normalised(self, tiny_embedder_path: str) -> None:
        model = FlagModel(tiny_embedder_path, truncate_dim=8)
        full = torch.from_numpy(flag_reference(tiny_embedder_path, TEXTS, normalize=False))
        expected = torch.nn.functional.normalize(full[:, :8], dim=-1).numpy()
        np.testing.assert_allclose(model.encode(TEXTS), expected, atol=1e-5)
        assert model.encode_queries(QUERIES[0]).shape == (8,)
        assert model.encode([]).shape == (0, 8)
        raw = FlagModel(tiny_embedder_path, truncate_dim=8, normalize_embeddings=False).encode(TEXTS)
        np.testing.assert_allclose(raw, full[:, :8].numpy(), atol=1e-5)

    def test_bad_value(self, tiny_embedder_path: str) -> None:
        with pytest.raises(ValueError, match="truncate_dim must be an int > 0, got 0"):
            FlagModel(tiny_embedder_path, truncate_dim=0)


class TestCheckpoints:
    def test_unknown_plain_checkpoint_loads_without_the_core_warning(
        self, tiny_embedder_path: str, tmp_path: Path
    ) -> None:
        folder = tmp_path / "my-encoder"
        shutil.copytree(tiny_embedder_path, folder)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            embeddings = FlagModel(str(folder)).encode(TEXTS)
        np.testing.assert_allclose(embeddings, flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)

    def test_cache_dir(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        # A hub model already in a custom cache_dir (as FlagEmbedding left it) loads from there, offline.
        repo = tmp_path / "cache" / "models--BAAI--bge-small-en-v1.5"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("0123abcd")
        shutil.copytree(tiny_embedder_path, repo / "snapshots" / "0123abcd")
        model = FlagModel("BAAI/bge-small-en-v1.5", cache_dir=str(tmp_path / "cache"))
        np.testing.assert_allclose(model.encode(TEXTS), flag_reference(tiny_embedder_path, TEXTS), atol=1e-5)
        assert resolve_model(tiny_embedder_path, str(tmp_path)) == tiny_embedder_path  # a folder ignores it
        assert resolve_model("BAAI/bge-small-en-v1.5", None) == "BAAI/bge-small-en-v1.5"


@pytest.mark.gpu
def test_fp16_on_cuda_gives_float16_as_flagembedding(tiny_embedder_path: str) -> None:
    model = FlagModel(tiny_embedder_path)  # devices=None: every GPU; use_fp16=True by default
    assert model.target_devices == [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    embeddings = model.encode(TEXTS)
    assert isinstance(embeddings, np.ndarray)
    assert embeddings.dtype == np.float16  # FlagEmbedding's model.half() gives float16 arrays
    tokenizer = AutoTokenizer.from_pretrained(tiny_embedder_path)
    half = AutoModel.from_pretrained(tiny_embedder_path).half().to("cuda:0").eval()
    inputs = tokenizer(TEXTS, padding=True, truncation=True, max_length=512, return_tensors="pt").to("cuda:0")
    with torch.no_grad():
        expected = torch.nn.functional.normalize(half(**inputs).last_hidden_state[:, 0], dim=-1).cpu().numpy()
    np.testing.assert_allclose(embeddings.astype(np.float32), expected.astype(np.float32), atol=5e-3)
    tensor = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(tensor, torch.Tensor)
    assert (tensor.device.type, tensor.dtype) == ("cuda", torch.float16)
    assert FlagModel(tiny_embedder_path, use_fp16=False).encode(TEXTS).dtype == np.float32
