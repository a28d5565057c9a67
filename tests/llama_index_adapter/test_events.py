"""Instrumentation events and legacy callbacks around reranking (as SentenceTransformerRerank emits)."""

from __future__ import annotations

import pytest
from llama_index.core.callbacks import CallbackManager, CBEventType, EventPayload, LlamaDebugHandler
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.schema import QueryBundle

from bge_integrations.llama_index import BGERerank
from tests.llama_index_adapter.conftest import QUERY, Recorder, scored_nodes


def test_start_and_end_events(rerank: BGERerank, recorder: Recorder, tiny_reranker_path: str) -> None:
    nodes = scored_nodes()
    bundle = QueryBundle(QUERY)
    out = rerank.postprocess_nodes(nodes, query_bundle=bundle)
    (start,), (end,) = recorder.of(ReRankStartEvent), recorder.of(ReRankEndEvent)
    assert start.query is bundle
    assert start.nodes == nodes
    assert start.top_n == 3
    assert start.model_name == tiny_reranker_path
    assert end.nodes == out
    assert recorder.events.index(start) < recorder.events.index(end)
    assert start.span_id == end.span_id is not None


async def test_async_start_and_end_events(rerank: BGERerank, recorder: Recorder) -> None:
    nodes = scored_nodes()
    out = await rerank.apostprocess_nodes(nodes, query_str=QUERY)
    (start,), (end,) = recorder.of(ReRankStartEvent), recorder.of(ReRankEndEvent)
    assert start.query.query_str == QUERY
    assert start.nodes == nodes
    assert end.nodes == out


def test_top_n_none_reports_every_node(tiny_reranker_path: str, recorder: Recorder) -> None:
    BGERerank(model=tiny_reranker_path, top_n=None).postprocess_nodes(scored_nodes(), query_str=QUERY)
    (start,) = recorder.of(ReRankStartEvent)
    assert start.top_n == len(scored_nodes())


def test_empty_input_still_pairs_start_and_end(rerank: BGERerank, recorder: Recorder) -> None:
    rerank.postprocess_nodes([], query_str=QUERY)
    assert [type(e) for e in recorder.events if isinstance(e, (ReRankStartEvent, ReRankEndEvent))] == [
        ReRankStartEvent,
        ReRankEndEvent,
    ]
    assert recorder.of(ReRankEndEvent)[0].nodes == []


def test_no_query_emits_no_rerank_event(rerank: BGERerank, recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="query_bundle=None"):
        rerank.postprocess_nodes(scored_nodes())
    assert recorder.of(ReRankStartEvent) == []


def test_legacy_reranking_callback(tiny_reranker_path: str) -> None:
    debug = LlamaDebugHandler()
    rerank = BGERerank(model=tiny_reranker_path, top_n=2, callback_manager=CallbackManager([debug]))
    nodes = scored_nodes()
    out = rerank.postprocess_nodes(nodes, query_str=QUERY)
    ((start, end),) = debug.get_event_pairs(CBEventType.RERANKING)
    assert start.payload[EventPayload.NODES] == nodes
    assert start.payload[EventPayload.QUERY_STR] == QUERY
    assert start.payload[EventPayload.MODEL_NAME] == tiny_reranker_path
    assert start.payload[EventPayload.TOP_K] == 2
    assert end.payload[EventPayload.NODES] == out


def test_callback_manager_none_means_no_callbacks(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model=tiny_reranker_path, callback_manager=None)
    assert isinstance(rerank.callback_manager, CallbackManager)
    assert len(rerank.postprocess_nodes(scored_nodes(), query_str=QUERY)) == 2
