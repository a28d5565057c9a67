"""fp16, pinned transfers, out-of-memory back-off and memory release on CUDA.

Marked gpu: skipped where torch sees no CUDA device. The models are built by the session
fixtures (no download, no extra package), so that a bare CUDA machine runs every test; the real
all-MiniLM-L6-v2 is added where its package is installed.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from bge_integrations import BGEEmbedder, BGEReranker

pytestmark = pytest.mark.gpu

TEXTS = ["The giant panda is a bear species endemic to China.", "Paris is the capital of France.", ""]
MANY = [f"{i} {TEXTS[i % 2]} " * (1 + i % 7) for i in range(300)]
"""Texts of many lengths: many batches, so that pinned, non-blocking copies follow each other."""


@pytest.fixture(params=["tiny", "minilm"])
def embedder_path(request: pytest.FixtureRequest) -> str:
    """The tiny BGE-shaped checkpoint with a sentence-transformers config; MiniLM where installed."""
    name = "tiny_st_embedder_path" if request.param == "tiny" else "minilm_path"
    path: str = request.getfixturevalue(name)
    return path


def test_embedder_defaults_to_fp16_on_cuda_and_matches_fp32(embedder_path: str) -> None:
    half = BGEEmbedder(embedder_path)
    assert half.config.device == "cuda:0"
    assert half.config.use_fp16 is True
    assert next(half._loaded().model.parameters()).dtype == torch.float16
    full = BGEEmbedder(embedder_path, use_fp16=False)
    assert next(full._loaded().model.parameters()).dtype == torch.float32
    a, b = np.array(half.embed_documents(TEXTS)), np.array(full.embed_documents(TEXTS))
    assert a.dtype == np.float64  # lists of Python floats
    assert np.isfinite(a).all()
    assert (a * b).sum(axis=1) == pytest.approx(1.0, abs=2e-3)


def test_embedder_on_cuda_matches_cpu_over_many_batches(embedder_path: str) -> None:
    # fp32 on both sides: a pinned, non-blocking copy read before it landed, or rows put back in
    # the wrong order, would be off by far more than the rounding allowed here.
    gpu = np.array(BGEEmbedder(embedder_path, use_fp16=False, batch_size=16).embed_documents(MANY))
    cpu = np.array(BGEEmbedder(embedder_path, device="cpu", batch_size=16).embed_documents(MANY))
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)


def test_reranker_fp16_matches_fp32(tiny_reranker_path: str) -> None:
    half = BGEReranker(tiny_reranker_path, normalize=False)
    assert half.config.use_fp16 is True
    assert next(half._loaded().model.parameters()).dtype == torch.float16
    full = BGEReranker(tiny_reranker_path, normalize=False, use_fp16=False)
    assert half.score("pandas", TEXTS) == pytest.approx(full.score("pandas", TEXTS), abs=2e-2)


def test_reranker_on_cuda_matches_cpu_over_many_batches(tiny_reranker_path: str) -> None:
    gpu = BGEReranker(tiny_reranker_path, normalize=False, use_fp16=False, batch_size=16).score("pandas", MANY)
    cpu = BGEReranker(tiny_reranker_path, normalize=False, device="cpu", batch_size=16).score("pandas", MANY)
    np.testing.assert_allclose(gpu, cpu, atol=2e-3)


def test_cuda_out_of_memory_halves_the_batch_and_gives_the_same_vectors(tiny_st_embedder_path: str) -> None:
    # A real torch.OutOfMemoryError from the caching allocator, under a per-process cap of 256 MiB
    # above what is held now: one batch of 4096 texts of 512 tokens needs more (its 64-wide
    # intermediate activations alone are 256 MiB in fp16); a few halvings fit.
    texts = [f"{i} " + " ".join([TEXTS[i % 2]] * 80) for i in range(4096)]
    reference = np.array(BGEEmbedder(tiny_st_embedder_path, batch_size=128).embed_documents(texts[:256]))
    embedder = BGEEmbedder(tiny_st_embedder_path, batch_size=4096)
    embedder.warm_up()
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = (torch.cuda.memory_reserved(0) + 256 * 2**20) / total
    torch.cuda.set_per_process_memory_fraction(cap, 0)
    try:
        with pytest.warns(ResourceWarning, match="ran out of memory"):
            vectors = np.array(embedder.embed_documents(texts))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    learned = embedder._loaded().runner.learned_max_tokens
    assert learned is not None
    assert learned < 4096 * 512
    assert vectors.shape[0] == len(texts)
    np.testing.assert_allclose(vectors[:256], reference, atol=5e-3)


def _load_run_release(embedder_path: str, reranker_path: str) -> int:
    """Load both models on CUDA, run them, free them; returns the memory allocated while loaded."""
    embedder = BGEEmbedder(embedder_path)
    reranker = BGEReranker(reranker_path)
    embedder.embed_documents(TEXTS)
    reranker.score("pandas", TEXTS)
    loaded = torch.cuda.memory_allocated(0)
    assert embedder.release() is True
    assert reranker.release() is True
    return loaded


def test_release_returns_cuda_memory(tiny_st_embedder_path: str, tiny_reranker_path: str) -> None:
    # A first round allocates what stays for the process (cuBLAS and cuBLASLt workspaces, which the
    # caching allocator counts as allocated), so the second round is measured from a settled level.
    _load_run_release(tiny_st_embedder_path, tiny_reranker_path)
    gc.collect()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated(0)
    loaded = _load_run_release(tiny_st_embedder_path, tiny_reranker_path)
    assert loaded > baseline
    assert torch.cuda.memory_allocated(0) == baseline
