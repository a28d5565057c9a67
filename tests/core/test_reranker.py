"""BGEReranker against AutoModelForSequenceClassification, on a tiny XLM-RoBERTa cross-encoder."""

from __future__ import annotations

import asyncio
import math
import warnings

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from bge_integrations import BGEReranker, RankedText, TruncationWarning
from bge_integrations.core.loading import REGISTRY

QUERY = "Where do giant pandas live?"
PASSAGES = [
    "The giant panda is a bear species endemic to China.",
    "Paris is the capital and most populous city of France.",
    "",
    "Mitochondria are the powerhouse of the cell. " * 3,
]
LONG = "The quick brown fox jumps over the lazy dog. " * 40 + "The giant panda lives in China. " * 3


def reference_logits(path: str, query: str, passages: list[str], max_length: int = 512) -> list[float]:
    """What the BGE reranker model card does: tokenizer pairs, truncation, logits."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    encoded = tokenizer(
        [[query, p] for p in passages],
        padding=True,
        truncation="only_second",
        max_length=max_length,
        return_tensors="pt",
    )
    with torch.no_grad():
        return model(**encoded).logits[:, 0].float().tolist()


def reference_window_logits(path: str, query: str, passage: str, max_length: int, stride: int) -> list[float]:
    """Logits of every window that transformers' own overflow mechanism makes of a pair."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    encoded = tokenizer(
        query,
        passage,
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        padding=True,
        return_tensors="pt",
    )
    encoded.pop("overflow_to_sample_mapping")
    with torch.no_grad():
        return model(**encoded).logits[:, 0].float().tolist()


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class TestEquivalence:
    def test_logits_equal_reference(self, tiny_reranker_path: str) -> None:
        ours = BGEReranker(tiny_reranker_path, device="cpu", normalize=False).score(QUERY, PASSAGES)
        assert ours == pytest.approx(reference_logits(tiny_reranker_path, QUERY, PASSAGES), abs=1e-5)

    def test_sigmoid_scores_are_default(self, tiny_reranker_path: str) -> None:
        ours = BGEReranker(tiny_reranker_path, device="cpu").score(QUERY, PASSAGES)
        expected = [sigmoid(x) for x in reference_logits(tiny_reranker_path, QUERY, PASSAGES)]
        assert ours == pytest.approx(expected, abs=1e-5)

    def test_truncated_pairs_equal_reference_when_windows_are_off(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu", normalize=False, windows=False, max_length=64)
        passages = [LONG, PASSAGES[0]]
        with pytest.warns(TruncationWarning, match="1 of 2 passages"):
            ours = reranker.score(QUERY, passages)
        assert ours == pytest.approx(reference_logits(tiny_reranker_path, QUERY, passages, 64), abs=1e-5)
        assert reranker.truncated_count == 1

    def test_windows_score_the_best_window(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu", normalize=False, max_length=64, window_overlap=16)
        windows = reference_window_logits(tiny_reranker_path, QUERY, LONG, 64, 16)
        assert len(windows) > 3
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)
            score = reranker.score(QUERY, [LONG])[0]
        assert score == pytest.approx(max(windows), abs=1e-5)

    def test_mean_aggregation(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(
            tiny_reranker_path, device="cpu", normalize=False, max_length=64, window_overlap=16, aggregation="mean"
        )
        windows = reference_window_logits(tiny_reranker_path, QUERY, LONG, 64, 16)
        assert reranker.score(QUERY, [LONG])[0] == pytest.approx(sum(windows) / len(windows), abs=1e-5)

    @pytest.mark.parametrize("aggregation", ["max", "mean"])
    def test_max_windows_reads_the_first_windows(self, tiny_reranker_path: str, aggregation: str) -> None:
        settings = {"device": "cpu", "normalize": False, "max_length": 64, "window_overlap": 16}
        reranker = BGEReranker(tiny_reranker_path, max_windows=2, aggregation=aggregation, **settings)  # type: ignore[arg-type]
        windows = reference_window_logits(tiny_reranker_path, QUERY, LONG, 64, 16)
        assert len(windows) > 2
        read = r"1 of 2 passages are longer than the first 2 windows \(64 tokens each, query included\)"
        with pytest.warns(TruncationWarning, match=read):
            scores = reranker.score(QUERY, [LONG, PASSAGES[0]])
        first = windows[:2]
        assert scores[0] == pytest.approx(max(first) if aggregation == "max" else sum(first) / 2, abs=1e-5)
        assert reranker.truncated_count == 1
        enough = BGEReranker(tiny_reranker_path, max_windows=len(windows), aggregation=aggregation, **settings)  # type: ignore[arg-type]
        every = BGEReranker(tiny_reranker_path, aggregation=aggregation, **settings)  # type: ignore[arg-type]
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)  # read whole: nothing to warn about
            assert enough.score(QUERY, [LONG]) == every.score(QUERY, [LONG])

    def test_max_windows_encodes_only_the_windows_it_reads(self, tiny_reranker_path: str) -> None:
        encoder = BGEReranker(tiny_reranker_path, device="cpu")._loaded().pair_encoder(64, 48, 16)
        huge = LONG * 300  # about 100,000 words: thousands of windows
        every = encoder.encode(QUERY, [huge, "short", LONG], windows=True)
        for limit in (1, 3, 10):
            batch = encoder.encode(QUERY, [huge, "short", LONG], windows=True, max_windows=limit)
            expected = [i for i, owner in enumerate(every.owners) if every.owners[: i + 1].count(owner) <= limit]
            assert batch.input_ids == [every.input_ids[i] for i in expected]
            assert batch.owners == [every.owners[i] for i in expected]
            assert batch.cut_passages == ([0, 2] if every.owners.count(2) > limit else [0])
            assert batch.truncated_passages == every.truncated_passages == [0, 2]
        assert every.cut_passages == []
        off = encoder.encode(QUERY, [huge, "short", LONG], windows=False)
        one = encoder.encode(QUERY, [huge, "short", LONG], windows=True, max_windows=1)
        assert (off.input_ids, off.cut_passages) == (one.input_ids, one.cut_passages)

    def test_short_passages_are_unaffected_by_windows(self, tiny_reranker_path: str) -> None:
        on = BGEReranker(tiny_reranker_path, device="cpu").score(QUERY, PASSAGES)
        off = BGEReranker(tiny_reranker_path, device="cpu", windows=False).score(QUERY, PASSAGES)
        assert on == pytest.approx(off, abs=1e-6)


class TestQueryIsKept:
    def test_long_query_is_cut_to_max_query_length_not_to_nothing(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu", max_length=64, max_query_length=40)
        long_query = "where do pandas live " * 40
        with pytest.warns(TruncationWarning, match="queries"):
            scores = reranker.score(long_query, [LONG, "short"])
        assert len(scores) == 2
        assert all(0.0 < s < 1.0 for s in scores)

    def test_passage_budget_follows_query_length(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu", max_length=64)
        loaded = reranker._loaded()
        encoder = loaded.pair_encoder(64, 48, 16)
        batch = encoder.encode(QUERY, [LONG], windows=True)
        assert all(len(ids) <= 64 for ids in batch.input_ids)
        assert max(len(ids) for ids in batch.input_ids) == 64
        query_ids = AutoTokenizer.from_pretrained(reranker.model_name)(QUERY, add_special_tokens=False)["input_ids"]
        for ids in batch.input_ids:
            assert ids[1 : 1 + len(query_ids)] == query_ids

    def test_impossible_query_budget_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_query_length must be < max_length=64, got 64"):
            BGEReranker("BAAI/bge-reranker-base", max_length=64, max_query_length=64)
        with pytest.raises(ValueError, match="max_query_length must be < max_length=512, got 600"):
            _ = BGEReranker("BAAI/bge-reranker-base", max_query_length=600).config


class TestRank:
    def test_rank_orders_by_score_and_keeps_index_and_text(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")
        scores = reranker.score(QUERY, PASSAGES)
        ranked = reranker.rank(QUERY, PASSAGES)
        assert [r.index for r in ranked] == sorted(range(len(PASSAGES)), key=lambda i: -scores[i])
        assert all(isinstance(r, RankedText) and r.text == PASSAGES[r.index] for r in ranked)
        assert [r.score for r in ranked] == sorted(scores, reverse=True)

    def test_top_n_and_threshold(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")
        scores = sorted(reranker.score(QUERY, PASSAGES), reverse=True)
        assert len(reranker.rank(QUERY, PASSAGES, top_n=2)) == 2
        assert len(reranker.rank(QUERY, PASSAGES, top_n=10)) == 4
        kept = reranker.rank(QUERY, PASSAGES, score_threshold=scores[1])
        assert [r.score for r in kept] == scores[:2]

    def test_ties_keep_input_order(self, tiny_reranker_path: str) -> None:
        ranked = BGEReranker(tiny_reranker_path, device="cpu").rank(QUERY, ["same", "same", "same"])
        assert [r.index for r in ranked] == [0, 1, 2]

    def test_empty_documents(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")
        assert reranker.score(QUERY, []) == []
        assert reranker.rank(QUERY, [], top_n=3) == []
        assert REGISTRY.load_count == 0

    def test_order_independent_of_batching(self, tiny_reranker_path: str) -> None:
        passages = [f"passage {i} " * (i % 5 + 1) for i in range(19)] + [LONG]
        one = BGEReranker(tiny_reranker_path, device="cpu", batch_size=1, max_length=64).score(QUERY, passages)
        many = BGEReranker(tiny_reranker_path, device="cpu", batch_size=7, max_length=64).score(QUERY, passages)
        alone = [BGEReranker(tiny_reranker_path, device="cpu", max_length=64).score(QUERY, [p])[0] for p in passages]
        assert one == pytest.approx(many, abs=1e-5)
        assert one == pytest.approx(alone, abs=1e-5)


class TestErrors:
    @pytest.mark.parametrize("top_n", [0, -2, 1.5, "3"])
    def test_bad_top_n(self, tiny_reranker_path: str, top_n: object) -> None:
        with pytest.raises(ValueError, match=f"top_n must be an int > 0, got {top_n!r}"):
            BGEReranker(tiny_reranker_path, device="cpu").rank(QUERY, PASSAGES, top_n=top_n)  # type: ignore[arg-type]

    def test_bad_threshold(self, tiny_reranker_path: str) -> None:
        with pytest.raises(ValueError, match="score_threshold must be a number or None, got 'high'"):
            BGEReranker(tiny_reranker_path).rank(QUERY, PASSAGES, score_threshold="high")  # type: ignore[arg-type]

    def test_bad_documents_and_query(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")
        with pytest.raises(TypeError, match=r"documents\[2\] must be a string, got NoneType"):
            reranker.score(QUERY, ["a", "b", None])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="query must be a string, got NoneType"):
            reranker.score(None, ["a"])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="documents must be a sequence of strings, got a single str"):
            reranker.score(QUERY, "a passage")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"batch_size": 0}, "batch_size must be an int > 0, got 0"),
            ({"window_overlap": -1}, "window_overlap must be an int >= 0, got -1"),
            ({"aggregation": "min"}, "aggregation must be 'max' or 'mean', got 'min'"),
            ({"max_length": 0}, "max_length must be an int > 0, got 0"),
            ({"max_windows": 0}, "max_windows must be an int > 0, got 0"),
        ],
    )
    def test_bad_settings(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            BGEReranker("BAAI/bge-reranker-base", **kwargs)  # type: ignore[arg-type]

    @pytest.mark.parametrize("name", ["windows", "normalize"])
    def test_flags_must_be_true_or_false(self, name: str) -> None:
        # A string from a hand-written config is truthy: "false" would switch the setting on.
        with pytest.raises(TypeError, match=f"{name} must be True or False, got str: 'false'"):
            BGEReranker("BAAI/bge-reranker-base", **{name: "false"})  # type: ignore[arg-type]


class TestSharingAndAsync:
    def test_shared_model_and_release(self, tiny_reranker_path: str) -> None:
        a = BGEReranker(tiny_reranker_path, device="cpu")
        b = BGEReranker(tiny_reranker_path, device="cpu", normalize=False, max_length=128)
        a.score(QUERY, PASSAGES)
        b.score(QUERY, PASSAGES)
        assert REGISTRY.load_count == 1
        assert a.release() is True
        assert REGISTRY.loaded_keys() == []
        b.score(QUERY, PASSAGES)
        assert REGISTRY.load_count == 2

    def test_async_equals_sync(self, tiny_reranker_path: str) -> None:
        reranker = BGEReranker(tiny_reranker_path, device="cpu")

        async def run() -> tuple[list[float], list[RankedText]]:
            return await asyncio.gather(reranker.ascore(QUERY, PASSAGES), reranker.arank(QUERY, PASSAGES, top_n=2))

        scores, ranked = asyncio.run(run())
        assert scores == reranker.score(QUERY, PASSAGES)
        assert ranked == reranker.rank(QUERY, PASSAGES, top_n=2)

    def test_preset_resolution(self, tiny_reranker_path: str) -> None:
        config = BGEReranker(tiny_reranker_path).config
        assert config.preset == "BAAI/bge-reranker-base"
        assert (config.max_length, config.max_query_length, config.normalize) == (512, 384, True)


def test_per_call_score_scale(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    logits = reranker.score(QUERY, PASSAGES, normalize=False)
    assert logits == pytest.approx(reference_logits(tiny_reranker_path, QUERY, PASSAGES), abs=1e-5)
    assert reranker.score(QUERY, PASSAGES) == pytest.approx([sigmoid(x) for x in logits], abs=1e-6)
    ranked = reranker.rank(QUERY, PASSAGES, normalize=False, score_threshold=max(logits))
    assert [r.score for r in ranked] == pytest.approx([max(logits)])
    assert asyncio.run(reranker.ascore(QUERY, PASSAGES, normalize=False)) == logits


def test_pickle_round_trip(tiny_reranker_path: str) -> None:
    import pickle

    reranker = BGEReranker(tiny_reranker_path, device="cpu", max_length=64)
    expected = reranker.score(QUERY, [LONG])
    clone = pickle.loads(pickle.dumps(reranker))
    assert clone.score(QUERY, [LONG]) == expected
    assert REGISTRY.load_count == 1


def test_duplicates_are_scored_once_and_tie_exactly(tiny_reranker_path: str) -> None:
    reranker = BGEReranker(tiny_reranker_path, device="cpu", max_length=64, windows=False)
    with pytest.warns(TruncationWarning, match="2 of 4 passages"):
        scores = reranker.score(QUERY, [LONG, "b", LONG, "b"])
    assert scores[0] == scores[2]
    assert scores[1] == scores[3]
    assert scores[:2] == reranker.score(QUERY, [LONG, "b"])
    assert reranker.truncated_count == 3


class TestProgressBar:
    def test_bar_on_stderr_and_scores_unchanged(
        self, tiny_reranker_path: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # Several batches, and a long passage read as windows: the bar must not change a single score.
        passages = [f"passage {i} " * (i % 5 + 1) for i in range(19)] + [LONG, "passage 0 "]
        settings = {"device": "cpu", "batch_size": 4, "max_length": 64}
        quiet = BGEReranker(tiny_reranker_path, **settings)  # type: ignore[arg-type]
        loud = BGEReranker(tiny_reranker_path, show_progress_bar=True, **settings)  # type: ignore[arg-type]
        expected = quiet.score(QUERY, passages)
        capsys.readouterr()  # transformers' own bar while loading the weights
        assert quiet.score(QUERY, passages) == expected
        assert capsys.readouterr() == ("", "")
        assert loud.score(QUERY, passages) == expected
        out, err = capsys.readouterr()
        assert out == ""
        assert "Reranking" in err
        windows = len(quiet._loaded().pair_encoder(64, 48, 64).encode(QUERY, passages[:-1], windows=True).input_ids)
        assert f"0/{windows} " in err  # one step per (query, window) pair; the duplicate is scored once
        assert loud.rank(QUERY, passages, top_n=3) == quiet.rank(QUERY, passages, top_n=3)

    def test_not_part_of_what_is_loaded(self, tiny_reranker_path: str) -> None:
        quiet = BGEReranker(tiny_reranker_path, device="cpu")
        loud = BGEReranker(tiny_reranker_path, device="cpu", show_progress_bar=True)
        assert loud.load_key == quiet.load_key
        loud.score(QUERY, PASSAGES)
        quiet.score(QUERY, PASSAGES)
        assert REGISTRY.load_count == 1
        assert "show_progress_bar" not in loud.config.to_dict()
