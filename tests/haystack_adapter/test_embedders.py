"""BGETextEmbedder and BGEDocumentEmbedder against the core BGEEmbedder, on the tiny BGE checkpoint."""

from __future__ import annotations

import copy
import threading

import pytest
from haystack import DeserializationError, Document
from haystack.utils import ComponentDevice

from bge_integrations import BGEEmbedder
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.loading import REGISTRY, loaded_models
from bge_integrations.haystack import BGEDocumentEmbedder, BGETextEmbedder

QUERY = "Where do giant pandas live?"
# The settings named as in Haystack's SentenceTransformers embedders, at their defaults.
SENTENCE_TRANSFORMERS_DEFAULTS = {
    "prefix": "",
    "suffix": "",
    "normalize_embeddings": False,
    "local_files_only": False,
    "truncate_dim": None,
    "model_kwargs": None,
    "tokenizer_kwargs": None,
    "config_kwargs": None,
    "precision": "float32",
    "encode_kwargs": None,
    "quantization_ranges": None,
}
# The remote-server settings (base_url: a server embeds/scores instead of a local model), at their defaults.
REMOTE_DEFAULTS = {"base_url": None, "api_key": {"type": "env_var", "env_vars": ["BGE_API_KEY"], "strict": False}}
DOCS = [
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda", "year": 2020}),
    Document(content="Paris is the capital of France.", meta={"title": None}),
    Document(content=None, meta={"title": "Only a title"}),
    Document(content="The quick brown fox jumps over the lazy dog."),
]


class TestBGETextEmbedder:
    def test_init_default(self):
        embedder = BGETextEmbedder()
        assert embedder.model == "BAAI/bge-small-en-v1.5"
        assert embedder.device is None
        assert embedder.batch_size == 32
        assert embedder.progress_bar is False
        assert embedder.use_fp16 is None
        assert embedder.query_instruction is None
        assert embedder.max_length is None
        assert embedder.revision is None
        assert embedder.trust_remote_code is False
        assert REGISTRY.load_count == 0  # __init__ only stores

    def test_init_translates_settings_to_the_core(self):
        embedder = BGETextEmbedder(
            model="some/model",
            device="cpu",
            batch_size=4,
            progress_bar=True,
            use_fp16=False,
            query_instruction="Q: ",
            max_length=64,
            revision="main",
            trust_remote_code=True,
        )
        core = embedder.embedder
        assert (core.model_name, core.device, core.batch_size, core.show_progress_bar) == ("some/model", "cpu", 4, True)
        assert (core.use_fp16, core.query_instruction, core.max_length) == (False, "Q: ", 64)
        assert (core.revision, core.trust_remote_code) == ("main", True)
        assert isinstance(embedder.device, ComponentDevice)
        assert embedder.device.to_torch_str() == "cpu"

    def test_to_dict(self):
        assert BGETextEmbedder().to_dict() == {
            "type": "bge_integrations.haystack.embedders.BGETextEmbedder",
            "init_parameters": {
                "model": "BAAI/bge-small-en-v1.5",
                "device": None,
                "batch_size": 32,
                "progress_bar": False,
                "use_fp16": None,
                "max_length": None,
                "revision": None,
                "trust_remote_code": False,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "max_batch_tokens": None,
                "cache_dir": None,
                "backend": "torch",
                "backend_precision": None,
                "backend_dir": None,
                **SENTENCE_TRANSFORMERS_DEFAULTS,
                **REMOTE_DEFAULTS,
                "query_instruction": None,
            },
        }

    def test_to_dict_with_custom_init_parameters(self):
        embedder = BGETextEmbedder(
            model="my/bge",
            device=ComponentDevice.from_str("cuda:1"),  # not resolved until the model loads
            batch_size=8,
            progress_bar=True,
            use_fp16=True,
            query_instruction="",
            max_length=128,
            revision="v2",
            trust_remote_code=True,
        )
        assert embedder.to_dict() == {
            "type": "bge_integrations.haystack.embedders.BGETextEmbedder",
            "init_parameters": {
                "model": "my/bge",
                "device": {"type": "single", "device": "cuda:1"},
                "batch_size": 8,
                "progress_bar": True,
                "use_fp16": True,
                "max_length": 128,
                "revision": "v2",
                "trust_remote_code": True,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "max_batch_tokens": None,
                "cache_dir": None,
                "backend": "torch",
                "backend_precision": None,
                "backend_dir": None,
                **SENTENCE_TRANSFORMERS_DEFAULTS,
                **REMOTE_DEFAULTS,
                "query_instruction": "",
            },
        }

    def test_device_string_serializes_like_component_device(self):
        assert (
            BGETextEmbedder(device="cuda:1").to_dict()
            == BGETextEmbedder(device=ComponentDevice.from_str("cuda:1")).to_dict()
        )

    def test_from_dict(self):
        data = {
            "type": "bge_integrations.haystack.embedders.BGETextEmbedder",
            "init_parameters": {
                "model": "my/bge",
                "device": {"type": "single", "device": "cpu"},
                "batch_size": 8,
                "progress_bar": True,
                "use_fp16": False,
                "max_length": 128,
                "revision": None,
                "trust_remote_code": False,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "max_batch_tokens": None,
                "cache_dir": None,
                "backend": "torch",
                "backend_precision": None,
                "backend_dir": None,
                **SENTENCE_TRANSFORMERS_DEFAULTS,
                **REMOTE_DEFAULTS,
                "query_instruction": "Q: ",
            },
        }
        embedder = BGETextEmbedder.from_dict(data)
        assert isinstance(embedder, BGETextEmbedder)
        assert embedder.device == ComponentDevice.from_str("cpu")
        assert embedder.embedder.device == "cpu"
        assert (embedder.model, embedder.batch_size, embedder.query_instruction) == ("my/bge", 8, "Q: ")
        assert embedder.to_dict() == data

    def test_from_dict_defaults_round_trip(self):
        embedder = BGETextEmbedder.from_dict(BGETextEmbedder().to_dict())
        assert embedder.device is None
        assert embedder.to_dict() == BGETextEmbedder().to_dict()

    def test_from_dict_rejects_another_type(self):
        data = BGEDocumentEmbedder().to_dict()
        with pytest.raises(DeserializationError, match="BGEDocumentEmbedder"):
            BGETextEmbedder.from_dict(data)

    def test_run_applies_the_query_instruction(self, tiny_embedder_path):
        embedding = BGETextEmbedder(model=tiny_embedder_path, device="cpu").run(text=QUERY)["embedding"]
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert isinstance(embedding, list)
        assert all(isinstance(x, float) for x in embedding)
        assert embedding == core.embed_query(QUERY)  # the same core path: identical
        # The same tokens through the document path (no prompt) give the same vector: the instruction is a prefix.
        assert embedding == core.embed_documents([EN_QUERY_INSTRUCTION + QUERY])[0]
        assert embedding != core.embed_documents([QUERY])[0]

    def test_run_custom_and_empty_instruction(self, tiny_embedder_path):
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        custom = BGETextEmbedder(model=tiny_embedder_path, device="cpu", query_instruction="Query: ")
        none = BGETextEmbedder(model=tiny_embedder_path, device="cpu", query_instruction="")
        assert custom.run(QUERY)["embedding"] == core.embed_documents(["Query: " + QUERY])[0]
        assert none.run(QUERY)["embedding"] == core.embed_documents([QUERY])[0]

    @pytest.mark.parametrize("bad", [["a", "b"], Document(content="x"), None, 3])
    def test_run_wrong_input_format(self, bad):
        embedder = BGETextEmbedder(device="cpu")
        with pytest.raises(TypeError, match=f"BGETextEmbedder expects a string as text, got {type(bad).__name__}"):
            embedder.run(text=bad)
        assert REGISTRY.load_count == 0

    async def test_run_async_equals_run(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu")
        assert (await embedder.run_async(text=QUERY)) == embedder.run(text=QUERY)
        with pytest.raises(TypeError, match="got list"):
            await embedder.run_async(text=[QUERY])

    def test_warmup_doesnt_reload(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu")
        embedder.warm_up()
        embedder.warm_up()
        embedder.run(text=QUERY)
        assert REGISTRY.load_count == 1


class TestBGEDocumentEmbedder:
    def test_init_default(self):
        embedder = BGEDocumentEmbedder()
        assert embedder.model == "BAAI/bge-small-en-v1.5"
        assert embedder.device is None
        assert embedder.batch_size == 32
        assert embedder.progress_bar is True
        assert embedder.use_fp16 is None
        assert embedder.meta_fields_to_embed == []
        assert embedder.embedding_separator == "\n"
        assert embedder.embedder.show_progress_bar is True
        assert embedder.embedder.document_instruction == ""
        assert REGISTRY.load_count == 0

    def test_to_dict(self):
        assert BGEDocumentEmbedder().to_dict() == {
            "type": "bge_integrations.haystack.embedders.BGEDocumentEmbedder",
            "init_parameters": {
                "model": "BAAI/bge-small-en-v1.5",
                "device": None,
                "batch_size": 32,
                "progress_bar": True,
                "use_fp16": None,
                "max_length": None,
                "revision": None,
                "trust_remote_code": False,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "max_batch_tokens": None,
                "cache_dir": None,
                "backend": "torch",
                "backend_precision": None,
                "backend_dir": None,
                **SENTENCE_TRANSFORMERS_DEFAULTS,
                **REMOTE_DEFAULTS,
                "meta_fields_to_embed": [],
                "embedding_separator": "\n",
            },
        }

    def test_to_dict_with_custom_init_parameters(self):
        embedder = BGEDocumentEmbedder(
            model="my/bge",
            device="cpu",
            batch_size=2,
            progress_bar=False,
            use_fp16=False,
            meta_fields_to_embed=["title"],
            embedding_separator=" | ",
            max_length=64,
            revision="v1",
            trust_remote_code=True,
        )
        assert embedder.to_dict() == {
            "type": "bge_integrations.haystack.embedders.BGEDocumentEmbedder",
            "init_parameters": {
                "model": "my/bge",
                "device": {"type": "single", "device": "cpu"},
                "batch_size": 2,
                "progress_bar": False,
                "use_fp16": False,
                "max_length": 64,
                "revision": "v1",
                "trust_remote_code": True,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "max_batch_tokens": None,
                "cache_dir": None,
                "backend": "torch",
                "backend_precision": None,
                "backend_dir": None,
                **SENTENCE_TRANSFORMERS_DEFAULTS,
                **REMOTE_DEFAULTS,
                "meta_fields_to_embed": ["title"],
                "embedding_separator": " | ",
            },
        }

    def test_from_dict(self):
        data = BGEDocumentEmbedder(device="cpu", meta_fields_to_embed=["title"], embedding_separator=" | ").to_dict()
        embedder = BGEDocumentEmbedder.from_dict(data)
        assert isinstance(embedder, BGEDocumentEmbedder)
        assert embedder.meta_fields_to_embed == ["title"]
        assert embedder.embedding_separator == " | "
        assert embedder.device == ComponentDevice.from_str("cpu")
        assert embedder.to_dict() == data

    def test_meta_fields_must_be_a_list_of_strings(self):
        with pytest.raises(TypeError, match="meta_fields_to_embed must be a sequence of strings, got a single str"):
            BGEDocumentEmbedder(meta_fields_to_embed="title")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"meta_fields_to_embed\[1\] must be a string, got int"):
            BGEDocumentEmbedder(meta_fields_to_embed=["title", 3])  # type: ignore[list-item]

    def test_meta_fields_assigned_later_are_checked_at_run(self, tiny_embedder_path):
        embedder = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu")
        embedder.meta_fields_to_embed = "title"  # type: ignore[assignment]
        with pytest.raises(TypeError, match="meta_fields_to_embed must be a sequence of strings, got a single str"):
            embedder.run(documents=DOCS)

    def test_run_embeds_without_instruction_with_meta_fields(self, tiny_embedder_path):
        embedder = BGEDocumentEmbedder(
            model=tiny_embedder_path, device="cpu", meta_fields_to_embed=["title", "year"], progress_bar=False
        )
        result = embedder.run(documents=DOCS)["documents"]
        expected_texts = [
            "Panda\n2020\nThe giant panda is a bear species endemic to China.",
            "Paris is the capital of France.",  # a None meta value is skipped
            "Only a title\n",  # no content reads as ""
            "The quick brown fox jumps over the lazy dog.",
        ]
        expected = BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(expected_texts)
        assert len(result) == len(DOCS)
        assert [doc.embedding for doc in result] == expected
        assert [doc.id for doc in result] == [doc.id for doc in DOCS]
        assert [doc.content for doc in result] == [doc.content for doc in DOCS]

    def test_run_separator(self, tiny_embedder_path):
        embedder = BGEDocumentEmbedder(
            model=tiny_embedder_path, device="cpu", meta_fields_to_embed=["title"], embedding_separator=" - "
        )
        vector = embedder.run(documents=DOCS[:1])["documents"][0].embedding
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert vector == core.embed_documents(["Panda - " + DOCS[0].content])[0]

    def test_documents_get_no_instruction_queries_do(self, tiny_embedder_path):
        doc = Document(content=QUERY)
        doc_vector = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu").run([doc])["documents"][0].embedding
        query_vector = BGETextEmbedder(model=tiny_embedder_path, device="cpu").run(QUERY)["embedding"]
        plain_query = BGETextEmbedder(model=tiny_embedder_path, device="cpu", query_instruction="").run(QUERY)
        assert doc_vector != query_vector
        assert doc_vector == plain_query["embedding"]

    def test_run_returns_copies_and_leaves_inputs_untouched(self, tiny_embedder_path):
        documents = copy.deepcopy(DOCS)
        before = copy.deepcopy(documents)
        result = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu").run(documents=documents)["documents"]
        assert documents == before
        assert all(doc.embedding is None for doc in documents)
        assert all(out is not doc for out, doc in zip(result, documents, strict=True))
        result[0].meta["title"] = "changed"
        assert documents[0].meta["title"] == "Panda"

    def test_run_empty_list_loads_nothing(self):
        assert BGEDocumentEmbedder(model="not/loaded", device="cpu").run(documents=[]) == {"documents": []}
        assert REGISTRY.load_count == 0

    @pytest.mark.parametrize(
        ("bad", "match"),
        [
            ("a string", r"expects a list of Documents, got str: 'a string'\. To embed a string, use BGETextEmbedder"),
            (Document(content="x"), "expects a list of Documents, got Document"),
            ((Document(content="x"),), "expects a list of Documents, got tuple"),
            ([Document(content="x"), "y"], r"documents\[1\] is str: 'y'"),
            ([None], r"documents\[0\] is NoneType"),
        ],
    )
    def test_run_wrong_input_format(self, bad, match):
        embedder = BGEDocumentEmbedder(device="cpu")
        with pytest.raises(TypeError, match=match):
            embedder.run(documents=bad)
        assert REGISTRY.load_count == 0

    async def test_run_async_equals_run(self, tiny_embedder_path):
        embedder = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", meta_fields_to_embed=["title"])
        assert (await embedder.run_async(documents=DOCS)) == embedder.run(documents=DOCS)
        with pytest.raises(TypeError, match="got str"):
            await embedder.run_async(documents="text")

    def test_warmup_doesnt_reload(self, tiny_embedder_path):
        embedder = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu")
        embedder.warm_up()
        embedder.warm_up()
        embedder.run(documents=DOCS)
        assert REGISTRY.load_count == 1


async def test_warm_up_async_loads_once_off_the_event_loop(tiny_embedder_path, monkeypatch):
    embedder = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu")
    threads = []
    original = embedder.embedder.warm_up
    monkeypatch.setattr(embedder.embedder, "warm_up", lambda: threads.append(threading.get_ident()) or original())
    await embedder.warm_up_async()
    await BGETextEmbedder(model=tiny_embedder_path, device="cpu").warm_up_async()
    assert REGISTRY.load_count == 1
    assert len(threads) == 1
    assert threading.get_ident() not in threads


def test_embedders_configured_alike_share_one_model(tiny_embedder_path):
    text = BGETextEmbedder(model=tiny_embedder_path, device="cpu", query_instruction="Q: ", batch_size=2)
    docs = BGEDocumentEmbedder(model=tiny_embedder_path, device=ComponentDevice.from_str("cpu"), progress_bar=False)
    core = BGEEmbedder(tiny_embedder_path, device="cpu")
    text.warm_up()
    docs.run(documents=DOCS)
    text.run(text=QUERY)
    core.embed_query(QUERY)
    assert REGISTRY.load_count == 1
    assert len(loaded_models()) == 1
    BGETextEmbedder(model=tiny_embedder_path, device="cpu", max_length=16).warm_up()  # other weights settings
    assert REGISTRY.load_count == 2


def test_release_frees_the_shared_model(tiny_embedder_path):
    text = BGETextEmbedder(model=tiny_embedder_path, device="cpu")
    docs = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu")
    text.warm_up()
    assert len(loaded_models()) == 1
    assert docs.release() is True  # frees the model both use
    assert loaded_models() == []
    assert text.release() is False
    before = text.run(text=QUERY)["embedding"]  # loads again on use
    assert REGISTRY.load_count == 2
    assert before == BGEEmbedder(tiny_embedder_path, device="cpu").embed_query(QUERY)


class TestBackends:
    @pytest.mark.parametrize("cls", [BGETextEmbedder, BGEDocumentEmbedder])
    def test_backend_settings_round_trip_and_reach_the_core(self, cls, tmp_path):
        component = cls(backend="openvino", backend_precision="bf16", backend_dir=str(tmp_path))
        data = component.to_dict()
        assert {key: data["init_parameters"][key] for key in ("backend", "backend_precision", "backend_dir")} == {
            "backend": "openvino",
            "backend_precision": "bf16",
            "backend_dir": str(tmp_path),
        }
        again = cls.from_dict(data)
        assert again.to_dict() == data
        config = again.embedder.config
        assert (config.backend, config.backend_precision, config.device) == ("openvino", "bf16", "cpu")
        assert REGISTRY.load_count == 0

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"backend": "tensorrt"}, "backend must be one of .* got 'tensorrt'"),
            ({"backend": "onnx", "backend_precision": "fp16"}, "got 'fp16'"),
            ({"backend": "onnx", "device": "cuda:1"}, "CPU only, got device='cuda:1'"),
        ],
    )
    def test_bad_backend_settings_are_named(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            BGEDocumentEmbedder(**kwargs)

    def test_onnx_backend_gives_the_torch_vectors(self, tiny_embedder_path, tmp_path):
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
        docs = [Document(content="Pandas eat bamboo."), Document(content="Paris is in France."), Document(content="")]
        settings = {"model": tiny_embedder_path, "progress_bar": False}
        ours = BGEDocumentEmbedder(**settings, backend="onnx", backend_dir=str(tmp_path)).run(documents=docs)
        torch_ = BGEDocumentEmbedder(**settings, device="cpu").run(documents=docs)
        for mine, theirs in zip(ours["documents"], torch_["documents"], strict=True):
            assert mine.embedding == pytest.approx(theirs.embedding, abs=1e-5)
        query = BGETextEmbedder(model=tiny_embedder_path, backend="onnx", backend_dir=str(tmp_path)).run(text="pandas?")
        reference = BGETextEmbedder(model=tiny_embedder_path, device="cpu").run(text="pandas?")
        assert query["embedding"] == pytest.approx(reference["embedding"], abs=1e-5)
