"""Batch planning by real token length, token budgets, and out-of-memory back-off."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
import torch

from bge_integrations import BGEEmbedder
from bge_integrations.core.batching import BatchRunner, is_out_of_memory, plan_batches
from bge_integrations.core.loading import REGISTRY


class TestPlan:
    @pytest.mark.parametrize("seed", range(20))
    def test_every_input_once_within_budgets(self, seed: int) -> None:
        rng = random.Random(seed)
        lengths = [rng.randint(1, 512) for _ in range(rng.randint(0, 300))]
        max_items = rng.choice([1, 3, 32, 1000])
        max_tokens = rng.choice([None, 256, 4096])
        batches = plan_batches(lengths, max_items=max_items, max_tokens=max_tokens)
        assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
        for batch in batches:
            assert 1 <= len(batch) <= max_items
            padded = len(batch) * max(lengths[i] for i in batch)
            assert max_tokens is None or len(batch) == 1 or padded <= max_tokens
        flat = [lengths[i] for batch in batches for i in batch]
        assert flat == sorted(flat, reverse=True)

    def test_budget_makes_long_batches_small_and_short_ones_full(self) -> None:
        lengths = [500] * 8 + [20] * 64
        batches = plan_batches(lengths, max_items=32, max_tokens=1000)
        assert [len(b) for b in batches] == [2, 2, 2, 2, 32, 32]

    def test_empty(self) -> None:
        assert plan_batches([], max_items=4) == []


def _oom_above(limit: int, lengths: list[int], calls: list[list[int]]):
    def forward(rows: list[int]) -> torch.Tensor:
        calls.append(rows)
        if len(rows) * max(lengths[i] for i in rows) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return torch.tensor([[float(i), float(lengths[i])] for i in rows])

    return forward


class TestOutOfMemory:
    def test_batch_is_halved_and_results_stay_in_order(self) -> None:
        lengths = [10, 40, 30, 20, 50, 60, 70, 80]
        calls: list[list[int]] = []
        runner = BatchRunner("m")
        with pytest.warns(ResourceWarning, match="ran out of memory"):
            out = runner.run(lengths, _oom_above(100, lengths, calls), max_items=8)
        assert out[:, 0].tolist() == list(range(8))
        assert out[:, 1].tolist() == lengths
        assert calls[0] == [7, 6, 5, 4, 1, 2, 3, 0]  # the whole batch first, then halves
        assert runner.learned_max_tokens is not None
        assert runner.learned_max_tokens <= 100 * 4

    def test_learned_budget_is_used_next_time(self) -> None:
        lengths = [50] * 8
        runner = BatchRunner("m")
        with pytest.warns(ResourceWarning):
            runner.run(lengths, _oom_above(100, lengths, []), max_items=8)
        calls: list[list[int]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            runner.run(lengths, _oom_above(100, lengths, calls), max_items=8)
        assert all(len(rows) * 50 <= 100 for rows in calls)  # no failed attempt the second time

    def test_other_errors_surface_unchanged_without_retry(self) -> None:
        calls: list[list[int]] = []

        def forward(rows: list[int]) -> torch.Tensor:
            calls.append(rows)
            raise ValueError("bad weights")

        with pytest.raises(ValueError, match="bad weights"):
            BatchRunner("m").run([5, 5, 5, 5], forward, max_items=4)
        assert len(calls) == 1

    def test_a_single_input_that_does_not_fit_raises(self) -> None:
        with pytest.raises(torch.OutOfMemoryError):
            BatchRunner("m").run([500], _oom_above(10, [500], []), max_items=4)

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (torch.OutOfMemoryError("CUDA out of memory"), True),
            (RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"), True),
            (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True),
            (RuntimeError("shape mismatch"), False),
            (ValueError("out of memory"), False),
        ],
    )
    def test_only_real_out_of_memory_counts(self, error: BaseException, expected: bool) -> None:
        assert is_out_of_memory(error) is expected


TEXTS = ["panda " * n for n in (1, 50, 3, 200, 7, 120, 2, 90, 30, 11)]


class TestEmbedderBatches:
    def test_vectors_do_not_depend_on_batch_shapes(self, tiny_embedder_path: str) -> None:
        reference = np.array(BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=1).embed_documents(TEXTS))
        for batch_size, max_batch_tokens in [(32, None), (3, None), (32, 256), (4, 64)]:
            ours = BGEEmbedder(
                tiny_embedder_path, device="cpu", batch_size=batch_size, max_batch_tokens=max_batch_tokens
            ).embed_documents(TEXTS)
            np.testing.assert_allclose(ours, reference, atol=1e-6)

    def test_fast_path_equals_sentence_transformers_encode(self, tiny_st_embedder_path: str) -> None:
        embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu", max_length=64)
        with pytest.warns(UserWarning, match="truncated"):
            ours = np.array(embedder.embed_queries(TEXTS))
        loaded = embedder._loaded()
        plan = loaded.features._plans[embedder.config.query_instruction]
        assert plan is not None  # the tokenise-once path was used
        expected = loaded.model.encode(TEXTS, prompt=embedder.config.query_instruction, batch_size=32)
        np.testing.assert_allclose(ours, expected, atol=1e-6)

    def test_falls_back_when_features_differ_from_preprocess(
        self, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
        expected = np.array(embedder.embed_documents(TEXTS))
        REGISTRY.clear()
        fresh = BGEEmbedder(tiny_embedder_path, device="cpu")
        loaded = fresh._loaded()
        original = loaded.model.preprocess

        def altered_preprocess(texts: list[str], **kwargs: object) -> dict[str, object]:
            features = original(texts, **kwargs)
            features["input_ids"] = features["input_ids"].flip(-1)  # something our tokens don't match
            return features

        calls: list[int] = []
        encode = loaded.model.encode_document

        def counting_encode(*args: object, **kwargs: object) -> object:
            calls.append(1)
            return encode(*args, **kwargs)

        monkeypatch.setattr(loaded.model, "encode_document", counting_encode)
        monkeypatch.setattr(loaded.model, "preprocess", altered_preprocess)
        ours = fresh.embed_documents(TEXTS)
        assert loaded.features._plans[""] is None
        assert calls == [1]
        assert len(ours) == len(TEXTS)
        # sentence-transformers' own encode ran (through the patched preprocess: flipped ids),
        # so the vectors differ from the unpatched ones: proof the fallback path was taken.
        assert not np.allclose(ours, expected, atol=1e-4)

    def test_out_of_memory_mid_call_gives_the_same_vectors(
        self, tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        embedder = BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=8)
        expected = np.array(embedder.embed_documents(TEXTS))
        loaded = embedder._loaded()
        forward = loaded.model.forward
        sizes: list[int] = []

        def flaky_forward(features: dict[str, torch.Tensor], **kwargs: object) -> object:
            rows, width = features["input_ids"].shape
            sizes.append(rows)
            if rows * width > 300:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
            return forward(features, **kwargs)

        monkeypatch.setattr(loaded.model, "forward", flaky_forward)
        with pytest.warns(ResourceWarning):
            ours = np.array(embedder.embed_documents(TEXTS))
        np.testing.assert_allclose(ours, expected, atol=1e-6)
        assert max(sizes) == 8
        assert min(sizes) == 1

    def test_progress_counts_every_text(self, tiny_embedder_path: str, capsys: pytest.CaptureFixture[str]) -> None:
        BGEEmbedder(tiny_embedder_path, device="cpu", batch_size=3, show_progress_bar=True).embed_documents(TEXTS)
        assert "/10 [" in capsys.readouterr().err  # a bar over the 10 texts, on stderr

    @pytest.mark.parametrize("value", [0, -5, 1.5, "many"])
    def test_bad_max_batch_tokens(self, value: object) -> None:
        with pytest.raises((ValueError, TypeError), match="max_batch_tokens"):
            BGEEmbedder("BAAI/bge-small-en-v1.5", max_batch_tokens=value)  # type: ignore[arg-type]
