"""fp16 and memory release on CUDA (marked gpu: skipped where torch sees no CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bge_integrations import BGEEmbedder, BGEReranker

pytestmark = pytest.mark.gpu

TEXTS = ["The giant panda is a bear species endemic to China.", "Paris is the capital of France.", ""]


def test_embedder_defaults_to_fp16_on_cuda_and_matches_fp32(minilm_path: str) -> None:
    half = BGEEmbedder(minilm_path)
    assert half.config.device.startswith("cuda")
    assert half.config.use_fp16 is True
    assert next(half._loaded().model.parameters()).dtype == torch.float16
    full = BGEEmbedder(minilm_path, use_fp16=False)
    a, b = np.array(half.embed_documents(TEXTS)), np.array(full.embed_documents(TEXTS))
    assert (a * b).sum(axis=1) == pytest.approx(1.0, abs=2e-3)


def test_reranker_fp16_matches_fp32(tiny_reranker_path: str) -> None:
    half = BGEReranker(tiny_reranker_path, normalize=False)
    assert half.config.use_fp16 is True
    full = BGEReranker(tiny_reranker_path, normalize=False, use_fp16=False)
    assert half.score("pandas", TEXTS) == pytest.approx(full.score("pandas", TEXTS), abs=2e-2)


def test_release_returns_cuda_memory(minilm_path: str, tiny_reranker_path: str) -> None:
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()
    embedder = BGEEmbedder(minilm_path)
    reranker = BGEReranker(tiny_reranker_path)
    embedder.embed_documents(TEXTS)
    reranker.score("pandas", TEXTS)
    assert torch.cuda.memory_allocated() > baseline
    assert embedder.release() is True
    assert reranker.release() is True
    assert torch.cuda.memory_allocated() == baseline
