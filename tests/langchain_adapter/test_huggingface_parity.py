"""Drop-in parity with langchain-huggingface: the peers' arguments, translated, refused or compared.

``HuggingFaceEmbeddings`` passes ``model_kwargs`` to ``SentenceTransformer(...)`` and
``encode_kwargs``/``query_encode_kwargs`` to ``encode(...)``; ``HuggingFaceCrossEncoder`` passes
``model_kwargs`` to ``CrossEncoder(...)``. Each test gives our classes the peer's spelling and
checks the core settings it became, or the vectors and scores against the field spelling, the
core, or the peer itself (real all-MiniLM-L6-v2 weights; the tiny reranker).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.langchain import BGECrossEncoder, BGEEmbeddings

DOCS = ["The giant panda is a bear\nspecies endemic to China.", "Paris is the capital of France.", "x"]
QUERY = "where do pandas live?"
PAIRS = [
    ("where do pandas live?", "The giant panda is a bear species endemic to China."),
    ("capital of France?", "Paris is the capital of France."),
    ("where do pandas live?", "Paris."),
]


def _embeddings(path: str, **kwargs: Any) -> BGEEmbeddings:
    return BGEEmbeddings(model_name=path, **kwargs)


# --- HuggingFaceEmbeddings(model_kwargs=...): SentenceTransformer(...) arguments -----------------


def test_model_alias_and_top_level_fields(tiny_embedder_path: str, tmp_path: Any) -> None:
    embeddings = BGEEmbeddings(model=tiny_embedder_path, cache_folder=str(tmp_path), show_progress=True)
    client = embeddings.client
    assert embeddings.model_name == tiny_embedder_path
    assert (client.model_name, client.cache_folder, client.show_progress_bar) == (
        tiny_embedder_path,
        str(tmp_path),
        True,
    )
    assert client.config.cache_folder == str(tmp_path)


@pytest.mark.parametrize(
    ("model_kwargs", "expected"),
    [
        ({"device": "cpu"}, {"device": "cpu"}),
        ({"revision": "main"}, {"revision": "main"}),
        ({"trust_remote_code": True}, {"trust_remote_code": True}),
        ({"token": "hf_abc"}, {"token": "hf_abc"}),
        ({"token": True}, {"token": None}),
        ({"use_auth_token": "hf_abc"}, {"token": "hf_abc"}),
        ({"cache_folder": "/tmp/hub"}, {"cache_folder": "/tmp/hub"}),
        ({"local_files_only": True}, {"local_files_only": True}),
        ({"model_kwargs": {"attn_implementation": "eager"}}, {"model_kwargs": {"attn_implementation": "eager"}}),
        (
            {"attn_implementation": "eager", "torch_dtype": "float32"},
            {"model_kwargs": {"attn_implementation": "eager", "torch_dtype": "float32"}},
        ),
        ({"tokenizer_kwargs": {"model_max_length": 64}}, {"tokenizer_kwargs": {"model_max_length": 64}}),
        ({"processor_kwargs": {"model_max_length": 64}}, {"tokenizer_kwargs": {"model_max_length": 64}}),
        ({"config_kwargs": {"hidden_dropout_prob": 0.0}}, {"config_kwargs": {"hidden_dropout_prob": 0.0}}),
        ({"truncate_dim": 16}, {"truncate_dim": 16}),
        ({"backend": "onnx"}, {"backend": "onnx"}),
        ({"prompts": {"query": "q: "}, "default_prompt_name": None}, {"query_instruction": "q: "}),
        ({"similarity_fn_name": "dot", "model_card_data": None}, {}),
    ],
)
def test_model_kwargs_reach_the_core(
    tiny_embedder_path: str, model_kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    client = _embeddings(tiny_embedder_path, model_kwargs=model_kwargs).client
    default = _embeddings(tiny_embedder_path).client
    for name in (
        "device",
        "revision",
        "trust_remote_code",
        "token",
        "cache_folder",
        "local_files_only",
        "truncate_dim",
    ):
        assert getattr(client, name) == expected.get(name, getattr(default, name)), name
    for name in ("model_kwargs", "tokenizer_kwargs", "config_kwargs", "backend", "query_instruction"):
        assert getattr(client, name) == expected.get(name, getattr(default, name)), name
    assert REGISTRY.load_count == 0


def test_prompts_in_model_kwargs_are_not_applied_without_a_name(tiny_embedder_path: str) -> None:
    # as sentence-transformers: a prompts table alone changes nothing; a name picks one
    table = {"prompts": {"q": "query: ", "d": "doc: "}}
    assert _embeddings(tiny_embedder_path, model_kwargs=table).client.document_instruction == ""
    named = _embeddings(
        tiny_embedder_path,
        model_kwargs={**table, "default_prompt_name": "d"},
        query_encode_kwargs={"prompt_name": "q"},
    ).client
    assert (named.query_instruction, named.document_instruction) == ("query: ", "doc: ")


def test_prompt_name_query_without_a_table_keeps_the_models_instruction(tiny_embedder_path: str) -> None:
    embeddings = _embeddings(tiny_embedder_path, device="cpu", query_encode_kwargs={"prompt_name": "query"})
    assert embeddings.client.config.query_instruction == EN_QUERY_INSTRUCTION
    with pytest.raises(ValidationError, match=r"encode_kwargs\['prompt_name'\]='passage' names a prompt that"):
        _embeddings(tiny_embedder_path, encode_kwargs={"prompt_name": "passage"})


def test_ipex_backend_falls_back_to_torch_as_the_peer_does(tiny_embedder_path: str) -> None:
    with pytest.warns(UserWarning, match="'ipex' is no longer supported; the torch backend is used"):
        embeddings = _embeddings(tiny_embedder_path, model_kwargs={"backend": "ipex"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once, not on every use
        assert embeddings.client.backend == "torch"
    assert embeddings.model_kwargs == {"backend": "torch"}


def test_dtype_keys_become_use_fp16(tiny_embedder_path: str) -> None:
    client = _embeddings(tiny_embedder_path, device="cpu", model_kwargs={"torch_dtype": "float32"}).client
    assert client.config.use_fp16 is False
    with pytest.raises(ValidationError, match=r"'torch_dtype'\]=.* contradicts"):
        _embeddings(
            tiny_embedder_path, model_kwargs={"torch_dtype": "float32", "model_kwargs": {"torch_dtype": "float16"}}
        )


# --- encode_kwargs / query_encode_kwargs: encode(...) arguments --------------------------------


@pytest.mark.parametrize(
    ("encode_kwargs", "fields"),
    [
        ({"truncate_dim": 16, "normalize_embeddings": True}, {"truncate_dim": 16, "normalize": True}),
        ({"precision": "ubinary"}, {"precision": "ubinary"}),
        ({"precision": "int8", "batch_size": 2}, {"precision": "int8", "batch_size": 2}),
        ({"device": "cpu", "convert_to_numpy": True, "convert_to_tensor": False}, {"device": "cpu"}),
        ({"prompt": "passage: "}, {"embed_instruction": "passage: ", "query_instruction": "passage: "}),
    ],
)
def test_encode_kwargs_equal_the_field_spelling(
    tiny_st_embedder_path: str, encode_kwargs: dict[str, Any], fields: dict[str, Any]
) -> None:
    peer_spelling = _embeddings(tiny_st_embedder_path, encode_kwargs=encode_kwargs)
    field_spelling = _embeddings(tiny_st_embedder_path, **fields)
    assert peer_spelling.embed_documents(DOCS) == field_spelling.embed_documents(DOCS)
    if fields.get("precision") != "int8":  # int8 ranges come from the call's vectors: one query has none
        assert peer_spelling.embed_query(QUERY) == field_spelling.embed_query(QUERY)
    assert REGISTRY.load_count == 1


def test_int8_queries_need_and_use_quantization_ranges(tiny_st_embedder_path: str) -> None:
    from sentence_transformers.util import quantize_embeddings

    floats = _embeddings(tiny_st_embedder_path, device="cpu")
    dimension = len(floats.embed_query(QUERY))
    ranges = [[-0.5] * dimension, [0.5] * dimension]
    embeddings = _embeddings(
        tiny_st_embedder_path, device="cpu", encode_kwargs={"precision": "int8"}, quantization_ranges=ranges
    )
    expected = quantize_embeddings(np.array([floats.embed_query(QUERY)]), precision="int8", ranges=np.array(ranges))
    assert embeddings.embed_query(QUERY) == expected[0].tolist()
    with pytest.raises(ValidationError, match="quantization_ranges apply to precision 'int8' or 'uint8' only"):
        _embeddings(tiny_st_embedder_path, quantization_ranges=ranges)


def test_query_encode_kwargs_apply_to_queries_only(tiny_st_embedder_path: str) -> None:
    embeddings = _embeddings(
        tiny_st_embedder_path,
        device="cpu",
        encode_kwargs={"prompt": "passage: "},
        query_encode_kwargs={"prompt": "query: ", "batch_size": 1, "show_progress_bar": True},
    )
    core = BGEEmbedder(
        tiny_st_embedder_path, device="cpu", query_instruction="query: ", document_instruction="passage: "
    )
    assert embeddings.embed_query(QUERY) == core.embed_query(QUERY)
    assert embeddings.embed_documents(DOCS) == core.embed_documents(DOCS)
    assert (embeddings.client.batch_size, embeddings.client.show_progress_bar) == (32, False)


def test_a_prompt_equal_to_the_instruction_is_applied_once(tiny_embedder_path: str) -> None:
    default = _embeddings(tiny_embedder_path, device="cpu")
    for kwargs in (
        {"query_encode_kwargs": {"prompt": EN_QUERY_INSTRUCTION}},
        {"query_instruction": EN_QUERY_INSTRUCTION, "query_encode_kwargs": {"prompt": EN_QUERY_INSTRUCTION}},
    ):
        embeddings = _embeddings(tiny_embedder_path, device="cpu", **kwargs)
        assert embeddings.client.config.query_instruction == EN_QUERY_INSTRUCTION
        assert embeddings.embed_query(QUERY) == default.embed_query(QUERY)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"query_instruction": "A: ", "query_encode_kwargs": {"prompt": "B: "}},
            r"query_encode_kwargs\['prompt'\]='B: ' contradicts query_instruction='A: '; give one",
        ),
        (
            {"embed_instruction": "", "encode_kwargs": {"prompt": "passage: "}},
            r"encode_kwargs\['prompt'\]='passage: ' contradicts embed_instruction=''",
        ),
        (
            {"encode_kwargs": {"precision": "int8"}, "query_encode_kwargs": {"precision": "binary"}},
            r"query_encode_kwargs\['precision'\]='binary' contradicts encode_kwargs\['precision'\]='int8'",
        ),
        (
            {"cache_folder": "/a", "model_kwargs": {"cache_folder": "/b"}},
            r"model_kwargs\['cache_folder'\]='/b' contradicts cache_folder='/a'",
        ),
        (
            {"truncate_dim": 8, "encode_kwargs": {"truncate_dim": 16}},
            r"encode_kwargs\['truncate_dim'\]=16 contradicts truncate_dim=8",
        ),
        (
            {"model_kwargs": {"tokenizer_kwargs": {"a": 1}, "processor_kwargs": {"a": 2}}},
            r"model_kwargs\['processor_kwargs'\]\['a'\]=2 contradicts model_kwargs\['tokenizer_kwargs'\]\['a'\]=1",
        ),
        ({"model_kwargs": {"token": 3}}, r"model_kwargs\['token'\] must be a token string, True or None"),
        ({"model_kwargs": {"model_kwargs": "eager"}}, r"model_kwargs\['model_kwargs'\] must be a mapping"),
        ({"model_kwargs": {"prompts": {"q": 1}}}, r"model_kwargs\['prompts'\] must map prompt names to strings"),
        ({"encode_kwargs": {"normalize_embeddings": "yes"}}, r"normalize_embeddings'\] must be True or False"),
        ({"encode_kwargs": {"precision": "int4"}}, "precision must be one of"),
    ],
)
def test_conflicts_and_bad_values_are_named(tiny_embedder_path: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        _embeddings(tiny_embedder_path, **kwargs)


def test_multi_process_warns_and_embeds_in_process(tiny_embedder_path: str) -> None:
    with pytest.warns(UserWarning, match="multi_process=True starts no process pool"):
        embeddings = _embeddings(tiny_embedder_path, device="cpu", multi_process=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vectors = embeddings.embed_documents(DOCS)  # no further warning per call
        embeddings.batch_size = 2  # nor on other assignments
    assert vectors == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(DOCS)


# --- the peer itself, on real weights ----------------------------------------------------------

PEER_CASES = [
    {"model_kwargs": {"device": "cpu"}},
    {"model_kwargs": {"device": "cpu"}, "encode_kwargs": {"normalize_embeddings": True, "truncate_dim": 128}},
    {"model_kwargs": {"truncate_dim": 64}, "encode_kwargs": {"normalize_embeddings": True, "batch_size": 2}},
    {"encode_kwargs": {"prompt": "passage: "}, "query_encode_kwargs": {"prompt": "query: "}},
    {
        "model_kwargs": {"prompts": {"q": "query: ", "d": "doc: "}, "default_prompt_name": "d"},
        "query_encode_kwargs": {"prompt_name": "q"},
    },
    {"encode_kwargs": {"precision": "ubinary"}},
    {
        "model_kwargs": {
            "model_kwargs": {"attn_implementation": "eager"},
            "config_kwargs": {"hidden_dropout_prob": 0.0},
        },
        "encode_kwargs": {"normalize_embeddings": False},
    },
]


@pytest.mark.parametrize("kwargs", PEER_CASES, ids=[str(i) for i in range(len(PEER_CASES))])
def test_vectors_equal_huggingface_embeddings(minilm_path: str, kwargs: dict[str, Any]) -> None:
    langchain_huggingface = pytest.importorskip("langchain_huggingface")
    peer = langchain_huggingface.HuggingFaceEmbeddings(model_name=minilm_path, **kwargs)
    ours = BGEEmbeddings(model_name=minilm_path, **kwargs)
    np.testing.assert_allclose(ours.embed_documents(DOCS), peer.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(ours.embed_query(QUERY), peer.embed_query(QUERY), atol=1e-5)


def test_int8_document_vectors_equal_huggingface_embeddings(minilm_path: str) -> None:
    langchain_huggingface = pytest.importorskip("langchain_huggingface")
    kwargs = {"encode_kwargs": {"precision": "int8"}}
    peer = langchain_huggingface.HuggingFaceEmbeddings(model_name=minilm_path, **kwargs)
    ours = BGEEmbeddings(model_name=minilm_path, **kwargs)
    vectors = ours.embed_documents(DOCS)
    assert all(type(x) is int for vector in vectors for x in vector)
    np.testing.assert_array_equal(vectors, peer.embed_documents(DOCS))


def test_vectors_equal_huggingface_bge_embeddings(minilm_path: str) -> None:
    community = pytest.importorskip("langchain_community.embeddings")
    kwargs: dict[str, Any] = {
        "model_name": minilm_path,
        "model_kwargs": {"device": "cpu", "attn_implementation": "eager"},
        "encode_kwargs": {"normalize_embeddings": True, "batch_size": 2},
        "query_instruction": "Represent this question for searching relevant passages: ",
        "embed_instruction": "passage: ",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        peer = community.HuggingFaceBgeEmbeddings(**{**kwargs, "model_kwargs": dict(kwargs["model_kwargs"])})
    ours = BGEEmbeddings(**kwargs)
    np.testing.assert_allclose(ours.embed_documents(DOCS), peer.embed_documents(DOCS), atol=1e-5)
    np.testing.assert_allclose(ours.embed_query(QUERY), peer.embed_query(QUERY), atol=1e-5)


# --- HuggingFaceCrossEncoder(model_kwargs=...): CrossEncoder(...) arguments ---------------------


@pytest.mark.parametrize(
    ("model_kwargs", "expected"),
    [
        ({"device": "cpu"}, {"device": "cpu"}),
        ({"max_length": 64}, {"max_length": 64}),
        ({"revision": "main", "trust_remote_code": True}, {"revision": "main", "trust_remote_code": True}),
        ({"token": "hf_abc"}, {"token": "hf_abc"}),
        ({"cache_folder": "/tmp/hub"}, {"cache_folder": "/tmp/hub"}),
        ({"cache_dir": "/tmp/hub"}, {"cache_folder": "/tmp/hub"}),
        ({"local_files_only": True}, {"local_files_only": True}),
        ({"model_kwargs": {"attn_implementation": "eager"}}, {"model_kwargs": {"attn_implementation": "eager"}}),
        ({"automodel_args": {"attn_implementation": "eager"}}, {"model_kwargs": {"attn_implementation": "eager"}}),
        ({"tokenizer_kwargs": {"model_max_length": 64}}, {"tokenizer_kwargs": {"model_max_length": 64}}),
        ({"processor_kwargs": {"model_max_length": 64}}, {"tokenizer_kwargs": {"model_max_length": 64}}),
        ({"tokenizer_args": {"model_max_length": 64}}, {"tokenizer_kwargs": {"model_max_length": 64}}),
        ({"config_kwargs": {"classifier_dropout": 0.0}}, {"config_kwargs": {"classifier_dropout": 0.0}}),
        ({"config_args": {"classifier_dropout": 0.0}}, {"config_kwargs": {"classifier_dropout": 0.0}}),
        ({"backend": "torch", "num_labels": 1}, {}),
        ({"activation_fn": torch.nn.Identity()}, {"normalize": False}),
        ({"default_activation_function": torch.nn.Sigmoid()}, {"normalize": True}),
        ({"prompts": None, "default_prompt_name": None, "classifier_dropout": 0.1, "model_card_data": None}, {}),
    ],
)
def test_cross_encoder_model_kwargs_reach_the_core(
    tiny_reranker_path: str, model_kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    client = BGECrossEncoder(model_name=tiny_reranker_path, model_kwargs=model_kwargs).client
    default = BGECrossEncoder(model_name=tiny_reranker_path).client
    names = ("device", "max_length", "revision", "trust_remote_code", "token", "cache_folder", "local_files_only")
    for name in (*names, "model_kwargs", "tokenizer_kwargs", "config_kwargs", "backend", "normalize"):
        assert getattr(client, name) == expected.get(name, getattr(default, name)), name
    assert REGISTRY.load_count == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_kwargs": {"modules": []}}, r"model_kwargs keys \['modules'\] cannot be honoured by BGECrossEncoder"),
        ({"model_kwargs": {"keep_in_fp32_modules": ["x"]}}, r"it understands \[.*'tokenizer_kwargs'.*use_fp16="),
        ({"model_kwargs": {"num_labels": 2}}, r"num_labels'\] must be 1 or None: a BGE reranker has one"),
        ({"model_kwargs": {"activation_fn": torch.nn.Tanh()}}, r"activation_fn'\] must be torch.nn.Sigmoid\(\)"),
        ({"model_kwargs": {"prompts": {"query": "q: "}}}, r"prompts'\] cannot be honoured by BGECrossEncoder"),
        ({"model_kwargs": {"backend": "onnx"}}, "backend must be 'torch' for a reranker, got 'onnx'"),
        (
            {"device": "cpu", "model_kwargs": {"device": "cuda"}},
            r"model_kwargs\['device'\]='cuda' contradicts device='cpu'",
        ),
        ({"max_length": 128, "model_kwargs": {"max_length": 64}}, r"\['max_length'\]=64 contradicts max_length=128"),
        ({"normalize": True, "model_kwargs": {"activation_fn": torch.nn.Identity()}}, r"contradicts normalize=True"),
        ({"model_kwargs": {"max_length": 0}}, "max_length must be an int > 0, got 0"),
    ],
)
def test_cross_encoder_refusals_are_named(tiny_reranker_path: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGECrossEncoder(model_name=tiny_reranker_path, **kwargs)


def test_cross_encoder_keeps_explicit_fields_agreeing_with_model_kwargs(tiny_reranker_path: str) -> None:
    encoder = BGECrossEncoder(model_name=tiny_reranker_path, device="cpu", model_kwargs={"device": "cpu"})
    assert encoder.client.device == "cpu"
    encoder.model_kwargs = {"device": "cpu", "max_length": 64}
    assert encoder.client.config.max_length == 64
    with pytest.raises(ValidationError, match="contradicts device='cpu'"):
        encoder.model_kwargs = {"device": "meta"}
    assert encoder.model_kwargs == {"device": "cpu", "max_length": 64}


@pytest.mark.parametrize(
    "model_kwargs",
    [
        {"device": "cpu"},
        {"device": "cpu", "activation_fn": torch.nn.Identity()},
        {"max_length": 64, "automodel_args": {"torch_dtype": "float32"}},
        {"model_kwargs": {"attn_implementation": "eager"}, "config_kwargs": {"classifier_dropout": 0.0}},
    ],
    ids=["device", "logits", "max_length", "transformers"],
)
def test_scores_equal_huggingface_cross_encoder(tiny_reranker_path: str, model_kwargs: dict[str, Any]) -> None:
    cross_encoders = pytest.importorskip("langchain_community.cross_encoders")
    peer = cross_encoders.HuggingFaceCrossEncoder(model_name=tiny_reranker_path, model_kwargs=dict(model_kwargs))
    ours = BGECrossEncoder(model_name=tiny_reranker_path, model_kwargs=dict(model_kwargs))
    scores = ours.score(PAIRS)
    assert all(type(score) is float for score in scores)
    np.testing.assert_allclose(scores, list(peer.score(PAIRS)), atol=1e-5)


def test_cross_encoder_scores_equal_the_core(tiny_reranker_path: str) -> None:
    encoder = BGECrossEncoder(model_name=tiny_reranker_path, model_kwargs={"device": "cpu", "max_length": 64})
    assert encoder.score(PAIRS) == BGEReranker(tiny_reranker_path, device="cpu", max_length=64).score_pairs(PAIRS)


def test_switching_snippet_in_the_docs_runs(tiny_embedder_path: str, tiny_reranker_path: str) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "langchain.md").read_text(encoding="utf-8")
    section = page[page.index("## Switching from langchain-huggingface") :]
    code = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)[0]
    code = code.replace("BAAI/bge-reranker-base", tiny_reranker_path)
    code = code.replace("BAAI/bge-small-en-v1.5", tiny_embedder_path)
    namespace: dict[str, Any] = {}
    exec(compile(code, "langchain.md switching", "exec"), namespace)
    assert namespace["embeddings"].client.config.query_instruction == EN_QUERY_INSTRUCTION
    assert namespace["embeddings"].client.model_kwargs == {"attn_implementation": "sdpa"}
    assert len(namespace["scores"]) == 1


TOKEN = "hf_SeCrEt0123456789abcdefTOKENvalue"


@pytest.mark.parametrize(
    "build",
    [
        lambda: BGEEmbeddings(model_name="m", device="cpu", model_kwargs={"token": TOKEN, "device": "cpu"}),
        lambda: BGEEmbeddings(model_name="m", device="cpu", token=TOKEN, model_kwargs={"use_auth_token": TOKEN}),
        lambda: BGECrossEncoder(model_name="m", device="cpu", model_kwargs={"token": TOKEN}),
    ],
    ids=["embeddings", "embeddings-both", "cross-encoder"],
)
def test_a_token_in_model_kwargs_becomes_the_secret_field(build: Any) -> None:
    obj = build()
    assert obj.client.token == TOKEN
    assert obj.token.get_secret_value() == TOKEN
    assert "token" not in obj.model_kwargs
    assert "use_auth_token" not in obj.model_kwargs
    for shown in (repr(obj), str(obj), obj.model_dump(), obj.model_dump_json()):
        assert TOKEN not in str(shown)


@pytest.mark.parametrize("cls", [BGEEmbeddings, BGECrossEncoder])
def test_contradicting_tokens_are_refused_without_showing_them(cls: Any) -> None:
    match = r"model_kwargs\['token'\] contradicts token \(tokens not shown\)"
    with pytest.raises(ValidationError, match=match) as caught:
        cls(model_name="m", device="cpu", token="hf_other", model_kwargs={"token": TOKEN})
    assert "hf_other" not in str(caught.value).split("[type=")[0]
    assert TOKEN not in str(caught.value).split("[type=")[0]


@pytest.mark.parametrize("cls", ["BGEEmbeddings", "BGECrossEncoder"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"token": "hf_SECRET1", "model_kwargs": {"token": "hf_SECRET2"}},
        {"model_kwargs": {"token": "hf_SECRET3", "bogus": 1}},
        {"model_kwargs": {"tokenizer_kwargs": {"token": "hf_SECRET4"}, "processor_kwargs": {"token": "hf_SECRET5"}}},
        {"token": "hf_SECRET6", "batch_size": 0},
    ],
)
def test_validation_errors_never_show_tokens(cls: str, kwargs: dict[str, Any]) -> None:
    from pydantic import ValidationError

    import bge_integrations.langchain as adapter

    with pytest.raises(ValidationError) as error:
        getattr(adapter, cls)(model_name="m", **kwargs)
    assert "SECRET" not in str(error.value)
    assert "SECRET" not in repr(error.value.errors())
