"""Pass-through load options, Matryoshka truncation, quantisation and score_pairs in the core engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.loading import REGISTRY

TEXTS = ["pandas live in China", "Paris is the capital of France", "HELLO WORLD", "pandas live in China"]


def _model(embedder: BGEEmbedder) -> torch.nn.Module:
    return embedder._loaded().model[0].auto_model


# --- model_kwargs / tokenizer_kwargs / config_kwargs ---------------------------------------------------------------


def test_model_kwargs_reach_the_model_and_separate_load_keys(tiny_embedder_path: str) -> None:
    eager = BGEEmbedder(tiny_embedder_path, device="cpu", model_kwargs={"attn_implementation": "eager"})
    plain = BGEEmbedder(tiny_embedder_path, device="cpu")
    assert _model(eager).config._attn_implementation == "eager"
    assert eager.load_key != plain.load_key
    np.testing.assert_allclose(eager.embed_documents(TEXTS), plain.embed_documents(TEXTS), atol=1e-5)


def test_options_also_reach_a_sentence_transformers_checkpoint(tiny_st_embedder_path: str) -> None:
    embedder = BGEEmbedder(
        tiny_st_embedder_path,
        device="cpu",
        model_kwargs={"attn_implementation": "eager"},
        config_kwargs={"hidden_act": "relu"},
        tokenizer_kwargs={"do_lower_case": False},
    )
    model = _model(embedder)
    assert model.config._attn_implementation == "eager"
    assert model.config.hidden_act == "relu"
    assert embedder._loaded().model.tokenizer.do_lower_case is False


def test_config_kwargs_change_the_model_and_the_cache_key(tiny_embedder_path: str, tmp_path: Path) -> None:
    relu = BGEEmbedder(tiny_embedder_path, device="cpu", config_kwargs={"hidden_act": "relu"}, cache_dir=tmp_path)
    full = BGEEmbedder(tiny_embedder_path, device="cpu", cache_dir=tmp_path)
    assert _model(relu).config.hidden_act == "relu"
    assert _model(full).config.hidden_act != "relu"
    short, whole = relu.embed_documents(TEXTS), full.embed_documents(TEXTS)
    assert not np.allclose(short, whole, atol=1e-3)
    # Both are stored, under different keys: each reads its own back.
    REGISTRY.clear()
    assert relu.embed_documents(TEXTS) == short
    assert full.embed_documents(TEXTS) == whole


def test_tokenizer_kwargs_reach_the_tokenizer(tiny_embedder_path: str) -> None:
    cased = BGEEmbedder(tiny_embedder_path, device="cpu", tokenizer_kwargs={"do_lower_case": False})
    lower = BGEEmbedder(tiny_embedder_path, device="cpu")
    assert cased._loaded().model.tokenizer.do_lower_case is False
    got, want = cased.embed_documents(["HELLO"]), lower.embed_documents(["HELLO"])
    assert not np.allclose(got, want, atol=1e-4)  # "HELLO" is read cased, so other tokens
    np.testing.assert_allclose(cased.embed_documents(["hello"]), lower.embed_documents(["hello"]), atol=1e-6)


@pytest.mark.parametrize(
    ("key", "setting"),
    [
        ("device", "device"),
        ("device_map", "device"),
        ("revision", "revision"),
        ("trust_remote_code", "trust_remote_code"),
        ("token", "token"),
        ("cache_dir", "cache_folder"),
        ("local_files_only", "local_files_only"),
    ],
)
@pytest.mark.parametrize("option", ["model_kwargs", "tokenizer_kwargs", "config_kwargs"])
@pytest.mark.parametrize("engine", [BGEEmbedder, BGEReranker])
def test_options_that_are_settings_are_refused_naming_the_setting(
    engine: type[BGEEmbedder | BGEReranker], option: str, key: str, setting: str
) -> None:
    with pytest.raises(ValueError, match=rf"{option}\['{key}'\] is a setting of its own here: pass {setting}="):
        engine("m", **{option: {key: "x"}})  # type: ignore[arg-type]


def test_bad_option_types_are_named() -> None:
    with pytest.raises(TypeError, match="model_kwargs must be a mapping"):
        BGEEmbedder("m", model_kwargs=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tokenizer_kwargs keys must be strings, got 1"):
        BGEReranker("m", tokenizer_kwargs={1: 2})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match=r"tokenizer_kwargs\['torch_dtype'\] is the model's setting"):
        BGEEmbedder("m", tokenizer_kwargs={"torch_dtype": "float16"})


def test_dtype_in_model_kwargs_is_read_as_use_fp16(tiny_embedder_path: str) -> None:
    assert BGEEmbedder("m", device="cpu", model_kwargs={"torch_dtype": "float32"}).config.use_fp16 is False
    assert BGEEmbedder("m", device="cpu", model_kwargs={"dtype": "auto"}).config.use_fp16 is False
    with pytest.raises(ValueError, match=r"model_kwargs\['torch_dtype'\]='float16' contradicts use_fp16=False"):
        BGEEmbedder("m", use_fp16=False, model_kwargs={"torch_dtype": "float16"})
    with pytest.raises(ValueError, match="float16 weights, which need a CUDA or MPS device, got device='cpu'"):
        _ = BGEReranker("m", device="cpu", model_kwargs={"torch_dtype": torch.float16}).config
    with pytest.raises(ValueError, match="must be 'float16', 'bfloat16', 'float32' or 'auto', got 'int4'"):
        BGEEmbedder("m", model_kwargs={"dtype": "int4"})
    with pytest.raises(ValueError, match="both 'dtype' and 'torch_dtype'"):
        BGEEmbedder("m", model_kwargs={"dtype": "auto", "torch_dtype": "auto"})
    bf16 = BGEEmbedder(tiny_embedder_path, device="cpu", model_kwargs={"torch_dtype": "bfloat16"})
    assert _model(bf16).dtype == torch.bfloat16
    fp32 = BGEEmbedder(tiny_embedder_path, device="cpu")
    assert bf16.load_key != fp32.load_key
    np.testing.assert_allclose(bf16.embed_documents(TEXTS), fp32.embed_documents(TEXTS), atol=0.05)


def test_reranker_options_reach_model_tokenizer_and_config(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(
        tiny_reranker_path,
        device="cpu",
        model_kwargs={"attn_implementation": "eager"},
        config_kwargs={"hidden_act": "relu"},
        tokenizer_kwargs={"model_max_length": 64},
    )
    loaded = reranker._loaded()
    assert loaded.model.config._attn_implementation == "eager"
    assert loaded.model.config.hidden_act == "relu"
    assert loaded.tokenizer.model_max_length == 64
    plain = BGEReranker(tiny_reranker_path, device="cpu")
    assert reranker.load_key != plain.load_key
    assert reranker.score("q", ["a passage"]) != plain.score("q", ["a passage"])


def test_reranker_backend_is_torch_only() -> None:
    assert BGEReranker("m", backend="torch").config.backend == "torch"
    with pytest.raises(ValueError, match="backend must be 'torch' for a reranker, got 'onnx'"):
        BGEReranker("m", backend="onnx")  # type: ignore[arg-type]


# --- cache_folder / local_files_only ------------------------------------------------------------------------------


def test_cache_folder_finds_a_hub_model_downloaded_there(
    tiny_st_embedder_path: str, tiny_reranker_path: str, tmp_path: Path
) -> None:
    folder = tmp_path / "downloads"
    for hub_id, source in (
        ("acme/bge-small-en-v1.5", tiny_st_embedder_path),
        ("acme/bge-reranker-base", tiny_reranker_path),
    ):
        repo = folder / ("models--" + hub_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("c" * 40)
        shutil.copytree(source, repo / "snapshots" / ("c" * 40))
    embedder = BGEEmbedder("acme/bge-small-en-v1.5", device="cpu", cache_folder=folder, local_files_only=True)
    assert embedder.embed_documents(TEXTS) == BGEEmbedder(tiny_st_embedder_path, device="cpu").embed_documents(TEXTS)
    assert embedder._fingerprint() == f"acme/bge-small-en-v1.5@{'c' * 40}"  # the commit read from that folder
    reranker = BGEReranker("acme/bge-reranker-base", device="cpu", cache_folder=str(folder), local_files_only=True)
    assert reranker.score("q", ["p"]) == BGEReranker(tiny_reranker_path, device="cpu").score("q", ["p"])
    assert embedder.config.cache_folder == str(folder)


def test_cache_folder_and_local_files_only_are_checked() -> None:
    with pytest.raises(TypeError, match="cache_folder must be a folder path or None, got int: 3"):
        BGEEmbedder("m", cache_folder=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="local_files_only must be True or False, got str: 'yes'"):
        BGEReranker("m", local_files_only="yes")  # type: ignore[arg-type]


# --- truncate_dim and precision -----------------------------------------------------------------------------------


def test_truncate_dim_keeps_the_first_dimensions_renormalised(tiny_embedder_path: str, tmp_path: Path) -> None:
    full = np.asarray(BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS))
    cut = BGEEmbedder(tiny_embedder_path, device="cpu", truncate_dim=8, cache_dir=tmp_path)
    got = np.asarray(cut.embed_documents(TEXTS))
    assert got.shape == (len(TEXTS), 8)
    want = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert cut.dimension == 8
    assert cut.config.truncate_dim == 8
    # The cache keeps full vectors: another width on the same cache reads them back.
    loads = REGISTRY.load_count
    wider = BGEEmbedder(tiny_embedder_path, device="cpu", truncate_dim=16, cache_dir=tmp_path)
    np.testing.assert_allclose(
        wider.embed_documents(TEXTS), full[:, :16] / np.linalg.norm(full[:, :16], axis=1)[:, None], atol=1e-6
    )
    assert REGISTRY.load_count == loads


def test_truncation_of_vectors_that_are_not_unit_length_leaves_them_as_they_are(tiny_embedder_path: str) -> None:
    raw = np.asarray(BGEEmbedder(tiny_embedder_path, device="cpu", normalize=False).embed_documents(TEXTS))
    cut = BGEEmbedder(tiny_embedder_path, device="cpu", normalize=False, truncate_dim=4).embed_documents(TEXTS)
    np.testing.assert_allclose(cut, raw[:, :4], atol=1e-6)


def test_precision_quantises_as_sentence_transformers(tiny_embedder_path: str) -> None:
    from sentence_transformers import quantize_embeddings

    full = np.asarray(BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS), dtype=np.float32)
    for precision in ("binary", "ubinary", "int8", "uint8"):
        got = BGEEmbedder(tiny_embedder_path, device="cpu", precision=precision).embed_documents(TEXTS)
        assert all(isinstance(value, int) for row in got for value in row)
        np.testing.assert_array_equal(got, quantize_embeddings(full, precision))
    ranges = np.stack([full.min(axis=0) - 0.1, full.max(axis=0) + 0.1])
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", precision="int8", quantization_ranges=ranges.tolist())
    np.testing.assert_array_equal(embedder.embed_documents(TEXTS), quantize_embeddings(full, "int8", ranges=ranges))
    # With ranges, a text's code does not depend on what else is in the call.
    assert embedder.embed_documents(TEXTS[:1])[0] == embedder.embed_documents(TEXTS)[0]
    assert BGEEmbedder(tiny_embedder_path, device="cpu", precision="binary").dimension == full.shape[1] // 8


def test_precision_and_ranges_are_checked(tiny_embedder_path: str) -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        BGEEmbedder("m", precision="float16")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quantization_ranges apply to precision 'int8' or 'uint8' only, not 'binary'"):
        BGEEmbedder("m", precision="binary", quantization_ranges=[[0.0], [1.0]])
    with pytest.raises(ValueError, match=r"quantization_ranges must be finite numbers of shape \(2, dim\)"):
        BGEEmbedder("m", precision="int8", quantization_ranges=[0.0, 1.0])
    with pytest.raises(ValueError, match="truncate_dim must be an int > 0, got 0"):
        BGEEmbedder("m", truncate_dim=0)
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", precision="int8", quantization_ranges=[[0.0], [1.0]])
    with pytest.raises(ValueError, match="quantization_ranges has 1 dimensions, the vectors"):
        embedder.embed_documents(TEXTS)


# --- score_pairs --------------------------------------------------------------------------------------------------


def test_score_pairs_equals_score_per_query_in_input_order(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    pairs = [("q1", "alpha"), ("q2", "beta"), ("q1", "gamma"), ("q2", "alpha"), ("q1", "alpha")]
    got = reranker.score_pairs(pairs)
    q1 = reranker.score("q1", ["alpha", "gamma"])
    q2 = reranker.score("q2", ["beta", "alpha"])
    np.testing.assert_allclose(got, [q1[0], q2[0], q1[1], q2[1], q1[0]], atol=1e-6)
    raw = reranker.score_pairs(pairs, normalize=False)
    np.testing.assert_allclose(torch.sigmoid(torch.tensor(raw)).tolist(), got, atol=1e-6)
    assert reranker.score_pairs([]) == []


def test_score_pairs_names_a_bad_pair() -> None:
    reranker = BGEReranker("m")
    with pytest.raises(TypeError, match=r"pairs\[1\] must hold two strings; pairs\[1\]\[1\] \(the passage\) is int: 3"):
        reranker.score_pairs([("q", "p"), ("q", 3)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pairs must be a list of"):
        reranker.score_pairs("qp")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a \(query, passage\) pair"):
        reranker.score_pairs([("q", "p", "x")])  # type: ignore[list-item]


def test_tokenizer_model_max_length_is_read_as_max_length(tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu", tokenizer_kwargs={"model_max_length": 8})
    assert embedder.config.max_length == 8
    long_text = "pandas " * 40
    np.testing.assert_allclose(
        embedder.embed_documents([long_text]),
        BGEEmbedder(tiny_embedder_path, device="cpu", max_length=8).embed_documents([long_text]),
        atol=1e-6,
    )
    assert BGEEmbedder("m", max_length=16, tokenizer_kwargs={"model_max_length": 8}).config.max_length == 16
    reranker = BGEReranker(tiny_reranker_path, device="cpu", tokenizer_kwargs={"model_max_length": 32})
    assert (reranker.config.max_length, reranker.config.max_query_length) == (32, 24)


def test_a_cached_plain_checkpoint_offline_gets_bge_pooling(tiny_embedder_path: str, tmp_path: Path) -> None:
    # A hub snapshot without modules.json, read offline: CLS pooling and normalisation, as for its
    # local folder; not sentence-transformers' mean-pooling fallback.
    repo = tmp_path / "hub" / "models--acme--plain-bge"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("d" * 40)
    shutil.copytree(tiny_embedder_path, repo / "snapshots" / ("d" * 40))
    hub = BGEEmbedder("acme/plain-bge", device="cpu", cache_folder=tmp_path / "hub", local_files_only=True)
    local = BGEEmbedder(tiny_embedder_path, device="cpu", pooling="cls", normalize=True, max_length=512)
    with pytest.warns(UserWarning, match="has no sentence-transformers config"):
        got = hub.embed_documents(TEXTS)
    np.testing.assert_allclose(got, local.embed_documents(TEXTS), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_more_option_edge_cases(tiny_embedder_path: str) -> None:
    # NumPy integers are read as model_max_length, a config object is refused (config_kwargs says it),
    # and only the vectors that came unit-length are normalised again after truncation.
    assert BGEEmbedder("m", tokenizer_kwargs={"model_max_length": np.int64(8)}).config.max_length == 8
    with pytest.raises(
        ValueError, match=r"model_kwargs\['config'\] is a config object: pass its settings as config_kwargs="
    ):
        BGEReranker("m", model_kwargs={"config": object()})
    from bge_integrations.core.vector_output import finish_vectors

    rows = np.array([[0.6, 0.8, 0.0], [3.0, 4.0, 12.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    got = finish_vectors(rows, truncate_dim=1, precision="float32", ranges=None)
    assert got == [[1.0], [3.0], [0.0]]
