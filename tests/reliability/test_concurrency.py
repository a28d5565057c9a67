"""Concurrency: many threads and coroutines on ONE embedder and ONE reranker give sequential results.

Every test starts cold (the conftest empties the model registry), so the first calls of a
workload also race on loading the model and on the tokenizer's first use. Each workload runs in
a watchdog thread: a deadlock fails the test after ``DEADLINE`` seconds instead of hanging CI.

Tolerance: a call's inputs share a forward pass with whatever other calls ran at the same time
(the async coalescer merges requests), so a text is padded to other widths than in the sequential
run and fp32 sums round differently. Measured: threads match exactly (each call is its own batch),
merged async calls differ by up to 4.2e-7; ``TOLERANCE`` is 2e-6, far below what separates
different texts (99% of pairs: >0.1 for vectors, >1e-3 for scores).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import random
import resource
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pytest

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core import coalescing
from bge_integrations.core.coalescing import Coalescer
from bge_integrations.core.loading import REGISTRY
from tests.reliability.watchdog import bounded
from tests.tiny_models import CORPUS

pytestmark = pytest.mark.filterwarnings("ignore::bge_integrations.core.notices.TruncationWarning")

TOLERANCE = 2e-6
"""Largest difference allowed between a concurrent and the sequential result (see the module docstring)."""
DEADLINE = 120.0
"""Seconds a workload may take before the test calls it a deadlock (the workloads take a few)."""
CALLS = 2000
"""Calls per workload."""
THREADS = 16

Kind = Literal["embed_queries", "embed_documents", "score", "rank"]


@dataclass(frozen=True)
class Call:
    kind: Kind
    query: str
    texts: tuple[str, ...]


def _workload(seed: int = 7, calls: int = CALLS) -> list[Call]:
    """About 160 distinct calls (1-5 texts each, some duplicated, some past the windows), repeated."""
    rng = random.Random(seed)
    words = sorted({word for line in CORPUS for word in line.split()})
    texts = [*CORPUS, ""]
    texts += [" ".join(rng.choices(words, k=rng.randint(2, 12))) for _ in range(40)]
    texts += [" ".join(rng.choices(words, k=rng.randint(40, 90))) for _ in range(8)]  # over both windows
    queries = [" ".join(rng.choices(words, k=rng.randint(1, 6))) for _ in range(10)]
    kinds: tuple[Kind, ...] = ("embed_queries", "embed_documents", "score", "rank")
    distinct = [
        Call(kind, rng.choice(queries), tuple(rng.choices(texts, k=rng.randint(1, 5))))
        for kind in kinds
        for _ in range(40)
    ]
    return [rng.choice(distinct) for _ in range(calls)]


WORKLOAD = _workload()


@pytest.fixture(scope="module")
def engines(tiny_st_embedder_path: str, tiny_reranker_path: str) -> tuple[BGEEmbedder, BGEReranker]:
    """One embedder and one reranker (with windows: long passages span several) for a whole module."""
    embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu", max_length=64, batch_size=8)
    reranker = BGEReranker(
        tiny_reranker_path, device="cpu", max_length=48, max_query_length=16, window_overlap=8, batch_size=8
    )
    return embedder, reranker


@pytest.fixture(scope="module")
def sequential(engines: tuple[BGEEmbedder, BGEReranker]) -> dict[Call, Any]:
    """The result of each distinct call, run alone, one after another."""
    return {call: _call(engines, call) for call in dict.fromkeys(WORKLOAD)}


def _call(engines: tuple[BGEEmbedder, BGEReranker], call: Call) -> Any:
    embedder, reranker = engines
    texts = list(call.texts)
    if call.kind == "embed_queries":
        return embedder.embed_queries(texts)
    if call.kind == "embed_documents":
        return embedder.embed_documents(texts)
    if call.kind == "score":
        return reranker.score(call.query, texts)
    return [(item.index, item.score) for item in reranker.rank(call.query, texts)]


async def _acall(engines: tuple[BGEEmbedder, BGEReranker], call: Call) -> Any:
    embedder, reranker = engines
    texts = list(call.texts)
    if call.kind == "embed_queries":
        return [await embedder.aembed_query(texts[0])] if len(texts) == 1 else await embedder.aembed_queries(texts)
    if call.kind == "embed_documents":
        return await embedder.aembed_documents(texts)
    if call.kind == "score":
        return await reranker.ascore(call.query, texts)
    return [(item.index, item.score) for item in await reranker.arank(call.query, texts)]


async def _agather(engines: tuple[BGEEmbedder, BGEReranker], calls: Sequence[Call]) -> list[Any]:
    return await asyncio.gather(*(_acall(engines, call) for call in calls))


def _threaded(engines: tuple[BGEEmbedder, BGEReranker], calls: Sequence[Call], workers: int = THREADS) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda call: _call(engines, call), calls))


def _largest_gap(calls: Sequence[Call], results: Sequence[Any], sequential: dict[Call, Any]) -> float:
    """Check each result against the sequential one; return the largest difference seen."""
    assert len(results) == len(calls)
    largest = 0.0
    for call, got in zip(calls, results, strict=True):
        want = sequential[call]
        assert len(got) == len(want) == len(call.texts), call
        if call.kind == "rank":
            assert [index for index, _ in got] == [index for index, _ in want] or _near_tie(want), call
            assert sorted(index for index, _ in got) == list(range(len(call.texts)))
            got, want = dict(got), dict(want)
            got, want = [got[i] for i in sorted(got)], [want[i] for i in sorted(want)]
        gap = float(np.abs(np.array(got, dtype=np.float64) - np.array(want, dtype=np.float64)).max())
        assert gap <= TOLERANCE, f"{call.kind} differs from the sequential result by {gap:.2e}: {call}"
        largest = max(largest, gap)
    return largest


def _near_tie(ranked: list[tuple[int, float]]) -> bool:
    """Whether two different scores are close enough (< TOLERANCE) that their order may flip."""
    scores = [score for _, score in ranked]
    return any(0 < a - b <= TOLERANCE for a, b in itertools.pairwise(scores))


def _assert_queues_drained(engines: tuple[BGEEmbedder, BGEReranker]) -> None:
    for engine in engines:
        assert engine._coalescer._queues == {}, f"{type(engine).__name__} left requests queued"
    gc.collect()
    stranded = [obj for obj in gc.get_objects() if type(obj) in (coalescing._Request, coalescing._Queue)]
    assert stranded == [], f"{len(stranded)} coalescer requests or queues outlived the load"


def test_threads_give_the_sequential_results(
    engines: tuple[BGEEmbedder, BGEReranker], sequential: dict[Call, Any]
) -> None:
    started = time.perf_counter()
    results = bounded(lambda: _threaded(engines, WORKLOAD), seconds=DEADLINE)
    gap = _largest_gap(WORKLOAD, results, sequential)
    print(f"{CALLS} calls in {THREADS} threads: {time.perf_counter() - started:.1f} s, largest gap {gap:.1e}")
    assert REGISTRY.load_count == 2  # one embedder and one reranker, loaded once though 16 threads asked


def test_coroutines_give_the_sequential_results(
    engines: tuple[BGEEmbedder, BGEReranker], sequential: dict[Call, Any]
) -> None:
    started = time.perf_counter()
    results = bounded(lambda: asyncio.run(_agather(engines, WORKLOAD)), seconds=DEADLINE)
    gap = _largest_gap(WORKLOAD, results, sequential)
    print(f"{CALLS} coroutines: {time.perf_counter() - started:.1f} s, largest gap {gap:.1e}")
    _assert_queues_drained(engines)


def test_several_event_loops_and_threads_at_once(
    engines: tuple[BGEEmbedder, BGEReranker], sequential: dict[Call, Any]
) -> None:
    """Three event loops (each with its own coalescer queues) and a thread pool, all at the same time."""
    parts = [WORKLOAD[i::4] for i in range(4)]
    start = threading.Barrier(4)

    def in_loop(calls: list[Call]) -> list[Any]:
        start.wait()
        return asyncio.run(_agather(engines, calls))

    def in_threads(calls: list[Call]) -> list[Any]:
        start.wait()
        return _threaded(engines, calls, workers=4)

    def everything() -> list[list[Any]]:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(in_loop, part) for part in parts[:3]]
            futures.append(pool.submit(in_threads, parts[3]))
            return [future.result() for future in futures]

    started = time.perf_counter()
    results = bounded(everything, seconds=DEADLINE)
    gap = max(_largest_gap(part, result, sequential) for part, result in zip(parts, results, strict=True))
    print(f"3 loops + 4 threads, {CALLS} calls: {time.perf_counter() - started:.1f} s, largest gap {gap:.1e}")
    _assert_queues_drained(engines)


def _rss_bytes() -> int:
    """Resident memory now (Linux), else the peak so far."""
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def test_memory_stays_flat_over_repeated_loads(
    engines: tuple[BGEEmbedder, BGEReranker], sequential: dict[Call, Any]
) -> None:
    """After a warm-up round, more rounds of the same load leave no object behind and little memory.

    Python objects are counted exactly (measured: +0 per round). Resident memory still grows a
    little while the allocator's per-thread arenas settle (measured +2 to +12 MiB a round, shrinking
    round after round, and flat with ``MALLOC_ARENA_MAX=1``), so it gets a coarse bound only.
    """
    calls = WORKLOAD[:500]

    def one_round() -> None:
        _largest_gap(calls, bounded(lambda: asyncio.run(_agather(engines, calls)), seconds=DEADLINE), sequential)
        _largest_gap(calls, bounded(lambda: _threaded(engines, calls), seconds=DEADLINE), sequential)

    one_round()
    gc.collect()
    objects, rss = len(gc.get_objects()), _rss_bytes()
    for _ in range(2):
        one_round()
    gc.collect()
    grown_objects, grown_rss = len(gc.get_objects()) - objects, _rss_bytes() - rss
    print(f"2 more rounds of {2 * len(calls)} calls: {grown_objects:+d} objects, {grown_rss / 2**20:+.1f} MiB")
    assert grown_objects < 100, "objects pile up with each call"  # one per call would be +2000
    assert grown_rss < 64 * 2**20
    _assert_queues_drained(engines)


def test_adapters_share_the_coalesced_path(tiny_st_embedder_path: str, tiny_reranker_path: str) -> None:
    """LangChain's aembed_query and Haystack's run_async, at once: merged model calls, sequential results."""
    pytest.importorskip("langchain_core")
    pytest.importorskip("haystack")
    from haystack import Document

    from bge_integrations.haystack import BGERanker
    from bge_integrations.langchain import BGEEmbeddings

    embeddings = BGEEmbeddings(model_name=tiny_st_embedder_path, device="cpu")
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", top_k=3)
    queries = [f"{word} and pandas" for word in sorted({w for line in CORPUS for w in line.split()})][:100]
    documents = [Document(content=text) for text in CORPUS]
    expected_vectors = [embeddings.embed_query(query) for query in queries]
    expected_ranks = [ranker.run(query=query, documents=documents)["documents"] for query in queries[:40]]
    merged: dict[str, list[int]] = {"embedder": [], "ranker": []}
    for name, coalescer in (("embedder", embeddings.client._coalescer), ("ranker", ranker.reranker._coalescer)):
        run = coalescer._run

        def counting(key: Any, items: list[Any], run: Callable[..., Any] = run, calls: list[int] = merged[name]) -> Any:
            calls.append(len(items))
            return run(key, items)

        coalescer._run = counting

    async def main() -> tuple[list[list[float]], list[dict[str, list[Document]]]]:
        vectors = asyncio.gather(*(embeddings.aembed_query(query) for query in queries))
        ranks = asyncio.gather(*(ranker.run_async(query=query, documents=documents) for query in queries[:40]))
        return await vectors, await ranks

    vectors, ranks = bounded(lambda: asyncio.run(main()), seconds=DEADLINE)
    np.testing.assert_allclose(vectors, expected_vectors, atol=TOLERANCE)
    for got, want in zip(ranks, expected_ranks, strict=True):
        assert [doc.id for doc in got["documents"]] == [doc.id for doc in want]
        got_scores = np.array([doc.score for doc in got["documents"]], dtype=np.float64)
        assert not np.isnan(got_scores).any()  # every document got a score (None becomes nan)
        np.testing.assert_allclose(got_scores, np.array([doc.score for doc in want], dtype=np.float64), atol=TOLERANCE)
    assert sum(merged["embedder"]) == len(queries)
    assert len(merged["embedder"]) < len(queries) / 4
    assert sum(merged["ranker"]) == 40
    assert len(merged["ranker"]) < 40 / 4


def test_cold_start_from_many_threads_at_once(engines: tuple[BGEEmbedder, BGEReranker]) -> None:
    """16 threads hit a model that is not loaded yet, at the same instant, a few times over."""
    embedder, reranker = engines
    texts = [line for line in CORPUS if line]
    expected = (embedder.embed_documents(texts), embedder.embed_queries(texts), reranker.score("pandas", texts))
    for _ in range(3):
        REGISTRY.clear()
        fresh = (
            BGEEmbedder(embedder.model_name, device="cpu", max_length=64, batch_size=8),
            BGEReranker(
                reranker.model_name, device="cpu", max_length=48, max_query_length=16, window_overlap=8, batch_size=8
            ),
        )
        start = threading.Barrier(THREADS)

        def at_once(index: int, fresh: tuple[BGEEmbedder, BGEReranker] = fresh, start: Any = start) -> Any:
            start.wait()
            if index % 3 == 0:
                return fresh[0].embed_documents(texts)
            if index % 3 == 1:
                return fresh[0].embed_queries(texts)
            return fresh[1].score("pandas", texts)

        def all_at_once() -> list[Any]:
            with ThreadPoolExecutor(THREADS) as pool:
                return list(pool.map(at_once, range(THREADS)))

        for index, result in enumerate(bounded(all_at_once, seconds=60)):
            np.testing.assert_allclose(result, expected[index % 3], atol=TOLERANCE)


# --- the coalescer when its worker task is cancelled ---------------------------------------------


def _slow(seconds: float) -> Callable[[str, list[int]], list[int]]:
    def run(key: str, items: list[int]) -> list[int]:
        time.sleep(seconds)
        return items

    return run


def test_a_loop_that_ends_mid_call_leaves_no_queue_behind() -> None:
    coalescer: Coalescer[str, int, int] = Coalescer(_slow(0.05))
    for _ in range(5):
        with contextlib.suppress(asyncio.TimeoutError):
            bounded(lambda: asyncio.run(asyncio.wait_for(coalescer.submit("k", [1]), 0.005)), seconds=10)
    assert coalescer._queues == {}


def test_a_cancelled_worker_strands_no_caller() -> None:
    coalescer: Coalescer[str, int, int] = Coalescer(_slow(0.2))

    async def main() -> list[int]:
        first = asyncio.ensure_future(coalescer.submit("k", [1]))
        while not coalescer._queues or not coalescer._queues[next(iter(coalescer._queues))].worker:
            await asyncio.sleep(0.001)
        worker = coalescer._queues[next(iter(coalescer._queues))].worker
        assert worker is not None
        await asyncio.sleep(0.02)  # the worker is now inside the model call
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(first, 1)  # a result or a cancellation, but an answer
        return await asyncio.wait_for(coalescer.submit("k", [2]), 1)

    assert bounded(lambda: asyncio.run(main()), seconds=20) == [2]
