# ruff: noqa: E501  (the snippets are quoted as published, long lines included)
"""The LLM rerankers' usage snippets run on bge_integrations.compat by changing the import line only.

Quoted from FlagEmbedding (trailing spaces dropped): research/llm_reranker/README.md ("For
LLM-based reranker", "For LLM-based layerwise reranker": the bge-reranker-v2-gemma and
bge-reranker-v2-minicpm-layerwise model cards have the same code), docs/source/bge/bge_reranker_v2.rst
(bge-reranker-v2.5-gemma2-lightweight, with the deprecated ``compress_layer``) and
examples/inference/reranker/README.md ("3. LLM-based Reranker" to "5. LLM-based lightweight Reranker").
They run through :func:`tests.compat.test_model_cards.adapt`: the import line, the hub id replaced by
the tiny checkpoint, and, where noted, the device and the layer numbers: the tiny models have layers
2 to 6, so layer 28 (of 40) becomes 4 and compress layers 24 and 40 become 3 and 5 (FlagEmbedding
refuses out-of-range cutoff layers too). The printed scores are checked against FlagEmbedding's
reference scores of the same settings (tests/data/llm_*_reference.json) or the core's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from bge_integrations import BGEReranker
from tests.compat.test_model_cards import adapt, run

DATA = Path(__file__).parent.parent / "data"
ATOL = 1e-4
PANDA = [
    ("what is panda?", "hi"),
    (
        "what is panda?",
        "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.",
    ),
]
LAYER_28 = ("cutoff_layers=[28]", "cutoff_layers=[4]")
CUDA_1 = ("devices=['cuda:1']", "devices=['cpu']")

# research/llm_reranker/README.md, "For LLM-based reranker" (the bge-reranker-v2-gemma model card).
GEMMA_MODEL_CARD = """\
from FlagEmbedding import FlagLLMReranker
reranker = FlagLLMReranker('BAAI/bge-reranker-v2-gemma', use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation
# reranker = FlagLLMReranker('BAAI/bge-reranker-v2-gemma', use_bf16=True) # You can also set use_bf16=True to speed up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'])
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']])
print(scores)
"""

# examples/inference/reranker/README.md, "3. LLM-based Reranker". Edit: devices=['cuda:1'] -> ['cpu'].
GEMMA_README = """\
from FlagEmbedding import FlagLLMReranker
reranker = FlagLLMReranker(
    'BAAI/bge-reranker-v2-gemma',
    query_max_length=256,
    passage_max_length=512,
    use_fp16=True,
    devices=['cuda:1']
) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'])
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']])
print(scores)
"""

# research/llm_reranker/README.md, "For LLM-based layerwise reranker" (the bge-reranker-v2-minicpm-layerwise
# model card). Edit: cutoff_layers=[28] -> [4].
LAYERWISE_MODEL_CARD = """\
from FlagEmbedding import LayerWiseFlagLLMReranker
reranker = LayerWiseFlagLLMReranker('BAAI/bge-reranker-v2-minicpm-layerwise', use_fp16=True) # Setting use_fp16 to True speeds up computation with a slight performance degradation
# reranker = LayerWiseFlagLLMReranker('BAAI/bge-reranker-v2-minicpm-layerwise', use_bf16=True) # You can also set use_bf16=True to speed up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'], cutoff_layers=[28]) # Adjusting 'cutoff_layers' to pick which layers are used for computing the score.
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']], cutoff_layers=[28])
print(scores)
"""

# examples/inference/reranker/README.md, "4. LLM-based Layerwise Reranker".
# Edits: devices=['cuda:1'] -> ['cpu'], cutoff_layers=[28] -> [4].
LAYERWISE_README = """\
from FlagEmbedding import LayerWiseFlagLLMReranker
reranker = LayerWiseFlagLLMReranker(
    'BAAI/bge-reranker-v2-minicpm-layerwise',
    query_max_length=256,
    passage_max_length=512,
    use_fp16=True,
    devices=['cuda:1']
) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'], cutoff_layers=[28]) # Adjusting 'cutoff_layers' to pick which layers are used for computing the score.
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']], cutoff_layers=[28])
print(scores)
"""

# docs/source/bge/bge_reranker_v2.rst, bge-reranker-v2.5-gemma2-lightweight (bge-model.com).
# Edits: cutoff_layers=[28] -> [4], compress_layer=[24, 40] -> [3, 5].
LIGHTWEIGHT_DOCS = """\
from FlagEmbedding import LightWeightFlagLLMReranker

# Setting use_fp16 to True speeds up computation with a slight performance degradation
reranker = LightWeightFlagLLMReranker('BAAI/bge-reranker-v2.5-gemma2-lightweight', use_fp16=True)

# Adjusting 'cutoff_layers' to pick which layers are used for computing the score.
score = reranker.compute_score(['query', 'passage'], cutoff_layers=[28], compress_ratio=2, compress_layer=[24, 40])
print(score)
"""

# examples/inference/reranker/README.md, "5. LLM-based lightweight Reranker".
# Edits: devices=['cuda:1'] -> ['cpu'], cutoff_layers=[28] -> [4], compress_layers=[24, 40] -> [3, 5].
LIGHTWEIGHT_README = """\
from FlagEmbedding import LightWeightFlagLLMReranker
reranker = LightWeightFlagLLMReranker(
    'BAAI/bge-reranker-v2.5-gemma2-lightweight',
    query_max_length=256,
    passage_max_length=512,
    use_fp16=True,
    devices=['cuda:1']
) # Setting use_fp16 to True speeds up computation with a slight performance degradation

score = reranker.compute_score(['query', 'passage'], cutoff_layers=[28], compress_ratio=2, compress_layers=[24, 40]) # Adjusting 'cutoff_layers' to pick which layers are used for computing the score.
print(score)

scores = reranker.compute_score([['what is panda?', 'hi'], ['what is panda?', 'The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear species endemic to China.']], cutoff_layers=[28], compress_ratio=2, compress_layers=[24, 40])
print(scores)
"""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Tiny models on a shared CPU: one torch thread is many times faster (conftest restores the count)."""
    torch.set_num_threads(1)


def reference_case(name: str, case: str) -> list[float]:
    """The reference scores of the snippets' two panda pairs (the first two pairs of the layerwise and lightweight files)."""
    path = DATA / f"llm_{name}_reference.json"
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    data = json.loads(path.read_text())
    assert [tuple(pair) for pair in data["pairs"][:2]] == PANDA
    (found,) = [c for c in data["cases"] if c["name"] == case]
    scores: list[float] = found["scores"][:2]
    return scores


def edit(code: str, *replacements: tuple[str, str]) -> str:
    for old, new in replacements:
        assert old in code, f"{old!r} not found in the snippet"
        code = code.replace(old, new)
    return code


def check_printed(ns: dict[str, Any], printed: str, names: tuple[str, ...]) -> None:
    """Each printed line is the list FlagEmbedding returns: one float per pair, a list even for one pair."""
    assert printed.splitlines() == [str(ns[name]) for name in names]
    for name in names:
        assert type(ns[name]) is list
        assert all(type(score) is float for score in ns[name])
    assert len(ns["score"]) == 1


def core_scores(path: str, pairs: list[tuple[str, str]], **settings: Any) -> list[float]:
    core = BGEReranker(path, device="cpu", windows=False, normalize=False, **settings)
    return core.score_pairs(pairs)


@pytest.mark.parametrize(("snippet", "devices"), [(GEMMA_MODEL_CARD, None), (GEMMA_README, CUDA_1)])
def test_gemma(tiny_llm_gemma_path: str, snippet: str, devices: tuple[str, str] | None) -> None:
    ns, printed = run(adapt(snippet, "BAAI/bge-reranker-v2-gemma", tiny_llm_gemma_path, devices=devices))
    check_printed(ns, printed, ("score", "scores"))
    assert ns["reranker"].target_devices == ["cpu"]
    expected = core_scores(tiny_llm_gemma_path, [("query", "passage"), *PANDA])
    assert ns["score"] + ns["scores"] == pytest.approx(expected, abs=ATOL)


@pytest.mark.parametrize(
    ("snippet", "edits"), [(LAYERWISE_MODEL_CARD, [LAYER_28]), (LAYERWISE_README, [LAYER_28, CUDA_1])]
)
def test_layerwise(tiny_llm_layerwise_path: str, snippet: str, edits: list[tuple[str, str]]) -> None:
    expected = reference_case("layerwise", "layer_middle")  # FlagEmbedding's, cutoff_layers=[4]
    code = edit(adapt(snippet, "BAAI/bge-reranker-v2-minicpm-layerwise", tiny_llm_layerwise_path), *edits)
    ns, printed = run(code)
    check_printed(ns, printed, ("score", "scores"))
    assert ns["scores"] == pytest.approx(expected, abs=ATOL)
    assert ns["score"] == pytest.approx(
        core_scores(tiny_llm_layerwise_path, [("query", "passage")], cutoff_layers=[4]), abs=ATOL
    )


def test_lightweight_docs(tiny_llm_lightweight_path: str) -> None:
    reference_case("lightweight", "model_card")
    code = adapt(LIGHTWEIGHT_DOCS, "BAAI/bge-reranker-v2.5-gemma2-lightweight", tiny_llm_lightweight_path)
    code = edit(code, LAYER_28, ("compress_layer=[24, 40]", "compress_layer=[3, 5]"))
    with pytest.warns(FutureWarning, match="compress_layer"):  # FlagEmbedding prints the same advice
        ns, printed = run(code)
    check_printed(ns, printed, ("score",))
    settings = {"cutoff_layers": [4], "compress_ratio": 2, "compress_layers": [3, 5]}
    assert ns["score"] == pytest.approx(
        core_scores(tiny_llm_lightweight_path, [("query", "passage")], **settings), abs=ATOL
    )


def test_lightweight_readme(tiny_llm_lightweight_path: str) -> None:
    expected = reference_case("lightweight", "model_card")  # cutoff [4], compress_ratio 2, compress_layers [3, 5]
    code = adapt(LIGHTWEIGHT_README, "BAAI/bge-reranker-v2.5-gemma2-lightweight", tiny_llm_lightweight_path)
    code = edit(code, LAYER_28, CUDA_1, ("compress_layers=[24, 40]", "compress_layers=[3, 5]"))
    ns, printed = run(code)
    check_printed(ns, printed, ("score", "scores"))
    assert ns["scores"] == pytest.approx(expected, abs=ATOL)
    assert ns["reranker"].query_max_length == 256
