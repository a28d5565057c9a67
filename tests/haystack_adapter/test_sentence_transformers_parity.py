"""Drop-in parity with Haystack's SentenceTransformers components (package sentence-transformers-haystack).

Same arguments, the same saved YAML (only the ``type:`` lines changed), the same results where
the settings mean the same, and what a user switching over hits with Haystack's allowlist.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from haystack import DeserializationError, Document, Pipeline
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.components.writers import DocumentWriter
from haystack.core import serialization_security
from haystack.document_stores.in_memory import InMemoryDocumentStore

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder

st_embedders = pytest.importorskip("haystack_integrations.components.embedders.sentence_transformers")
st_rankers = pytest.importorskip("haystack_integrations.components.rankers.sentence_transformers")
PeerText = st_embedders.SentenceTransformersTextEmbedder
PeerDocument = st_embedders.SentenceTransformersDocumentEmbedder
PeerRanker = st_rankers.SentenceTransformersSimilarityRanker

ROOT = Path(__file__).resolve().parents[2]
QUERY = "Where do giant pandas live?"
DOCS = [
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda"}),
    Document(content="Paris is the capital and most populous city of France.", meta={"title": "Paris"}),
    Document(content="Mitochondria are the powerhouse of the cell."),
    Document(content="The quick brown fox jumps over the lazy dog.", meta={"title": None}),
    Document(content="Vitamin D deficiency is common in northern latitudes.", meta={"year": 2020}),
]

# Every __init__ argument of the peers (sentence-transformers-haystack 2.x), written out so that
# a new one in a later release fails test_peer_argument_lists_are_current instead of going unseen.
PEER_TEXT_ARGS = [
    "model",
    "device",
    "token",
    "prefix",
    "suffix",
    "batch_size",
    "progress_bar",
    "normalize_embeddings",
    "trust_remote_code",
    "local_files_only",
    "truncate_dim",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
    "precision",
    "encode_kwargs",
    "backend",
    "revision",
    "quantization_ranges",
]
PEER_DOCUMENT_ARGS = [*PEER_TEXT_ARGS, "meta_fields_to_embed", "embedding_separator"]
PEER_RANKER_ARGS = [
    "model",
    "device",
    "token",
    "top_k",
    "query_prefix",
    "query_suffix",
    "document_prefix",
    "document_suffix",
    "meta_fields_to_embed",
    "embedding_separator",
    "scale_score",
    "score_threshold",
    "trust_remote_code",
    "model_kwargs",
    "tokenizer_kwargs",
    "config_kwargs",
    "backend",
    "batch_size",
]
PAIRS = [(PeerText, BGETextEmbedder, PEER_TEXT_ARGS), (PeerDocument, BGEDocumentEmbedder, PEER_DOCUMENT_ARGS)]
PAIRS.append((PeerRanker, BGERanker, PEER_RANKER_ARGS))
IDS = ["text", "document", "ranker"]


def parameters(cls: type) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"}


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__name__}"


def swapped(text: str) -> str:
    """A peer's saved pipeline with only its ``type:`` lines changed to our classes."""
    for peer, ours, _ in PAIRS:
        text = text.replace(f"type: {qualified(peer)}\n", f"type: {qualified(ours)}\n")
    return text


@pytest.mark.parametrize(("peer", "ours", "args"), PAIRS, ids=IDS)
def test_peer_argument_lists_are_current(peer, ours, args):
    assert sorted(parameters(peer)) == sorted(args)


@pytest.mark.parametrize(("peer", "ours", "args"), PAIRS, ids=IDS)
def test_every_peer_argument_is_accepted_with_the_peers_default(peer, ours, args):
    accepted = parameters(ours)
    assert [name for name in args if name not in accepted] == []
    assert all(accepted[name].kind is inspect.Parameter.KEYWORD_ONLY for name in args)
    # Each peer default is a valid value here (the model's is another model: ours is kept).
    defaults = {name: parameters(peer)[name].default for name in args if name != "model"}
    component = ours(**defaults)
    assert {name: getattr(component, name) for name in args if name not in ("model", "device")} == {
        name: value for name, value in defaults.items() if name != "device"
    } | ({"meta_fields_to_embed": []} if "meta_fields_to_embed" in defaults else {})


def peer_settings(cls: type, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Non-default values for every peer argument that a BGE component honours the same way."""
    if cls is PeerRanker:
        return {
            "model": request.getfixturevalue("tiny_reranker_path"),
            "top_k": 3,
            "query_prefix": "query: ",
            "query_suffix": "?",
            "document_prefix": "passage: ",
            "document_suffix": ".",
            "meta_fields_to_embed": ["title"],
            "embedding_separator": " | ",
            "scale_score": False,
            "score_threshold": -100.0,
            "model_kwargs": {"attn_implementation": "eager"},
            "tokenizer_kwargs": {"model_max_length": 128},
            "config_kwargs": {"classifier_dropout": 0.0},
            "batch_size": 2,
        }
    settings: dict[str, Any] = {
        "model": request.getfixturevalue("tiny_st_embedder_path"),
        "prefix": EN_QUERY_INSTRUCTION if cls is PeerText else "passage: ",
        "suffix": " (en)",
        "batch_size": 2,
        "progress_bar": False,
        "normalize_embeddings": True,
        "local_files_only": True,
        "truncate_dim": 16,
        "model_kwargs": {"attn_implementation": "eager"},
        "tokenizer_kwargs": {"model_max_length": 128},
        "config_kwargs": {"hidden_dropout_prob": 0.0},
        "revision": None,
    }
    if cls is PeerDocument:
        settings.update(meta_fields_to_embed=["title"], embedding_separator=" | ")
    return settings


def peer_inputs(cls: type) -> dict[str, Any]:
    if cls is PeerText:
        return {"text": QUERY}
    if cls is PeerDocument:
        return {"documents": DOCS}
    return {"query": QUERY, "documents": DOCS}


def outputs(result: dict[str, Any]) -> np.ndarray:
    if "embedding" in result:
        return np.array(result["embedding"])
    documents = result["documents"]
    if documents[0].embedding is not None:
        return np.array([doc.embedding for doc in documents])
    return np.array([[int(doc.id in {d.id for d in DOCS[:1]}), doc.score] for doc in documents])


@pytest.mark.parametrize(("peer", "ours", "args"), PAIRS, ids=IDS)
def test_to_dict_is_a_superset_of_the_peers_and_loads_its_saved_settings(peer, ours, args, request):
    default_saved = peer().to_dict()["init_parameters"]
    assert set(default_saved) <= set(ours().to_dict()["init_parameters"])
    saved = peer(**peer_settings(peer, request)).to_dict()
    loaded = ours.from_dict({**saved, "type": qualified(ours)})
    again = loaded.to_dict()["init_parameters"]
    assert {name: again[name] for name in saved["init_parameters"]} == saved["init_parameters"]
    assert ours.from_dict(loaded.to_dict()).to_dict() == loaded.to_dict()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("peer", "ours", "args"), PAIRS, ids=IDS)
def test_same_settings_give_the_peers_results(peer, ours, args, request):
    # On a checkpoint with a sentence-transformers config (as the hub's BGE models have), with a
    # BGE user's peer settings: the query instruction as the text embedder's prefix.
    settings = peer_settings(peer, request)
    peer_component = peer(**settings)
    saved = peer_component.to_dict()
    component = ours.from_dict({**saved, "type": qualified(ours)})
    expected = outputs(peer_component.run(**peer_inputs(peer)))
    got = outputs(component.run(**peer_inputs(peer)))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_quantized_vectors_match_the_peers(tiny_st_embedder_path):
    ranges = [[-0.5] * 32, [0.5] * 32]
    for precision in ("binary", "ubinary", "int8", "uint8"):
        settings = {"model": tiny_st_embedder_path, "prefix": EN_QUERY_INSTRUCTION, "precision": precision}
        settings["quantization_ranges"] = ranges if precision in ("int8", "uint8") else None
        expected = PeerText(**settings, progress_bar=False).run(QUERY)["embedding"]
        assert BGETextEmbedder(**settings, device="cpu").run(QUERY)["embedding"] == expected


def peer_pipelines(embedder_path: str, reranker_path: str, store: InMemoryDocumentStore) -> tuple[Pipeline, Pipeline]:
    """What a BGE user of the peer components writes (the instruction as the query prefix)."""
    indexing = Pipeline()
    indexing.add_component(
        "embedder",
        PeerDocument(
            model=embedder_path, meta_fields_to_embed=["title"], normalize_embeddings=True, progress_bar=False
        ),
    )
    indexing.add_component("writer", DocumentWriter(document_store=store))
    indexing.connect("embedder.documents", "writer.documents")
    query = Pipeline()
    query.add_component(
        "embedder", PeerText(model=embedder_path, prefix=EN_QUERY_INSTRUCTION, normalize_embeddings=True)
    )
    query.add_component("retriever", InMemoryEmbeddingRetriever(document_store=store, top_k=4))
    query.add_component("ranker", PeerRanker(model=reranker_path, top_k=3, meta_fields_to_embed=["title"]))
    query.connect("embedder.embedding", "retriever.query_embedding")
    query.connect("retriever.documents", "ranker.documents")
    return indexing, query


def ranked(result: dict[str, Any]) -> list[tuple[str, float]]:
    return [(doc.id, doc.score) for doc in result["ranker"]["documents"]]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_peer_pipeline_yaml_with_only_the_types_changed_loads_and_runs(tiny_st_embedder_path, tiny_reranker_path):
    store = InMemoryDocumentStore(index=f"bge-parity-{uuid.uuid4()}")
    indexing, query = peer_pipelines(tiny_st_embedder_path, tiny_reranker_path, store)
    indexing.run({"embedder": {"documents": DOCS}})
    inputs = {"embedder": {"text": QUERY}, "ranker": {"query": QUERY}}
    expected = ranked(query.run(inputs))
    indexing_yaml, query_yaml = swapped(indexing.dumps()), swapped(query.dumps())
    assert "SentenceTransformers" not in indexing_yaml + query_yaml
    store.delete_documents([doc.id for doc in DOCS])  # the loaded pipelines share this store (by index)

    our_indexing = Pipeline.loads(indexing_yaml, allowed_modules=["bge_integrations.*"])
    our_query = Pipeline.loads(query_yaml, allowed_modules=["bge_integrations.*"])
    assert isinstance(our_query.get_component("embedder"), BGETextEmbedder)
    assert isinstance(our_query.get_component("ranker"), BGERanker)
    assert isinstance(our_indexing.get_component("embedder"), BGEDocumentEmbedder)
    assert our_indexing.run({"embedder": {"documents": DOCS}}) == {"writer": {"documents_written": 5}}
    got = ranked(our_query.run(inputs))
    assert [doc_id for doc_id, _ in got] == [doc_id for doc_id, _ in expected]
    assert [score for _, score in got] == pytest.approx([score for _, score in expected], abs=1e-5)


@pytest.fixture
def no_allowlist_env(monkeypatch):
    """Haystack's default allowlist only, whatever other tests in this process allowlisted."""
    monkeypatch.delenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", raising=False)
    monkeypatch.setattr(serialization_security, "_extra_allowed_modules", [])
    monkeypatch.setattr(serialization_security, "_unsafe_env_snapshot", False)


ALLOWLIST_PROBE = textwrap.dedent(
    """
    import json, sys
    from haystack import DeserializationError, Pipeline

    peer_yaml, ours_yaml = (open(path).read() for path in sys.argv[1:3])
    report = {}
    Pipeline.loads(peer_yaml)  # no setup at all
    report["peer"] = "loaded"
    try:
        Pipeline.loads(ours_yaml)
    except DeserializationError as exc:
        report["ours"] = str(exc)
    else:
        report["ours"] = "loaded"
    pipeline = Pipeline.loads(ours_yaml, allowed_modules=["bge_integrations.*"])
    report["ours_with_allowed_modules"] = sorted(type(c).__name__ for _, c in pipeline.walk())
    print(json.dumps(report))
    """
)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_allowlist_in_a_fresh_process_peer_loads_ours_needs_one_step(
    tiny_st_embedder_path, tiny_reranker_path, tmp_path
):
    # What a user switching over hits: Haystack's default allowlist admits haystack_integrations.*
    # (the peers' package), not bge_integrations.*, so our YAML needs allowed_modules (or the
    # process-wide equivalents); nothing is imported or set up first.
    _, query = peer_pipelines(tiny_st_embedder_path, tiny_reranker_path, InMemoryDocumentStore(shared=False))
    (tmp_path / "peer.yaml").write_text(query.dumps())
    (tmp_path / "ours.yaml").write_text(swapped(query.dumps()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAYSTACK_")}
    env.update(HF_HUB_OFFLINE="1", HAYSTACK_TELEMETRY_ENABLED="False")
    completed = subprocess.run(
        [sys.executable, "-c", ALLOWLIST_PROBE, str(tmp_path / "peer.yaml"), str(tmp_path / "ours.yaml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["peer"] == "loaded"
    assert report["ours"].startswith("Refusing to deserialize a class from module 'bge_integrations.haystack.")
    assert "allowed_modules" in report["ours"]
    assert report["ours_with_allowed_modules"] == ["BGERanker", "BGETextEmbedder", "InMemoryEmbeddingRetriever"]


def test_allowlist_environment_variable_is_the_deployment_alternative(
    tiny_st_embedder_path, tiny_reranker_path, no_allowlist_env, monkeypatch
):
    _, query = peer_pipelines(tiny_st_embedder_path, tiny_reranker_path, InMemoryDocumentStore(shared=False))
    text = swapped(query.dumps())
    with pytest.raises(DeserializationError, match=r"module 'bge_integrations\.haystack\.embedders'"):
        Pipeline.loads(text)
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", "bge_integrations.haystack")
    assert isinstance(Pipeline.loads(text).get_component("ranker"), BGERanker)


# -- prefix / suffix -------------------------------------------------------------------------


class TestTextEmbedderPrefix:
    def test_empty_prefix_means_not_set_the_official_instruction_applies(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", prefix="")
        assert embedder.embedder.query_instruction is None
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedder.run(QUERY)["embedding"] == core.embed_documents([EN_QUERY_INSTRUCTION + QUERY])[0]

    def test_prefix_equal_to_the_official_instruction_is_applied_once(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", prefix=EN_QUERY_INSTRUCTION)
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        embedding = embedder.run(QUERY)["embedding"]
        assert embedding == core.embed_documents([EN_QUERY_INSTRUCTION + QUERY])[0]
        assert embedding != core.embed_documents([EN_QUERY_INSTRUCTION + EN_QUERY_INSTRUCTION + QUERY])[0]
        assert embedding == BGETextEmbedder(model=tiny_embedder_path, device="cpu").run(QUERY)["embedding"]

    def test_other_prefix_replaces_the_instruction(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", prefix="query: ")
        assert embedder.embedder.query_instruction == "query: "
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedder.run(QUERY)["embedding"] == core.embed_documents(["query: " + QUERY])[0]

    def test_prefix_and_query_instruction(self, tiny_embedder_path):
        same = BGETextEmbedder(model=tiny_embedder_path, device="cpu", prefix="Q: ", query_instruction="Q: ")
        assert same.embedder.query_instruction == "Q: "
        none = BGETextEmbedder(model=tiny_embedder_path, device="cpu", query_instruction="", prefix="")
        assert none.embedder.query_instruction == ""
        with pytest.raises(ValueError, match=r"prefix='Q: ' and query_instruction='' both set the query instruction"):
            BGETextEmbedder(prefix="Q: ", query_instruction="")
        with pytest.raises(ValueError, match=r"prefix='Q: ' and query_instruction='A: ' both set"):
            BGETextEmbedder(prefix="Q: ", query_instruction="A: ")

    def test_suffix_is_appended_to_the_query(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", suffix=" (in English)")
        core = BGEEmbedder(tiny_embedder_path, device="cpu")
        expected = core.embed_documents([EN_QUERY_INSTRUCTION + QUERY + " (in English)"])[0]
        assert embedder.run(QUERY)["embedding"] == expected

    async def test_run_async_applies_prefix_and_suffix(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", prefix="Q: ", suffix="!")
        assert (await embedder.run_async(QUERY))["embedding"] == embedder.run(QUERY)["embedding"]
        assert (
            embedder.run(QUERY)["embedding"]
            == BGEEmbedder(tiny_embedder_path, device="cpu").embed_documents(["Q: " + QUERY + "!"])[0]
        )


def test_document_embedder_prefix_and_suffix_wrap_the_whole_text(tiny_embedder_path):
    embedder = BGEDocumentEmbedder(
        model=tiny_embedder_path, device="cpu", prefix="passage: ", suffix=" END", meta_fields_to_embed=["title"]
    )
    assert embedder.embedder.document_instruction == "passage: "
    core = BGEEmbedder(tiny_embedder_path, device="cpu")
    texts = [f"passage: {doc.meta['title']}\n{doc.content} END" if doc.meta.get("title") else "" for doc in DOCS]
    texts = [text or f"passage: {doc.content} END" for text, doc in zip(texts, DOCS, strict=True)]
    vectors = [doc.embedding for doc in embedder.run(DOCS)["documents"]]
    assert vectors == core.embed_documents(texts)


def test_ranker_prefixes_and_suffixes(tiny_reranker_path):
    ranker = BGERanker(
        model=tiny_reranker_path,
        device="cpu",
        query_prefix="query: ",
        query_suffix="?",
        document_prefix="passage: ",
        document_suffix=".",
    )
    scores = BGEReranker(tiny_reranker_path, device="cpu").score(
        "query: " + QUERY + "?", [f"passage: {d.content}." for d in DOCS]
    )
    got = {doc.id: doc.score for doc in ranker.run(query=QUERY, documents=DOCS)["documents"]}
    assert got == {doc.id: score for doc, score in zip(DOCS, scores, strict=True)}
    plain = {
        doc.id: doc.score
        for doc in BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS)["documents"]
    }
    assert got != plain


# -- the other settings ---------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BGETextEmbedder, BGEDocumentEmbedder])
def test_normalize_embeddings_true_forces_it_false_lets_the_checkpoint_decide(cls, tiny_embedder_path):
    assert cls(normalize_embeddings=True).embedder.normalize is True
    assert cls(normalize_embeddings=False).embedder.normalize is None
    component = cls(model=tiny_embedder_path, device="cpu", normalize_embeddings=False)
    vector = outputs(component.run(**({"text": QUERY} if cls is BGETextEmbedder else {"documents": DOCS[:1]})))
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)  # BGE normalises: as with the peer


@pytest.mark.parametrize("cls", [BGETextEmbedder, BGEDocumentEmbedder])
def test_embedder_settings_reach_the_core(cls):
    component = cls(
        local_files_only=True,
        truncate_dim=8,
        model_kwargs={"attn_implementation": "eager"},
        tokenizer_kwargs={"model_max_length": 64},
        config_kwargs={"hidden_dropout_prob": 0.0},
        precision="binary",
    )
    core = component.embedder
    assert (core.local_files_only, core.truncate_dim, core.precision) == (True, 8, "binary")
    assert core.model_kwargs == {"attn_implementation": "eager"}
    assert core.tokenizer_kwargs == {"model_max_length": 64}
    assert core.config_kwargs == {"hidden_dropout_prob": 0.0}


def test_ranker_settings_reach_the_core():
    ranker = BGERanker(
        model_kwargs={"attn_implementation": "eager"},
        tokenizer_kwargs={"model_max_length": 64},
        config_kwargs={"classifier_dropout": 0.0},
        backend="torch",
    )
    core = ranker.reranker
    assert (core.model_kwargs, core.tokenizer_kwargs) == ({"attn_implementation": "eager"}, {"model_max_length": 64})
    assert (core.config_kwargs, core.backend) == ({"classifier_dropout": 0.0}, "torch")


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_ranker_backend_other_than_torch_is_refused_at_construction(backend):
    with pytest.raises(ValueError, match=f"backend must be 'torch' for a reranker, got '{backend}'"):
        BGERanker(backend=backend)


def test_truncate_dim_precision_and_local_files_only_run(tiny_embedder_path):
    embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", truncate_dim=8, local_files_only=True)
    vector = embedder.run(QUERY)["embedding"]
    assert len(vector) == 8
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    binary = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", precision="ubinary").run(DOCS)["documents"]
    assert all(isinstance(x, int) and 0 <= x <= 255 for doc in binary for x in doc.embedding)
    assert len(binary[0].embedding) == 32 // 8


def test_text_embedder_int8_needs_quantization_ranges_as_the_peers(tiny_embedder_path):
    with pytest.raises(ValueError, match=r"precision='int8' needs quantization_ranges .*, got None"):
        BGETextEmbedder(precision="int8")
    with pytest.raises(ValueError, match=r"precision='uint8' needs quantization_ranges"):
        BGETextEmbedder(encode_kwargs={"precision": "uint8"})
    ranges = np.array([[-0.5] * 32, [0.5] * 32], dtype=np.float32)
    embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", precision="int8", quantization_ranges=ranges)
    assert all(isinstance(x, int) and -128 <= x <= 127 for x in embedder.run(QUERY)["embedding"])
    saved = embedder.to_dict()["init_parameters"]["quantization_ranges"]
    assert saved == ranges.tolist()
    assert isinstance(saved[0][0], float)
    # The document embedder, as the peer's, calibrates on each call's vectors when none are given.
    docs = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu", precision="int8").run(DOCS)["documents"]
    assert all(isinstance(x, int) for x in docs[0].embedding)


class TestEncodeKwargs:
    def test_each_key_overrides_its_setting(self):
        embedder = BGEDocumentEmbedder(
            batch_size=32,
            encode_kwargs={
                "batch_size": 4,
                "show_progress_bar": False,
                "normalize_embeddings": True,
                "precision": "binary",
                "truncate_dim": 8,
                "prompt": "passage: ",
            },
        )
        core = embedder.embedder
        assert (core.batch_size, core.show_progress_bar, core.normalize) == (4, False, True)
        assert (core.precision, core.truncate_dim, core.document_instruction) == ("binary", 8, "passage: ")
        assert embedder.batch_size == 32  # the setting itself is kept, and saved, as given

    def test_prompt_is_the_prefix(self, tiny_embedder_path):
        embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu", encode_kwargs={"prompt": "Q: "})
        assert embedder.embedder.query_instruction == "Q: "
        assert BGETextEmbedder(prefix="Q: ", encode_kwargs={"prompt": "Q: "}).embedder.query_instruction == "Q: "
        with pytest.raises(ValueError, match=r"prefix='A: ' and encode_kwargs\['prompt'\]='Q: ' both set"):
            BGETextEmbedder(prefix="A: ", encode_kwargs={"prompt": "Q: "})

    @pytest.mark.parametrize("cls", [BGETextEmbedder, BGEDocumentEmbedder])
    def test_unknown_keys_are_refused_naming_them(self, cls):
        with pytest.raises(
            ValueError, match=r"encode_kwargs has keys that BGE embedders do not take: \['device', 'prompt_name'\]"
        ):
            cls(encode_kwargs={"prompt_name": "query", "device": "cpu", "batch_size": 2})
        with pytest.raises(TypeError, match="encode_kwargs must be a dict or None, got list"):
            cls(encode_kwargs=["batch_size"])  # type: ignore[arg-type]


# -- numpy scalars (reliability defect D6) --------------------------------------------------


def test_ranker_takes_numpy_scalars_in_init_and_run(tiny_reranker_path):
    ranker = BGERanker(
        model=tiny_reranker_path,
        device="cpu",
        top_k=np.int64(3),
        score_threshold=np.float32(-100.0),
        batch_size=np.int64(2),
        max_length=np.int32(64),
        window_overlap=np.int64(8),
        max_windows=np.int64(4),
        max_query_length=np.int64(16),
    )
    assert (type(ranker.top_k), type(ranker.score_threshold), type(ranker.batch_size)) == (int, float, int)
    expected = BGERanker(
        model=tiny_reranker_path,
        device="cpu",
        top_k=3,
        batch_size=2,
        max_length=64,
        window_overlap=8,
        max_windows=4,
        max_query_length=16,
    )
    assert ranker.run(query=QUERY, documents=DOCS) == expected.run(query=QUERY, documents=DOCS)
    result = ranker.run(query=QUERY, documents=DOCS, top_k=np.int64(2), score_threshold=np.float64(-100.0))
    assert result == expected.run(query=QUERY, documents=DOCS, top_k=2)
    raw = ranker.run(query=QUERY, documents=DOCS, scale_score=np.bool_(False))
    assert raw == expected.run(query=QUERY, documents=DOCS, scale_score=False)
    ranker.top_k = np.int64(1)  # set later: used and saved as an int
    assert len(ranker.run(query=QUERY, documents=DOCS)["documents"]) == 1
    saved = ranker.to_dict()["init_parameters"]
    assert (saved["top_k"], type(saved["top_k"]), type(saved["score_threshold"])) == (1, int, float)
    pipeline = Pipeline()
    pipeline.add_component("ranker", ranker)
    assert "top_k: 1\n" in pipeline.dumps()


@pytest.mark.parametrize("cls", [BGETextEmbedder, BGEDocumentEmbedder])
def test_embedders_take_numpy_scalars(cls, tiny_embedder_path):
    component = cls(
        model=tiny_embedder_path,
        device="cpu",
        batch_size=np.int64(2),
        max_length=np.int32(64),
        truncate_dim=np.int64(8),
        max_batch_tokens=np.int64(4096),
        encode_kwargs={"batch_size": np.int64(2)},
    )
    assert (component.embedder.batch_size, component.embedder.truncate_dim) == (2, 8)
    assert type(component.embedder.batch_size) is int
    result = outputs(component.run(**({"text": QUERY} if cls is BGETextEmbedder else {"documents": DOCS})))
    assert result.shape[-1] == 8
    component.truncate_dim = np.int64(4)
    saved = component.to_dict()["init_parameters"]
    assert (saved["truncate_dim"], type(saved["truncate_dim"])) == (4, int)
    assert saved["encode_kwargs"] == {"batch_size": 2}
    assert type(saved["encode_kwargs"]["batch_size"]) is int
    pipeline = Pipeline()
    pipeline.add_component("component", component)
    Pipeline.loads(pipeline.dumps(), allowed_modules=["bge_integrations.*"])


# -- saving: every new setting round-trips; model_kwargs as the peers save it ---------------

NEW_SETTINGS: list[tuple[type, dict[str, Any]]] = [
    (
        BGETextEmbedder,
        {
            "prefix": "query: ",
            "suffix": "?",
            "normalize_embeddings": True,
            "local_files_only": True,
            "truncate_dim": 16,
            "model_kwargs": {"attn_implementation": "eager", "torch_dtype": torch.float32},
            "tokenizer_kwargs": {"model_max_length": 64},
            "config_kwargs": {"hidden_dropout_prob": 0.0},
            "precision": "uint8",
            "encode_kwargs": {"show_progress_bar": False},
            "quantization_ranges": [[-1.0, -1.0], [1.0, 1.0]],
        },
    ),
    (
        BGEDocumentEmbedder,
        {
            "prefix": "passage: ",
            "suffix": ".",
            "normalize_embeddings": True,
            "local_files_only": True,
            "truncate_dim": 16,
            "model_kwargs": {"attn_implementation": "eager"},
            "tokenizer_kwargs": {"model_max_length": 64},
            "config_kwargs": {"hidden_dropout_prob": 0.0},
            "precision": "binary",
            "encode_kwargs": {"batch_size": 4},
            "quantization_ranges": None,
        },
    ),
    (
        BGERanker,
        {
            "query_prefix": "query: ",
            "query_suffix": "?",
            "document_prefix": "passage: ",
            "document_suffix": ".",
            "model_kwargs": {"attn_implementation": "eager", "torch_dtype": torch.float32},
            "tokenizer_kwargs": {"model_max_length": 64},
            "config_kwargs": {"classifier_dropout": 0.0},
            "backend": "torch",
        },
    ),
]


@pytest.mark.parametrize(("cls", "settings"), NEW_SETTINGS, ids=IDS)
def test_round_trip_keeps_every_new_setting(cls, settings):
    component = cls(**settings)
    data = component.to_dict()
    saved = data["init_parameters"]
    if "torch_dtype" in settings["model_kwargs"]:
        assert saved["model_kwargs"]["torch_dtype"] == "torch.float32"  # as the peers save it
        assert component.model_kwargs["torch_dtype"] is torch.float32  # the component is unchanged
    reloaded = cls.from_dict(data)
    assert {name: getattr(reloaded, name) for name in settings} == settings
    assert reloaded.to_dict() == data
    pipeline = Pipeline()
    pipeline.add_component("component", component)
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["bge_integrations.*"]).get_component("component")
    assert {name: getattr(loaded, name) for name in settings} == settings


# -- settings assigned after __init__ are checked at the next run, under their own names --------

LATE_BAD: list[tuple[type, str, Any, type[Exception], str]] = [
    (BGETextEmbedder, "prefix", 3, TypeError, "prefix must be a string, got int: 3"),
    (BGETextEmbedder, "suffix", None, TypeError, "suffix must be a string, got NoneType"),
    (BGETextEmbedder, "prefix", "A: ", ValueError, r"prefix='A: ' and query_instruction='Q: ' both set"),
    (BGETextEmbedder, "normalize_embeddings", "yes", TypeError, "normalize_embeddings must be True or False"),
    (BGETextEmbedder, "local_files_only", "no", TypeError, "local_files_only must be True or False, got str"),
    (BGETextEmbedder, "precision", "int8", ValueError, r"precision='int8' needs quantization_ranges"),
    (
        BGETextEmbedder,
        "encode_kwargs",
        {"convert_to_tensor": True},
        ValueError,
        r"do not take: \['convert_to_tensor'\]",
    ),
    (BGEDocumentEmbedder, "prefix", b"P", TypeError, "prefix must be a string, got bytes"),
    (BGEDocumentEmbedder, "suffix", 1, TypeError, "suffix must be a string, got int"),
    (BGEDocumentEmbedder, "truncate_dim", 0, ValueError, "truncate_dim must be an int > 0, got 0"),
    (BGEDocumentEmbedder, "precision", "int4", ValueError, "precision must be one of"),
    (BGEDocumentEmbedder, "model_kwargs", {"device": "cpu"}, ValueError, r"model_kwargs\['device'\] is a setting"),
    (BGEDocumentEmbedder, "encode_kwargs", {"batch_size": 0}, ValueError, "batch_size must be an int > 0, got 0"),
    (BGERanker, "query_prefix", 1, TypeError, "query_prefix must be a string, got int"),
    (BGERanker, "document_suffix", None, TypeError, "document_suffix must be a string, got NoneType"),
    (BGERanker, "backend", "onnx", ValueError, "backend must be 'torch' for a reranker, got 'onnx'"),
    (BGERanker, "tokenizer_kwargs", "fast", TypeError, "tokenizer_kwargs must be a mapping"),
]


@pytest.mark.parametrize(("cls", "attribute", "value", "error", "match"), LATE_BAD)
def test_bad_new_setting_assigned_after_init_fails_at_the_next_run(cls, attribute, value, error, match, request):
    path = request.getfixturevalue("tiny_reranker_path" if cls is BGERanker else "tiny_embedder_path")
    extra = {"query_instruction": "Q: "} if cls is BGETextEmbedder else {}
    component = cls(model=path, device="cpu", **extra)
    setattr(component, attribute, value)
    with pytest.raises(error, match=match):
        component.run(
            **(
                {"text": QUERY}
                if cls is BGETextEmbedder
                else peer_inputs(PeerDocument if cls is BGEDocumentEmbedder else PeerRanker)
            )
        )
    with pytest.raises(error, match=match):
        cls(model=path, device="cpu", **extra, **{attribute: value})  # the same check as at __init__


LATE_GOOD: list[tuple[type, str, Any]] = [
    (BGETextEmbedder, "prefix", "query: "),
    (BGETextEmbedder, "suffix", "?"),
    (BGETextEmbedder, "truncate_dim", 8),
    (BGETextEmbedder, "encode_kwargs", {"truncate_dim": 4}),
    (BGEDocumentEmbedder, "prefix", "passage: "),
    (BGEDocumentEmbedder, "suffix", "."),
    (BGEDocumentEmbedder, "precision", "binary"),
    (BGERanker, "query_prefix", "query: "),
    (BGERanker, "document_suffix", " END"),
]


@pytest.mark.parametrize(("cls", "attribute", "value"), LATE_GOOD)
def test_new_setting_assigned_after_init_is_used_as_if_given_at_init(cls, attribute, value, request):
    path = request.getfixturevalue("tiny_reranker_path" if cls is BGERanker else "tiny_embedder_path")
    inputs = (
        {"text": QUERY}
        if cls is BGETextEmbedder
        else peer_inputs(PeerDocument if cls is BGEDocumentEmbedder else PeerRanker)
    )
    component = cls(model=path, device="cpu")
    before = component.run(**inputs)
    setattr(component, attribute, value)
    after = component.run(**inputs)
    assert after == cls(model=path, device="cpu", **{attribute: value}).run(**inputs)
    assert after != before
    assert component.to_dict()["init_parameters"][attribute] == value


def test_model_may_be_a_path(tiny_reranker_path):
    ranker = BGERanker(model=Path(tiny_reranker_path), device="cpu")  # as the peer ranker takes it
    assert ranker.model == tiny_reranker_path
    assert ranker.to_dict()["init_parameters"]["model"] == tiny_reranker_path


LONG_QUERY = "Where do giant pandas live? " + "The quick brown fox jumps over the lazy dog. " * 4


@pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")
def test_tokenizer_model_max_length_sets_the_tokens_read_as_with_the_peer(tiny_st_embedder_path, tiny_embedder_path):
    settings = {"prefix": EN_QUERY_INSTRUCTION, "tokenizer_kwargs": {"model_max_length": 8}}
    expected = PeerText(model=tiny_st_embedder_path, progress_bar=False, **settings).run(LONG_QUERY)["embedding"]
    got = BGETextEmbedder(model=tiny_st_embedder_path, device="cpu", **settings).run(LONG_QUERY)["embedding"]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # A plain transformers checkpoint too (where the peer pools differently): as max_length=8.
    by_tokenizer = BGETextEmbedder(model=tiny_embedder_path, device="cpu", tokenizer_kwargs={"model_max_length": 8})
    assert by_tokenizer.embedder.max_length == 8
    by_setting = BGETextEmbedder(model=tiny_embedder_path, device="cpu", max_length=8)
    assert by_tokenizer.run(LONG_QUERY) == by_setting.run(LONG_QUERY)
    assert BGERanker(tokenizer_kwargs={"model_max_length": 64}).reranker.max_length == 64
    assert BGERanker(max_length=64, tokenizer_kwargs={"model_max_length": 64}).reranker.max_length == 64
    with pytest.raises(ValueError, match=r"max_length=32 and tokenizer_kwargs\['model_max_length'\]=64 both set"):
        BGEDocumentEmbedder(max_length=32, tokenizer_kwargs={"model_max_length": 64})


def switching_snippets() -> list[str]:
    text = (ROOT / "docs" / "haystack.md").read_text(encoding="utf-8")
    section = text.split("## Switching from the SentenceTransformers components\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


def test_switching_section_has_two_snippets():
    assert len(switching_snippets()) == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("index", [0, 1])
def test_switching_snippet_runs(index, tiny_embedder_path, tiny_reranker_path, capsys):
    code = switching_snippets()[index]
    code = re.sub(r"BAAI/bge-reranker[\w.-]*", tiny_reranker_path, code)
    code = re.sub(r"BAAI/bge-[\w.-]+", tiny_embedder_path, code)
    exec(compile(code, f"haystack.md switching snippet {index}", "exec"), {"__name__": "docs"})
    printed = capsys.readouterr().out.strip()
    assert printed == "32" if index == 0 else printed.startswith("[")
