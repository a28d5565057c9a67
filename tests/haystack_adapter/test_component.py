"""What all three components share (CoreComponent): live settings, to_dict, construction checks, warnings."""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
from haystack import Document, Pipeline
from haystack.utils import ComponentDevice

from bge_integrations import TruncationWarning
from bge_integrations.core.handle import ModelHandle
from bge_integrations.core.loading import REGISTRY
from bge_integrations.haystack import BGEDocumentEmbedder, BGERanker, BGETextEmbedder
from bge_integrations.haystack._component import CoreComponent

COMPONENTS = [BGETextEmbedder, BGEDocumentEmbedder, BGERanker]
QUERY = "Where do giant pandas live?"
LONG = "The quick brown fox jumps over the lazy dog. " * 20 + "The giant panda lives in China. " * 2
DOCS = [
    Document(content=LONG, meta={"title": "Fox"}),
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda"}),
    Document(content="Paris is the capital of France."),
]


def inputs(component: CoreComponent) -> dict[str, Any]:
    if isinstance(component, BGETextEmbedder):
        return {"text": QUERY + " " + LONG}
    if isinstance(component, BGEDocumentEmbedder):
        return {"documents": DOCS}
    return {"query": QUERY, "documents": DOCS}


def core_of(component: CoreComponent) -> ModelHandle:
    if isinstance(component, BGERanker):
        return component.reranker
    assert isinstance(component, (BGETextEmbedder, BGEDocumentEmbedder))
    return component.embedder


def model_path(cls: type[CoreComponent], request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("tiny_reranker_path" if cls is BGERanker else "tiny_embedder_path"))


@pytest.mark.parametrize("cls", COMPONENTS)
def test_to_dict_saves_every_init_parameter_in_signature_order(cls):
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    assert all(param.kind is inspect.Parameter.KEYWORD_ONLY for param in parameters)
    assert list(cls().to_dict()["init_parameters"]) == [param.name for param in parameters]


# (class, attribute, new value, name of the setting in the core)
CHANGES = [
    (BGETextEmbedder, "query_instruction", "", "query_instruction"),
    (BGETextEmbedder, "max_length", 8, "max_length"),
    (BGETextEmbedder, "batch_size", 1, "batch_size"),
    (BGEDocumentEmbedder, "batch_size", 1, "batch_size"),
    (BGEDocumentEmbedder, "max_length", 16, "max_length"),
    (BGEDocumentEmbedder, "progress_bar", False, "show_progress_bar"),
    (BGERanker, "windows", False, "windows"),
    (BGERanker, "max_length", 48, "max_length"),
    (BGERanker, "batch_size", 1, "batch_size"),
    (BGERanker, "scale_score", False, "normalize"),
    (BGERanker, "aggregation", "mean", "aggregation"),
]


@pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")
@pytest.mark.parametrize(("cls", "attribute", "value", "core_name"), CHANGES)
def test_attribute_changed_after_init_reaches_the_core_and_to_dict(cls, attribute, value, core_name, request):
    path = model_path(cls, request)
    component = cls(model=path, device="cpu")
    before = component.run(**inputs(component))
    setattr(component, attribute, value)
    assert getattr(core_of(component), core_name) == value
    assert component.to_dict()["init_parameters"][attribute] == value
    after = component.run(**inputs(component))
    given_at_init = cls(model=path, device="cpu", **{attribute: value})
    assert after == given_at_init.run(**inputs(given_at_init))  # exactly as if passed to __init__
    reloaded = cls.from_dict(component.to_dict())
    assert getattr(reloaded, attribute) == value
    assert reloaded.run(**inputs(reloaded)) == after
    if attribute not in ("batch_size", "progress_bar"):
        assert after != before


def test_text_embedder_instruction_change_is_what_is_saved(tiny_embedder_path):
    embedder = BGETextEmbedder(model=tiny_embedder_path, device="cpu")
    with_instruction = embedder.run(text=QUERY)["embedding"]
    embedder.query_instruction = ""
    plain = BGEDocumentEmbedder(model=tiny_embedder_path, device="cpu").run([Document(content=QUERY)])
    assert embedder.run(text=QUERY)["embedding"] == plain["documents"][0].embedding != with_instruction
    assert embedder.to_dict()["init_parameters"]["query_instruction"] == ""


def test_core_is_reused_until_a_core_setting_changes_and_shares_the_model(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    core = ranker.reranker
    assert ranker.reranker is core
    ranker.top_k = 2  # read by run, not a core setting
    ranker.meta_fields_to_embed = ["title"]
    assert ranker.reranker is core
    ranker.warm_up()
    ranker.windows = False
    ranker.batch_size = 4
    assert ranker.reranker is not core
    assert (ranker.reranker.windows, ranker.reranker.batch_size) == (False, 4)
    with pytest.warns(TruncationWarning):
        assert len(ranker.run(query=QUERY, documents=DOCS)["documents"]) == 2
    assert REGISTRY.load_count == 1  # the rebuilt core found the loaded model in the registry


def test_device_set_as_a_string_after_init_is_used_and_saved_as_a_device_dict():
    embedder = BGETextEmbedder()
    embedder.device = "cpu"  # type: ignore[assignment]
    assert embedder.embedder.device == "cpu"
    assert embedder.to_dict()["init_parameters"]["device"] == {"type": "single", "device": "cpu"}


def test_bad_value_set_after_init_fails_at_use_naming_it(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    ranker.batch_size = 0
    with pytest.raises(ValueError, match="batch_size must be an int > 0, got 0"):
        ranker.run(query=QUERY, documents=DOCS)


@pytest.mark.parametrize("cls", COMPONENTS)
def test_copies_build_their_own_core(cls):
    component = cls(device="cpu")
    clone = copy.deepcopy(component)
    assert core_of(clone) is not core_of(component)
    assert clone.to_dict() == component.to_dict()


@pytest.mark.parametrize("cls", COMPONENTS)
@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"device": "gpu"}, r"device must be a device string such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'"),
        ({"device": "cuda:x"}, r"device must be a device string .* got 'cuda:x'"),
        ({"device": "cpu", "use_fp16": True}, r"use_fp16=True needs a CUDA or MPS device, got device='cpu'"),
        ({"device": ComponentDevice.from_str("cpu"), "use_fp16": True}, r"use_fp16=True needs a CUDA or MPS"),
    ],
)
def test_machine_independent_settings_fail_at_construction(cls, settings, match):
    with pytest.raises(ValueError, match=match):
        cls(**settings)


def test_max_query_length_not_below_max_length_fails_at_construction():
    with pytest.raises(ValueError, match="max_query_length must be < max_length=64, got 64"):
        BGERanker(max_length=64, max_query_length=64)
    ranker = BGERanker(max_query_length=600)  # max_length None: the model's, known at first use
    with pytest.raises(ValueError, match="max_query_length must be < max_length=512, got 600"):
        _ = ranker.reranker.config


@pytest.mark.parametrize("cls", COMPONENTS)
def test_machine_dependent_settings_construct_and_fail_at_first_use(cls):
    on_gpu = cls(device="cuda:0")  # as saved on a GPU machine: loads anywhere
    assert cls.from_dict(on_gpu.to_dict()).to_dict() == on_gpu.to_dict()
    half = cls(use_fp16=True)  # device None: the device (and whether fp16 fits it) is chosen at load
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return
    with pytest.raises(ValueError, match="asks for CUDA, but torch sees no CUDA device"):
        on_gpu.warm_up()
    with pytest.raises(ValueError, match="use_fp16=True needs a CUDA or MPS device, got device='cpu'"):
        half.warm_up()


def truncating(cls: type[CoreComponent], request: pytest.FixtureRequest) -> CoreComponent:
    if cls is BGERanker:
        return cls(model=model_path(cls, request), device="cpu", windows=False, max_length=48)
    return cls(model=model_path(cls, request), device="cpu", max_length=16)


@pytest.mark.parametrize("cls", COMPONENTS)
def test_truncation_warning_points_at_the_caller_of_run(cls, request):
    component = truncating(cls, request)
    with pytest.warns(TruncationWarning) as record:
        component.run(**inputs(component))
    assert record[0].filename == __file__


@pytest.mark.parametrize("cls", COMPONENTS)
def test_truncation_warning_points_at_the_caller_of_pipeline_run(cls, request):
    pipeline = Pipeline()
    pipeline.add_component("component", truncating(cls, request))
    with pytest.warns(TruncationWarning) as record:
        pipeline.run({"component": inputs(pipeline.get_component("component"))})
    assert record[0].filename == __file__


async def test_truncation_warning_points_at_the_caller_of_run_async(request):
    component = truncating(BGERanker, request)
    with pytest.warns(TruncationWarning) as record:
        await component.run_async(**inputs(component))
    assert record[0].filename == __file__
