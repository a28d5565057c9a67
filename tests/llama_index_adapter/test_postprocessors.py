"""BGERerank against the core BGEReranker it wraps."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

from bge_integrations import BGEReranker, TruncationWarning
from bge_integrations.core.loading import REGISTRY
from bge_integrations.llama_index import RETRIEVAL_SCORE_KEY, BGERerank
from tests.llama_index_adapter.conftest import PASSAGES, QUERY, scored_nodes

LONG = "The quick brown fox jumps over the lazy dog. " * 60 + "The giant panda lives in China."


def texts_of(nodes: list[NodeWithScore]) -> list[str]:
    return [node.node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]


class TestScores:
    def test_scores_and_order_equal_the_core(self, rerank: BGERerank, tiny_reranker_path: str) -> None:
        nodes = scored_nodes()
        expected = BGEReranker(tiny_reranker_path, device="cpu").rank(QUERY, texts_of(nodes), top_n=3)
        out = rerank.postprocess_nodes(nodes, query_str=QUERY)
        assert [(n.node.node_id, n.score) for n in out] == [(f"n{item.index}", item.score) for item in expected]

    def test_node_text_includes_embed_metadata(self, rerank: BGERerank, tiny_reranker_path: str) -> None:
        node = TextNode(text=PASSAGES[0], metadata={"title": "Pandas", "secret": "x"})
        node.excluded_embed_metadata_keys = ["secret"]
        (out,) = rerank.postprocess_nodes([NodeWithScore(node=node, score=0.5)], query_str=QUERY)
        core = BGEReranker(tiny_reranker_path, device="cpu")
        assert out.score == core.score(QUERY, ["title: Pandas\n\n" + PASSAGES[0]])[0]
        assert out.score != core.score(QUERY, [PASSAGES[0]])[0]

    def test_query_bundle_is_read(self, rerank: BGERerank) -> None:
        by_str = rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        by_bundle = rerank.postprocess_nodes(scored_nodes(), query_bundle=QueryBundle(QUERY))
        assert [(n.node.node_id, n.score) for n in by_str] == [(n.node.node_id, n.score) for n in by_bundle]

    def test_top_n_none_keeps_all(self, tiny_reranker_path: str) -> None:
        out = BGERerank(model=tiny_reranker_path, top_n=None).postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert sorted(n.node.node_id for n in out) == [f"n{i}" for i in range(len(PASSAGES))]

    def test_default_top_n_is_two_like_sentence_transformer_rerank(self, tiny_reranker_path: str) -> None:
        assert len(BGERerank(model=tiny_reranker_path).postprocess_nodes(scored_nodes(), query_str=QUERY)) == 2

    def test_score_threshold(self, tiny_reranker_path: str) -> None:
        everything = BGERerank(model=tiny_reranker_path, top_n=None).postprocess_nodes(scored_nodes(), query_str=QUERY)
        middle = sorted(n.score for n in everything)[2]
        kept = BGERerank(model=tiny_reranker_path, top_n=None, score_threshold=middle)
        assert [n.score for n in kept.postprocess_nodes(scored_nodes(), query_str=QUERY)] == [
            n.score for n in everything if n.score >= middle
        ]

    def test_raw_logits(self, tiny_reranker_path: str) -> None:
        logits = BGERerank(model=tiny_reranker_path, top_n=None, normalize=False)
        out = logits.postprocess_nodes(scored_nodes(), query_str=QUERY)
        core = BGEReranker(tiny_reranker_path, normalize=False).score(QUERY, texts_of(scored_nodes()))
        assert sorted(n.score for n in out) == sorted(core)

    @pytest.mark.filterwarnings("ignore::bge_integrations.TruncationWarning")
    @pytest.mark.parametrize("windows", [True, False])
    def test_long_passages_read_by_windows(self, tiny_reranker_path: str, windows: bool) -> None:
        nodes = scored_nodes([LONG, PASSAGES[1]])
        rerank = BGERerank(model=tiny_reranker_path, top_n=None, windows=windows, max_length=64)
        core = BGEReranker(tiny_reranker_path, windows=windows, max_length=64)
        out = {n.node.node_id: n.score for n in rerank.postprocess_nodes(nodes, query_str=QUERY)}
        assert [out["n0"], out["n1"]] == core.score(QUERY, texts_of(nodes))

    def test_only_windows_false_truncates(self, tiny_reranker_path: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", TruncationWarning)
            BGERerank(model=tiny_reranker_path, max_length=64).postprocess_nodes(scored_nodes([LONG]), query_str=QUERY)
        cut = BGERerank(model=tiny_reranker_path, max_length=64, windows=False)
        with pytest.warns(TruncationWarning, match="windows=False"):
            cut.postprocess_nodes(scored_nodes([LONG]), query_str=QUERY)
        assert cut.core.truncated_count == 1


class TestNodes:
    def test_retrieval_score_kept_in_a_copy(self, rerank: BGERerank) -> None:
        nodes = scored_nodes()
        out = rerank.postprocess_nodes(nodes, query_str=QUERY)
        originals = {n.node.node_id: n for n in nodes}
        for result in out:
            original = originals[result.node.node_id]
            assert result.node.metadata == {**original.node.metadata, RETRIEVAL_SCORE_KEY: original.score}
            assert result.node is not original.node
            assert result.node.get_content() == original.node.get_content()
            assert RETRIEVAL_SCORE_KEY not in original.node.metadata

    def test_retrieval_score_hidden_from_llm_and_embedder(self, rerank: BGERerank) -> None:
        (best, *_) = rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert RETRIEVAL_SCORE_KEY in best.node.get_content(metadata_mode=MetadataMode.ALL)
        assert RETRIEVAL_SCORE_KEY not in best.node.get_content(metadata_mode=MetadataMode.LLM)
        assert RETRIEVAL_SCORE_KEY not in best.node.get_content(metadata_mode=MetadataMode.EMBED)

    def test_reranking_twice_keeps_one_key(self, rerank: BGERerank) -> None:
        once = rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        twice = rerank.postprocess_nodes(once, query_str=QUERY)
        # Different batch compositions may differ in the last float bits, hence approx.
        assert [n.score for n in twice] == pytest.approx([n.score for n in once], abs=1e-6)
        assert all(n.node.excluded_llm_metadata_keys.count(RETRIEVAL_SCORE_KEY) == 1 for n in twice)
        assert [n.node.metadata[RETRIEVAL_SCORE_KEY] for n in twice] == [n.score for n in once]

    def test_keep_retrieval_score_off(self, tiny_reranker_path: str) -> None:
        nodes = scored_nodes()
        out = BGERerank(model=tiny_reranker_path, keep_retrieval_score=False).postprocess_nodes(nodes, query_str=QUERY)
        assert all(RETRIEVAL_SCORE_KEY not in n.node.metadata for n in out)

    def test_node_without_score(self, rerank: BGERerank) -> None:
        (out,) = rerank.postprocess_nodes([NodeWithScore(node=TextNode(text=PASSAGES[0]))], query_str=QUERY)
        assert out.node.metadata[RETRIEVAL_SCORE_KEY] is None
        assert isinstance(out.score, float)


class TestAsyncAndErrors:
    async def test_async_runs_off_the_event_loop(self, rerank: BGERerank, monkeypatch: pytest.MonkeyPatch) -> None:
        threads: list[int] = []
        original = BGEReranker._logits

        def spy(self: BGEReranker, requests: list[tuple[str, list[str]]]) -> Any:
            threads.append(threading.get_ident())
            return original(self, requests)

        monkeypatch.setattr(BGEReranker, "_logits", spy)
        await rerank.apostprocess_nodes(scored_nodes(), query_str=QUERY)
        assert len(threads) == 1
        assert threads[0] != threading.get_ident()

    async def test_async_without_query_is_an_error(self, rerank: BGERerank) -> None:
        with pytest.raises(ValueError, match="query_bundle=None"):
            await rerank.apostprocess_nodes(scored_nodes())

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"top_n": 0}, "top_n"),
            ({"batch_size": 0}, "batch_size"),
            ({"aggregation": "sum"}, "sum"),
            ({"window_overlap": -1}, "window_overlap"),
            ({"model": ""}, "model must be a hub id or a local path, got ''"),
            ({"model": "  "}, "model must be a hub id or a local path"),
            ({"score_threshold": float("nan")}, "score_threshold"),
            ({"max_windows": 0}, "max_windows"),
            ({"topn": 3}, "topn"),
        ],
    )
    def test_bad_settings_are_named(self, tiny_reranker_path: str, kwargs: dict[str, Any], match: str) -> None:
        params: dict[str, Any] = {"model": tiny_reranker_path, **kwargs}
        with pytest.raises(ValueError, match=match):
            BGERerank(**params)

    def test_changed_field_rebuilds_the_core(self, rerank: BGERerank) -> None:
        sigmoid = rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        rerank.normalize = False
        logits = rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)
        assert [n.node.node_id for n in logits] == [n.node.node_id for n in sigmoid]
        assert [n.score for n in logits] != [n.score for n in sigmoid]
        assert REGISTRY.load_count == 1


def test_impossible_window_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="max_query_length must be < max_length=64, got 64"):
        BGERerank(model="BAAI/bge-reranker-base", max_length=64, max_query_length=64)


def test_model_may_be_given_positionally_and_max_windows_reaches_the_core(tiny_reranker_path: str) -> None:
    rerank = BGERerank(tiny_reranker_path, device="cpu", max_windows=2, top_n=3)
    assert (rerank.model, rerank.core.config.max_windows) == (tiny_reranker_path, 2)
    again = BGERerank.from_dict(rerank.to_dict())
    assert (again.model, again.max_windows, again.top_n) == (tiny_reranker_path, 2, 3)
    assert BGERerank().model == "BAAI/bge-reranker-base"
