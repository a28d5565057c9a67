"""BGE's LLM rerankers on CUDA: bfloat16 by default, scores close to float32, the same order.

Marked gpu: skipped where torch sees no CUDA device. Uses the committed tiny checkpoints.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bge_integrations import BGEReranker
from bge_integrations.core.llm_reranking_model import LoadedLLMReranker

pytestmark = pytest.mark.gpu

QUERY = "what is a panda?"
PASSAGES = ["The giant panda is a bear native to China.", "hi", "", "Paris is the capital of France. " * 40]


@pytest.fixture(params=["tiny_llm_gemma_path", "tiny_llm_layerwise_path", "tiny_llm_lightweight_path"])
def llm_path(request: pytest.FixtureRequest) -> str:
    path: str = request.getfixturevalue(request.param)
    return path


def test_half_precision_is_bfloat16_and_close_to_float32(llm_path: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    half = BGEReranker(llm_path, normalize=False)
    assert half.config.device.startswith("cuda")
    assert half.config.use_fp16 is True
    loaded = half._loaded()
    assert isinstance(loaded, LoadedLLMReranker)
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert next(loaded.model.parameters()).dtype == expected
    full = BGEReranker(llm_path, normalize=False, use_fp16=False)
    a, b = np.array(half.score(QUERY, PASSAGES)), np.array(full.score(QUERY, PASSAGES))
    assert np.abs(a - b).max() < 0.05 * max(1.0, float(np.abs(b).max()))
    cpu = BGEReranker(llm_path, normalize=False, device="cpu")
    np.testing.assert_allclose(b, cpu.score(QUERY, PASSAGES), atol=1e-3)
