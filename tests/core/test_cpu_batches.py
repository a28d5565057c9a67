"""The CPU's default batch shape: a padded-token budget by model width, applied only where none was set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bge_integrations import BGEEmbedder, BGEM3Embedder, BGEReranker
from bge_integrations.core.batching import BatchRunner
from bge_integrations.core.cpu_batches import CPU_BATCH_TOKENS, cpu_batch_tokens


class TestBudget:
    def test_the_cpu_gets_the_measured_budget(self) -> None:
        assert cpu_batch_tokens("cpu") == CPU_BATCH_TOKENS == 2048

    @pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
    def test_accelerators_keep_batch_size_alone(self, device: str) -> None:
        assert cpu_batch_tokens(device) is None


def _recording(lengths: list[int], calls: list[list[int]]):
    def forward(rows: list[int]) -> torch.Tensor:
        calls.append(rows)
        return torch.tensor([float(i) for i in rows])

    return forward


class TestRunner:
    def test_the_default_budget_cuts_batches_when_the_call_sets_none(self) -> None:
        lengths = [256] * 20 + [16] * 40
        calls: list[list[int]] = []
        out = BatchRunner("m", default_max_tokens=CPU_BATCH_TOKENS).run(
            lengths, _recording(lengths, calls), max_items=32
        )
        assert out.tolist() == [float(i) for i in range(60)]
        assert [len(rows) for rows in calls] == [8, 8, 8, 32, 4]  # 8 x 256 = 2,048 tokens; short ones fill 32
        assert all(len(rows) * max(lengths[i] for i in rows) <= CPU_BATCH_TOKENS for rows in calls)

    def test_a_budget_the_call_sets_wins(self) -> None:
        lengths = [256] * 20
        calls: list[list[int]] = []
        BatchRunner("m", default_max_tokens=512).run(
            lengths, _recording(lengths, calls), max_items=32, max_tokens=10**9
        )
        assert [len(rows) for rows in calls] == [20]

    def test_no_default_means_batch_size_alone(self) -> None:
        lengths = [256] * 20
        calls: list[list[int]] = []
        BatchRunner("m").run(lengths, _recording(lengths, calls), max_items=32)
        assert [len(rows) for rows in calls] == [20]


class TestModels:
    def test_the_embedder_on_the_cpu_cuts_at_the_budget_and_gives_the_same_vectors(
        self, tiny_embedder_path: str
    ) -> None:
        texts = [("word " * (n % 60 + 1)).strip() for n in range(50)]
        default = BGEEmbedder(tiny_embedder_path, device="cpu")
        loaded = default._loaded()
        assert loaded.runner.default_max_tokens == CPU_BATCH_TOKENS
        calls: list[int] = []
        forward = loaded.model.forward

        def counting(features: dict[str, torch.Tensor], **kwargs: object) -> dict[str, torch.Tensor]:
            calls.append(int(features["input_ids"].numel()))
            return forward(features, **kwargs)

        # The tiny model's texts are short: a small default budget makes the cut visible.
        loaded.runner.default_max_tokens = 200
        try:
            loaded.model.forward = counting  # type: ignore[method-assign]
            cut = default.embed_documents(texts)
        finally:
            loaded.model.forward = forward  # type: ignore[method-assign]
            loaded.runner.default_max_tokens = CPU_BATCH_TOKENS
        assert len(calls) > 2
        assert all(padded <= 200 for padded in calls)  # no text is longer than 62 tokens
        whole = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=64, max_batch_tokens=10**9).embed_documents(
            texts
        )
        np.testing.assert_allclose(cut, whole, atol=1e-6)

    def test_the_reranker_on_the_cpu_gets_a_budget_too(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")
        reranker.score("q", ["a"])
        loaded = reranker._loaded()
        assert loaded.runner.default_max_tokens == CPU_BATCH_TOKENS

    def test_batch_tokens_says_what_the_batches_are_cut_at(
        self, tiny_embedder_path: str, tiny_reranker_path: str, tiny_llm_gemma_path: str, tiny_m3_path: str
    ) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        assert embedder.batch_tokens == CPU_BATCH_TOKENS
        assert BGEEmbedder(tiny_embedder_path, device="cpu", max_batch_tokens=300).batch_tokens == 300
        assert BGEM3Embedder(tiny_m3_path, device="cpu").batch_tokens == CPU_BATCH_TOKENS
        assert BGEReranker(tiny_reranker_path, device="cpu").batch_tokens == CPU_BATCH_TOKENS
        assert BGEReranker(tiny_llm_gemma_path, device="cpu").batch_tokens is None  # LLM rerankers: batch_size alone
        runner = embedder._loaded().runner
        runner.learned_max_tokens = 512  # as after an out-of-memory failure
        try:
            assert embedder.batch_tokens == 512
        finally:
            runner.learned_max_tokens = None
