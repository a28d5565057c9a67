"""The settings tables (``core/configs.py``) against the core engines, the adapters and the docs.

``EMBEDDER_SETTINGS`` and ``RERANKER_SETTINGS`` name each core constructor argument in each
adapter; the adapters build the core's keyword arguments from them. These tests make a new row
(or a new core argument) checked without new test code: every core argument has a row, every
name a row gives an adapter is a field (or ``__init__`` parameter) there, and two values set
under that name each reach the core object, its ``config`` included.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.configs import (
    EMBEDDER_SETTINGS,
    RERANKER_SETTINGS,
    Adapter,
    EmbedderConfig,
    RerankerConfig,
    SettingNames,
    passed_through,
)

pytest.importorskip("langchain_core")
pytest.importorskip("llama_index.core")
pytest.importorskip("haystack")

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS: tuple[Adapter, ...] = ("langchain", "llama_index", "haystack")

# Core arguments that no adapter could ever pass through as they are, so have no row. Empty
# today: `token` has a row (with None for every adapter: each keeps it as a secret type).
CORE_ONLY: dict[type, set[str]] = {BGEEmbedder: set(), BGEReranker: set()}


@dataclass(frozen=True)
class Adapted:
    """One adapter class of a core engine: how to build it, and its core object from it."""

    label: str
    adapter: Adapter
    build: Callable[..., Any]
    core: Callable[[Any], Any]
    declared: Callable[[], set[str]]


def _init_parameters(cls: type) -> set[str]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name for p in parameters if p.name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


def _embedder_adapters() -> list[Adapted]:
    from bge_integrations.haystack import BGEDocumentEmbedder, BGETextEmbedder
    from bge_integrations.langchain import BGEEmbeddings
    from bge_integrations.llama_index import BGEEmbedding

    return [
        Adapted(
            "langchain.BGEEmbeddings",
            "langchain",
            BGEEmbeddings,
            lambda o: o.client,
            lambda: set(BGEEmbeddings.model_fields),
        ),
        Adapted(
            "llama_index.BGEEmbedding",
            "llama_index",
            BGEEmbedding,
            lambda o: o.core,
            lambda: set(BGEEmbedding.model_fields) & _init_parameters(BGEEmbedding),
        ),
        Adapted(
            "haystack.BGETextEmbedder",
            "haystack",
            BGETextEmbedder,
            lambda o: o.embedder,
            lambda: _init_parameters(BGETextEmbedder),
        ),
        Adapted(
            "haystack.BGEDocumentEmbedder",
            "haystack",
            BGEDocumentEmbedder,
            lambda o: o.embedder,
            lambda: _init_parameters(BGEDocumentEmbedder),
        ),
    ]


def _reranker_adapters() -> list[Adapted]:
    from bge_integrations.haystack import BGERanker
    from bge_integrations.langchain import BGECrossEncoder, BGERerank
    from bge_integrations.llama_index import BGERerank as LlamaRerank

    return [
        Adapted("langchain.BGERerank", "langchain", BGERerank, lambda o: o.client, lambda: set(BGERerank.model_fields)),
        Adapted(
            "langchain.BGECrossEncoder",
            "langchain",
            BGECrossEncoder,
            lambda o: o.client,
            lambda: set(BGECrossEncoder.model_fields),
        ),
        Adapted(
            "llama_index.BGERerank", "llama_index", LlamaRerank, lambda o: o.core, lambda: set(LlamaRerank.model_fields)
        ),
        Adapted("haystack.BGERanker", "haystack", BGERanker, lambda o: o.reranker, lambda: _init_parameters(BGERanker)),
    ]


ABSOLUTE = str(Path.cwd().resolve())
"""A folder that exists, absolute so that the core's resolved copy of it is the same string."""

# Two values per core setting, each unlike the core's default, and unlike each other: a setting
# whose value did not reach the core (or reached it from the wrong field) fails with one of them.
# Extra settings that a value needs come after it, under core names. A new row fails
# test_every_row_has_sample_values until its values are added here.
EMBEDDER_VALUES: dict[str, tuple[tuple[Any, dict[str, Any]], ...]] = {
    "model_name": (("BAAI/bge-base-en-v1.5", {}), ("BAAI/bge-large-en-v1.5", {})),
    "query_instruction": (("Q: ", {}), ("", {})),
    "document_instruction": (("D: ", {}), ("passage: ", {})),
    "pooling": (("mean", {}), ("lasttoken", {})),
    "normalize": ((False, {}), (True, {})),
    "max_length": ((128, {}), (256, {})),
    "device": (("cpu", {}), ("cpu:0", {})),
    "use_fp16": ((False, {}), (True, {})),
    "batch_size": ((8, {}), (16, {})),
    "max_batch_tokens": ((1000, {}), (2000, {})),
    "revision": (("v1", {}), ("v2", {})),
    "trust_remote_code": ((True, {}), (False, {})),
    "show_progress_bar": ((True, {}), (False, {})),
    "cache_dir": ((ABSOLUTE, {}), (ABSOLUTE + "/x", {})),
    "backend": (("onnx", {"device": "cpu"}), ("openvino", {"device": "cpu"})),
    "backend_precision": (("int8", {"backend": "onnx"}), ("fp32", {"backend": "onnx"})),
    "backend_dir": ((ABSOLUTE, {"backend": "onnx"}), (ABSOLUTE + "/x", {"backend": "onnx"})),
    "truncate_dim": ((64, {}), (32, {})),
    "precision": (("binary", {}), ("ubinary", {})),
    "quantization_ranges": (
        ([[-1.0, -1.0], [1.0, 1.0]], {"precision": "int8"}),
        ([[0.0], [2.0]], {"precision": "uint8"}),
    ),
    "model_kwargs": (({"attn_implementation": "eager"}, {}), ({"low_cpu_mem_usage": True}, {})),
    "tokenizer_kwargs": (({"use_fast": True}, {}), ({"use_fast": False}, {})),
    "config_kwargs": (({"output_hidden_states": False}, {}), ({"output_attentions": False}, {})),
    "cache_folder": ((ABSOLUTE, {}), (ABSOLUTE + "/x", {})),
    "local_files_only": ((True, {}), (False, {})),
}

RERANKER_VALUES: dict[str, tuple[tuple[Any, dict[str, Any]], ...]] = {
    "model_name": (("BAAI/bge-reranker-large", {}), ("BAAI/bge-reranker-v2-m3", {})),
    "max_length": ((128, {}), (256, {})),
    "max_query_length": ((32, {}), (64, {})),
    "windows": ((False, {}), (True, {})),
    "window_overlap": ((8, {}), (16, {})),
    "max_windows": ((2, {}), (3, {})),
    "aggregation": (("mean", {}), ("max", {})),
    "normalize": ((False, {}), (True, {})),
    "device": (("cpu", {}), ("cpu:0", {})),
    "use_fp16": ((False, {}), (True, {})),
    "batch_size": ((8, {}), (16, {})),
    "revision": (("v1", {}), ("v2", {})),
    "trust_remote_code": ((True, {}), (False, {})),
    "show_progress_bar": ((True, {}), (False, {})),
    "backend": (("torch", {}),),  # the only reranker backend so far
    "model_kwargs": (({"attn_implementation": "eager"}, {}), ({"low_cpu_mem_usage": True}, {})),
    "tokenizer_kwargs": (({"use_fast": True}, {}), ({"use_fast": False}, {})),
    "config_kwargs": (({"output_hidden_states": False}, {}), ({"output_attentions": False}, {})),
    "cache_folder": ((ABSOLUTE, {}), (ABSOLUTE + "/x", {})),
    "local_files_only": ((True, {}), (False, {})),
    "prompt": (("Is passage B about query A?", {}), ("Answer Yes or No.", {})),
    "cutoff_layers": (((28, 40), {}), ((2,), {})),  # the core keeps a tuple
    "compress_ratio": ((2, {}), (4, {})),
    "compress_layers": (((8,), {}), ((0, 4), {})),
}

TABLES = [
    (BGEEmbedder, EMBEDDER_SETTINGS, EMBEDDER_VALUES, EmbedderConfig),
    (BGEReranker, RERANKER_SETTINGS, RERANKER_VALUES, RerankerConfig),
]


@pytest.mark.parametrize(("engine", "table"), [(t[0], t[1]) for t in TABLES], ids=["embedder", "reranker"])
def test_every_core_argument_has_one_row(engine: type, table: tuple[SettingNames, ...]) -> None:
    cores = [row.core for row in table]
    assert len(cores) == len(set(cores)), f"settings with two rows: {sorted({c for c in cores if cores.count(c) > 1})}"
    assert set(cores) == _init_parameters(engine) - CORE_ONLY[engine]
    assert not set(cores) & CORE_ONLY[engine]


@pytest.mark.parametrize(("table", "values"), [(t[1], t[2]) for t in TABLES], ids=["embedder", "reranker"])
def test_every_row_has_sample_values(table: tuple[SettingNames, ...], values: dict[str, Any]) -> None:
    passed = {row.core for row in table if any(row.name(adapter) for adapter in ADAPTERS)}
    assert passed <= set(values), f"add two sample values for {sorted(passed - set(values))}"


@pytest.mark.parametrize("table", [EMBEDDER_SETTINGS, RERANKER_SETTINGS], ids=["embedder", "reranker"])
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_an_adapter_gives_each_name_to_one_setting(table: tuple[SettingNames, ...], adapter: Adapter) -> None:
    names = [name for row in table if (name := row.name(adapter)) is not None]
    assert len(names) == len(set(names))
    assert passed_through(table, adapter) == {row.name(adapter): row.core for row in table if row.name(adapter)}


def test_unknown_adapter_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'crewai'"):
        EMBEDDER_SETTINGS[0].name("crewai")  # type: ignore[arg-type]


def _adapters(kind: str) -> list[Adapted]:
    return _embedder_adapters() if kind == "embedder" else _reranker_adapters()


@pytest.mark.parametrize("kind", ["embedder", "reranker"])
def test_every_adapter_declares_the_names_it_claims(kind: str) -> None:
    table = EMBEDDER_SETTINGS if kind == "embedder" else RERANKER_SETTINGS
    for adapted in _adapters(kind):
        claimed = set(passed_through(table, adapted.adapter))
        missing = claimed - adapted.declared()
        assert not missing, f"{adapted.label} lacks the table's names {sorted(missing)}"


def _cases(kind: str) -> list[Any]:
    table, values = (EMBEDDER_SETTINGS, EMBEDDER_VALUES) if kind == "embedder" else (RERANKER_SETTINGS, RERANKER_VALUES)
    labels = {
        "embedder": {
            "langchain": ["langchain.BGEEmbeddings"],
            "llama_index": ["llama_index.BGEEmbedding"],
            "haystack": ["haystack.BGETextEmbedder", "haystack.BGEDocumentEmbedder"],
        },
        "reranker": {
            "langchain": ["langchain.BGERerank", "langchain.BGECrossEncoder"],
            "llama_index": ["llama_index.BGERerank"],
            "haystack": ["haystack.BGERanker"],
        },
    }[kind]
    return [
        pytest.param(kind, label, row, id=f"{label}-{row.core}")
        for row in table
        for adapter in ADAPTERS
        if row.name(adapter) is not None and row.core in values
        for label in labels[adapter]
    ]


def _adapter_kwargs(table: tuple[SettingNames, ...], adapter: Adapter, core_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Core settings under the adapter's names; ``device`` is passed as a string everywhere."""
    names = {row.core: row.name(adapter) or row.core for row in table}
    return {names[core]: value for core, value in core_kwargs.items()}


def _check_reaches_core(kind: str, label: str, row: SettingNames) -> None:
    engine, table, values, config_type = TABLES[0] if kind == "embedder" else TABLES[1]
    [adapted] = [a for a in _adapters(kind) if a.label == label]
    config_fields = {f.name for f in fields(config_type)}
    for value, extra in values[row.core]:
        obj = adapted.build(**_adapter_kwargs(table, adapted.adapter, {**extra, row.core: value}))
        core = adapted.core(obj)
        assert isinstance(core, engine)
        got = getattr(core, row.core)
        if row.core == "quantization_ranges":
            np.testing.assert_array_equal(np.asarray(got), np.asarray(value))
            continue
        assert got == value, f"{label}.{row.name(adapted.adapter)}={value!r} reached the core as {got!r}"
        if row.core in config_fields and row.core not in ("device", "use_fp16"):  # resolved for the machine
            assert getattr(core.config, row.core) == value


@pytest.mark.parametrize(("kind", "label", "row"), _cases("embedder"))
def test_each_embedder_setting_reaches_the_core(kind: str, label: str, row: SettingNames) -> None:
    _check_reaches_core(kind, label, row)


@pytest.mark.parametrize(("kind", "label", "row"), _cases("reranker"))
def test_each_reranker_setting_reaches_the_core(kind: str, label: str, row: SettingNames) -> None:
    _check_reaches_core(kind, label, row)


# --- the docs' tables agree with the settings tables -----------------------------------------

_COLUMNS: dict[Adapter, int] = {"langchain": 2, "llama_index": 3, "haystack": 4}


@pytest.mark.parametrize(
    ("heading", "table"), [("Embedder settings", EMBEDDER_SETTINGS), ("Reranker settings", RERANKER_SETTINGS)]
)
def test_configuration_page_shows_each_adapter_name(heading: str, table: tuple[SettingNames, ...]) -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {
        cells[0].strip("` "): cells
        for line in section.splitlines()
        if line.startswith("| `") and len(cells := [c.strip() for c in line.strip("|").split("|")]) > 4
    }
    for row in table:
        for adapter, column in _COLUMNS.items():
            name = row.name(adapter)
            if name is not None:
                cell = rows[row.core][column]
                assert re.match(rf"`{name}`", cell), (
                    f"docs/configuration.md: {row.core} in {adapter} is `{name}`, got {cell!r}"
                )


# --- numpy scalars (D6) -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["embedder", "reranker"])
def test_numpy_numbers_are_taken_for_number_settings(kind: str) -> None:
    table, values = (EMBEDDER_SETTINGS, EMBEDDER_VALUES) if kind == "embedder" else (RERANKER_SETTINGS, RERANKER_VALUES)
    numbers = [
        row
        for row in table
        if isinstance(values.get(row.core, ((None, {}),))[0][0], int) and not isinstance(values[row.core][0][0], bool)
    ]
    assert numbers
    for adapted in _adapters(kind):
        for row in numbers:
            name = row.name(adapted.adapter)
            if name is None:
                continue
            value, extra = values[row.core][0]
            kwargs = _adapter_kwargs(table, adapted.adapter, {**extra, row.core: np.int64(value)})
            got = getattr(adapted.core(adapted.build(**kwargs)), row.core)
            assert got == value, f"{adapted.label}.{name}=np.int64({value}) gave {got!r}"
            assert type(got) is int, f"{adapted.label}.{name}=np.int64({value}) reached the core as {type(got)}"


def test_numpy_top_n_and_threshold_rerank_in_langchain_and_llama_index(tiny_reranker_path: str) -> None:
    from langchain_core.documents import Document
    from llama_index.core.schema import NodeWithScore, TextNode

    from bge_integrations.langchain import BGERerank
    from bge_integrations.llama_index import BGERerank as LlamaRerank

    passages = ["Pandas eat bamboo.", "Paris is in France.", "Giant pandas live in China."]
    settings = {"top_n": np.int64(2), "score_threshold": np.float32(-1e6), "device": "cpu", "batch_size": np.int32(2)}
    langchain = BGERerank(model_name=tiny_reranker_path, **settings)
    llama_index = LlamaRerank(model=tiny_reranker_path, **settings)
    assert (type(langchain.top_n), type(llama_index.top_n)) == (int, int)
    assert (type(langchain.score_threshold), type(llama_index.score_threshold)) == (float, float)
    kept = langchain.compress_documents([Document(page_content=p) for p in passages], "what do pandas eat?")
    nodes = llama_index.postprocess_nodes(
        [NodeWithScore(node=TextNode(text=p), score=0.0) for p in passages], query_str="what do pandas eat?"
    )
    assert len(kept) == len(nodes) == 2
    assert [doc.metadata["relevance_score"] for doc in kept] == pytest.approx([node.score for node in nodes])
