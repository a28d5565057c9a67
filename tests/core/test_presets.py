from __future__ import annotations

import pytest

from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION, ZH_QUERY_INSTRUCTION
from bge_integrations.core.presets import PRESETS, find_preset


def test_official_instruction_strings() -> None:
    assert EN_QUERY_INSTRUCTION == "Represent this sentence for searching relevant passages: "
    assert ZH_QUERY_INSTRUCTION == "为这个句子生成表示以用于检索相关文章："


@pytest.mark.parametrize(
    ("name", "instruction", "max_length", "dimension"),
    [
        ("BAAI/bge-small-en-v1.5", EN_QUERY_INSTRUCTION, 512, 384),
        ("BAAI/bge-base-en-v1.5", EN_QUERY_INSTRUCTION, 512, 768),
        ("BAAI/bge-large-en-v1.5", EN_QUERY_INSTRUCTION, 512, 1024),
        ("BAAI/bge-small-zh-v1.5", ZH_QUERY_INSTRUCTION, 512, 512),
        ("BAAI/bge-base-zh-v1.5", ZH_QUERY_INSTRUCTION, 512, 768),
        ("BAAI/bge-large-zh-v1.5", ZH_QUERY_INSTRUCTION, 512, 1024),
        ("BAAI/bge-small-en", EN_QUERY_INSTRUCTION, 512, 384),
        ("BAAI/bge-base-en", EN_QUERY_INSTRUCTION, 512, 768),
        ("BAAI/bge-large-en", EN_QUERY_INSTRUCTION, 512, 1024),
        ("BAAI/bge-small-zh", ZH_QUERY_INSTRUCTION, 512, 512),
        ("BAAI/bge-base-zh", ZH_QUERY_INSTRUCTION, 512, 768),
        ("BAAI/bge-large-zh", ZH_QUERY_INSTRUCTION, 512, 1024),
        ("BAAI/bge-large-zh-noinstruct", "", 512, 1024),
        ("BAAI/bge-m3", "", 8192, 1024),
    ],
)
def test_embedder_presets(name: str, instruction: str, max_length: int, dimension: int) -> None:
    preset = find_preset(name)
    assert preset is not None
    assert (preset.name, preset.kind, preset.query_instruction) == (name, "embedder", instruction)
    assert (preset.pooling, preset.normalize, preset.max_length, preset.dimension) == (
        "cls",
        True,
        max_length,
        dimension,
    )


@pytest.mark.parametrize("name", ["BAAI/bge-reranker-base", "BAAI/bge-reranker-large", "BAAI/bge-reranker-v2-m3"])
def test_reranker_presets(name: str) -> None:
    preset = find_preset(name)
    assert preset is not None
    assert (preset.kind, preset.max_length, preset.query_instruction) == ("reranker", 512, "")


def test_every_preset_has_a_unique_name() -> None:
    assert len({p.name for p in PRESETS}) == len(PRESETS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baai/BGE-Base-EN-v1.5", "BAAI/bge-base-en-v1.5"),
        ("/models/bge-base-en-v1.5-finetuned/", "BAAI/bge-base-en-v1.5"),
        ("./ckpt/my-bge-small-zh-v1.5", "BAAI/bge-small-zh-v1.5"),
        ("bge-small-en", "BAAI/bge-small-en"),
        ("/x/bge-small-en-ft", "BAAI/bge-small-en"),
        ("/x/bge-large-zh-noinstruct-ft", "BAAI/bge-large-zh-noinstruct"),
        ("someone/bge-m3-finetune", "BAAI/bge-m3"),
        ("C:\\models\\bge-large-en-v1.5", "BAAI/bge-large-en-v1.5"),
        ("bge-reranker-v2-m3-ft", "BAAI/bge-reranker-v2-m3"),
    ],
)
def test_resolution_from_paths_and_names(name: str, expected: str) -> None:
    preset = find_preset(name)
    assert preset is not None
    assert preset.name == expected


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "/models/checkpoint-1000", "", None])
def test_unknown_names(name: str | None) -> None:
    assert find_preset(name) is None


def test_kind_filter_and_fallback_names() -> None:
    assert find_preset("bge-reranker-base", kind="embedder") is None
    preset = find_preset("/models/checkpoint-1000", "BAAI/bge-large-en-v1.5", kind="embedder")
    assert preset is not None
    assert preset.name == "BAAI/bge-large-en-v1.5"
