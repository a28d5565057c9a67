from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY
from bge_integrations.langchain import BGEEmbeddings

TEXTS = ["The giant panda is a bear species endemic to China.", "Paris is the capital of France.", ""]
QUERY = "where do pandas live?"


@pytest.fixture
def embeddings(tiny_embedder_path: str) -> BGEEmbeddings:
    return BGEEmbeddings(model_name=tiny_embedder_path, device="cpu")


@pytest.fixture
def core(tiny_embedder_path: str) -> BGEEmbedder:
    return BGEEmbedder(tiny_embedder_path, device="cpu")


# --- defaults and construction -------------------------------------------------------------


def test_init_default() -> None:
    embeddings = BGEEmbeddings()
    assert embeddings.model_dump() == {
        "model_name": "BAAI/bge-small-en-v1.5",
        "query_instruction": None,
        "embed_instruction": "",
        "pooling": None,
        "normalize": None,
        "max_length": None,
        "truncate_dim": None,
        "precision": "float32",
        "quantization_ranges": None,
        "device": None,
        "use_fp16": None,
        "batch_size": 32,
        "max_batch_tokens": None,
        "cache_dir": None,
        "cache_folder": None,
        "backend": "torch",
        "backend_precision": None,
        "backend_dir": None,
        "revision": None,
        "trust_remote_code": False,
        "show_progress": False,
        "multi_process": False,
        "model_kwargs": {},
        "encode_kwargs": {},
        "query_encode_kwargs": {},
        "base_url": None,
    }
    assert REGISTRY.load_count == 0  # nothing loads before first use


def test_unknown_field_is_refused(tiny_embedder_path: str) -> None:
    with pytest.raises(ValidationError, match="cache_folders"):
        BGEEmbeddings(model_name=tiny_embedder_path, cache_folders="/tmp/x")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_name": ""}, "model_name must be a hub id or a local path, got ''"),
        ({"batch_size": 0}, r"batch_size\n  Input should be greater than 0 \[.*input_value=0,"),
        ({"max_length": -3}, r"max_length\n  Input should be greater than 0 \[.*input_value=-3,"),
        ({"device": "gpu"}, "device must be a torch device string such as 'cpu' or 'cuda:0', got 'gpu'"),
        ({"device": "cpu", "use_fp16": True}, "use_fp16=True needs a CUDA or MPS device, got device='cpu'"),
        ({"model_kwargs": {"device": "cpu:x"}}, "device must be a torch device string"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGEEmbeddings(**kwargs)  # type: ignore[arg-type]
    assert REGISTRY.load_count == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_missing_cuda_fails_at_first_use_not_construction(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(model_name=tiny_embedder_path, device="cuda:0", use_fp16=True)
    with pytest.raises(ValueError, match="device='cuda:0' asks for CUDA, but torch sees no CUDA device"):
        embeddings.embed_query(QUERY)


def test_assignment_reaches_the_core(embeddings: BGEEmbeddings) -> None:
    first = embeddings.client
    embeddings.batch_size = 4
    assert embeddings.client.batch_size == 4
    assert embeddings.client is not first


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("batch_size", 0, r"batch_size\n  Input should be greater than 0 \[.*input_value=0,"),
        ("max_length", -1, r"max_length\n  Input should be greater than 0 \[.*input_value=-1,"),
        ("pooling", "max", "pooling"),
        ("model_name", "", "model_name must be a hub id"),
        ("device", "gpu", "device must be a torch device string"),
        ("use_fp16", True, "use_fp16=True needs a CUDA or MPS device, got device='cpu'"),
        ("model_kwargs", {"modules": []}, r"model_kwargs keys \['modules'\]"),
        ("encode_kwargs", {"batch_size": -1}, "batch_size must be an int > 0, got -1"),
    ],
)
def test_rejected_assignment_keeps_the_previous_value(
    embeddings: BGEEmbeddings, core: BGEEmbedder, field: str, value: object, match: str
) -> None:
    before = embeddings.model_dump()
    fields_set = set(embeddings.model_fields_set)
    client = embeddings.client
    with pytest.raises(ValidationError, match=match):
        setattr(embeddings, field, value)
    assert embeddings.model_dump() == before
    assert embeddings.model_fields_set == fields_set
    assert embeddings.client is client
    assert embeddings.embed_documents(TEXTS) == core.embed_documents(TEXTS)
    embeddings.batch_size = 2  # still assignable
    assert embeddings.client.batch_size == 2


def test_rejected_assignment_keeps_which_fields_were_set(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(model_name=tiny_embedder_path, model_kwargs={"device": "cpu"})
    with pytest.raises(ValidationError, match=r"model_kwargs\['device'\]='cpu' contradicts device='meta'"):
        embeddings.device = "meta"
    assert "device" not in embeddings.model_fields_set  # else model_kwargs would contradict device=None
    assert (embeddings.device, embeddings.client.device) == (None, "cpu")
    assert len(embeddings.embed_query(QUERY)) == len(embeddings.embed_documents(["x"])[0])


# --- vectors equal the core's ----------------------------------------------------------------


def test_documents_equal_core_without_instruction(embeddings: BGEEmbeddings, core: BGEEmbedder) -> None:
    vectors = embeddings.embed_documents(TEXTS)
    assert vectors == core.embed_documents(TEXTS)
    assert len(vectors) == 3
    assert all(type(x) is float for vector in vectors for x in vector)
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-5) for v in vectors)


def test_query_gets_the_official_instruction_only(embeddings: BGEEmbeddings, core: BGEEmbedder) -> None:
    query = embeddings.embed_query(QUERY)
    assert embeddings.client.config.query_instruction == EN_QUERY_INSTRUCTION
    assert query == core.embed_query(QUERY)
    assert all(type(x) is float for x in query)
    plain = BGEEmbedder(embeddings.model_name, device="cpu", query_instruction="")
    np.testing.assert_allclose(query, plain.embed_documents([EN_QUERY_INSTRUCTION + QUERY])[0], atol=1e-6)
    assert query != embeddings.embed_documents([QUERY])[0]


def test_empty_query_instruction_means_none(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", query_instruction="")
    assert embeddings.embed_query(QUERY) == embeddings.embed_documents([QUERY])[0]


def test_embed_instruction_reaches_documents_only(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", embed_instruction="passage: ")
    core = BGEEmbedder(tiny_embedder_path, device="cpu", document_instruction="passage: ")
    assert embeddings.embed_documents(TEXTS) == core.embed_documents(TEXTS)
    assert embeddings.embed_query(QUERY) == core.embed_query(QUERY)
    assert embeddings.embed_documents(TEXTS) != BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(TEXTS)


def test_empty_list_gives_empty_list(embeddings: BGEEmbeddings) -> None:
    assert embeddings.embed_documents([]) == []
    assert REGISTRY.load_count == 0


def test_bad_input_is_named(embeddings: BGEEmbeddings) -> None:
    with pytest.raises(TypeError, match=r"texts\[1\] must be a string, got int: 7"):
        embeddings.embed_documents(["ok", 7])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="text must be a string, got NoneType"):
        embeddings.embed_query(None)  # type: ignore[arg-type]


# --- async -----------------------------------------------------------------------------------


async def test_async_equals_sync(embeddings: BGEEmbeddings) -> None:
    assert await embeddings.aembed_documents(TEXTS) == embeddings.embed_documents(TEXTS)
    assert await embeddings.aembed_query(QUERY) == embeddings.embed_query(QUERY)
    assert await embeddings.aembed_documents([]) == []


async def test_async_goes_through_the_core_async(embeddings: BGEEmbeddings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    client = embeddings.client

    async def aembed_documents(texts: list[str]) -> list[list[float]]:
        calls.append("documents")
        return [[1.0]]

    async def aembed_query(text: str) -> list[float]:
        calls.append("query")
        return [2.0]

    monkeypatch.setattr(client, "aembed_documents", aembed_documents)
    monkeypatch.setattr(client, "aembed_query", aembed_query)
    assert await embeddings.aembed_documents(["x"]) == [[1.0]]
    assert await embeddings.aembed_query("x") == [2.0]
    assert calls == ["documents", "query"]


# --- HuggingFaceBgeEmbeddings compatibility ----------------------------------------------------


def test_huggingface_bge_arguments_are_translated(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(
        model_name=tiny_embedder_path,
        model_kwargs={"device": "cpu", "revision": None, "trust_remote_code": False},
        encode_kwargs={"batch_size": 2, "normalize_embeddings": True, "show_progress_bar": False},
        query_instruction="Represent this question for searching relevant passages: ",
        embed_instruction="",
        show_progress=False,
    )
    client = embeddings.client
    assert (client.device, client.batch_size, client.normalize, client.show_progress_bar) == ("cpu", 2, True, False)
    core = BGEEmbedder(
        tiny_embedder_path,
        device="cpu",
        batch_size=2,
        normalize=True,
        query_instruction="Represent this question for searching relevant passages: ",
    )
    assert embeddings.embed_documents(TEXTS) == core.embed_documents(TEXTS)
    assert embeddings.embed_query(QUERY) == core.embed_query(QUERY)


def test_normalize_embeddings_false_keeps_the_models_normalisation(tiny_embedder_path: str) -> None:
    # sentence-transformers only adds normalisation when asked; BGE's own Normalize module stays
    embeddings = BGEEmbeddings(
        model_name=tiny_embedder_path, device="cpu", encode_kwargs={"normalize_embeddings": False}
    )
    assert embeddings.client.normalize is None
    vectors = embeddings.embed_documents(TEXTS)
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-5) for v in vectors)
    off = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", normalize=False)
    assert not math.isclose(float(np.linalg.norm(off.embed_documents(TEXTS)[0])), 1.0, rel_tol=1e-3)


def test_encode_kwargs_show_progress_bar_maps_to_show_progress(tiny_embedder_path: str) -> None:
    embeddings = BGEEmbeddings(model_name=tiny_embedder_path, encode_kwargs={"show_progress_bar": True})
    assert embeddings.client.show_progress_bar is True


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model_kwargs": {"device": "cpu", "modules": []}}, r"model_kwargs keys \['modules'\]"),
        ({"model_kwargs": {"use_kernels": True}}, r"it understands \[.*'tokenizer_kwargs'.*\]"),
        ({"model_kwargs": {"file_name": "model.onnx"}}, r"file_name: backend= and backend_precision= choose"),
        ({"encode_kwargs": {"pool": object(), "batch_size": 4}}, r"encode_kwargs keys \['pool'\].*see multi_process"),
        ({"encode_kwargs": {"output_value": "token_embeddings"}}, r"\['output_value'\]"),
        ({"query_encode_kwargs": {"task": "query"}}, r"query_encode_kwargs keys \['task'\]"),
    ],
)
def test_keys_that_cannot_be_honoured_are_named(tiny_embedder_path: str, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BGEEmbeddings(model_name=tiny_embedder_path, **kwargs)  # type: ignore[arg-type]


def test_contradicting_settings_are_named(tiny_embedder_path: str) -> None:
    with pytest.raises(ValueError, match=r"model_kwargs\['device'\]='cuda' contradicts device='cpu'"):
        BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", model_kwargs={"device": "cuda"})
    with pytest.raises(ValueError, match=r"encode_kwargs\['normalize_embeddings'\]=True contradicts normalize=False"):
        BGEEmbeddings(model_name=tiny_embedder_path, normalize=False, encode_kwargs={"normalize_embeddings": True})
    same = BGEEmbeddings(model_name=tiny_embedder_path, batch_size=8, encode_kwargs={"batch_size": 8})
    assert same.client.batch_size == 8


def test_bad_value_in_kwargs_is_named(tiny_embedder_path: str) -> None:
    with pytest.raises(ValueError, match="batch_size must be an int > 0, got -1"):
        BGEEmbeddings(model_name=tiny_embedder_path, encode_kwargs={"batch_size": -1})


# --- the model loads once --------------------------------------------------------------------


def test_same_settings_load_the_model_once(tiny_embedder_path: str) -> None:
    first = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu")
    second = BGEEmbeddings(model_name=tiny_embedder_path, model_kwargs={"device": "cpu"}, batch_size=3)
    first.embed_query(QUERY)
    second.embed_documents(TEXTS)
    assert REGISTRY.load_count == 1
    BGEEmbeddings(model_name=tiny_embedder_path, device="cpu", normalize=False).embed_query(QUERY)
    assert REGISTRY.load_count == 2


# --- CPU backends ----------------------------------------------------------------------------


def test_backend_settings_reach_the_core(tiny_embedder_path: str, tmp_path) -> None:
    embeddings = BGEEmbeddings(
        model_name=tiny_embedder_path, backend="onnx", backend_precision="int8", backend_dir=str(tmp_path)
    )
    config = embeddings.client.config
    assert (config.backend, config.backend_precision, config.backend_dir) == ("onnx", "int8", str(tmp_path))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"backend": "tensorrt"},
            r"backend\n  Input should be 'torch', 'onnx', 'openvino' or 'auto' \[.*input_value='tensorrt'",
        ),
        (
            {"backend": "onnx", "backend_precision": "bf16"},
            r"backend_precision='bf16' is not available with backend='onnx'",
        ),
        ({"backend": "openvino", "device": "cuda"}, r"runs on the CPU only, got device='cuda'"),
    ],
)
def test_bad_backend_settings_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGEEmbeddings(**kwargs)  # type: ignore[arg-type]


def test_onnx_backend_gives_the_torch_vectors(tiny_embedder_path: str, tmp_path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    ours = BGEEmbeddings(model_name=tiny_embedder_path, backend="onnx", backend_dir=str(tmp_path))
    torch_ = BGEEmbeddings(model_name=tiny_embedder_path, device="cpu")
    np.testing.assert_allclose(ours.embed_documents(TEXTS), torch_.embed_documents(TEXTS), atol=1e-5)
    np.testing.assert_allclose(ours.embed_query(QUERY), torch_.embed_query(QUERY), atol=1e-5)
