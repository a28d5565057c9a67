"""Concurrent async calls share model calls, each caller gets exactly its own results."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from bge_integrations import BGEEmbedder
from bge_integrations.core.coalescing import Coalescer


def test_requests_merge_and_results_split_in_order() -> None:
    calls: list[list[int]] = []

    def run(key: str, items: list[int]) -> list[str]:
        calls.append(items)
        time.sleep(0.01)
        return [f"{key}{item}" for item in items]

    coalescer: Coalescer[str, int, str] = Coalescer(run)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(coalescer.submit("k", [i, i + 100]) for i in range(50)))

    results = asyncio.run(main())
    assert results == [[f"k{i}", f"k{i + 100}"] for i in range(50)]
    assert [len(items) for items in calls] == [100]


def test_keys_never_mix() -> None:
    def run(key: str, items: list[int]) -> list[str]:
        return [f"{key}{item}" for item in items]

    coalescer: Coalescer[str, int, str] = Coalescer(run)

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(coalescer.submit("ab"[i % 2], [i]) for i in range(10)))

    assert asyncio.run(main()) == [[f"{'ab'[i % 2]}{i}"] for i in range(10)]


def test_what_arrives_while_busy_goes_into_the_next_call() -> None:
    calls: list[int] = []
    started = threading.Event()

    def run(key: str, items: list[int]) -> list[int]:
        calls.append(len(items))
        started.set()
        time.sleep(0.05)
        return items

    coalescer: Coalescer[str, int, int] = Coalescer(run)

    async def main() -> list[list[int]]:
        first = asyncio.ensure_future(coalescer.submit("k", [0]))
        await asyncio.to_thread(started.wait)
        rest = [coalescer.submit("k", [i]) for i in range(1, 21)]
        return [await first, *await asyncio.gather(*rest)]

    assert asyncio.run(main()) == [[i] for i in range(21)]
    assert calls == [1, 20]


def test_max_items_caps_a_merged_call() -> None:
    calls: list[int] = []

    def run(key: str, items: list[int]) -> list[int]:
        calls.append(len(items))
        return items

    coalescer: Coalescer[str, int, int] = Coalescer(run, max_items=10)

    async def main() -> list[list[int]]:
        return await asyncio.gather(*(coalescer.submit("k", [i] * 4) for i in range(6)))

    assert asyncio.run(main()) == [[i] * 4 for i in range(6)]
    assert calls == [8, 8, 8]


def test_an_error_reaches_every_caller_of_that_call_and_the_queue_recovers() -> None:
    fail = {"on": True}

    def run(key: str, items: list[int]) -> list[int]:
        if fail["on"]:
            raise RuntimeError("model exploded")
        return items

    coalescer: Coalescer[str, int, int] = Coalescer(run)

    async def main() -> list[object]:
        return await asyncio.gather(*(coalescer.submit("k", [i]) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))
    fail["on"] = False
    assert asyncio.run(main()) == [[0], [1], [2]]


def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    def run(key: str, items: list[int]) -> list[int]:
        time.sleep(0.02)
        return items

    coalescer: Coalescer[str, int, int] = Coalescer(run)

    async def main() -> list[list[int]]:
        tasks = [asyncio.ensure_future(coalescer.submit("k", [i])) for i in range(5)]
        await asyncio.sleep(0)
        tasks[2].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        return [r for r in done if not isinstance(r, BaseException)]

    assert asyncio.run(main()) == [[0], [1], [3], [4]]


def test_works_across_event_loops() -> None:
    coalescer: Coalescer[str, int, int] = Coalescer(lambda key, items: items)
    for _ in range(3):
        assert asyncio.run(coalescer.submit("k", [1, 2])) == [1, 2]


def test_sixty_four_concurrent_queries_make_one_model_call(
    tiny_embedder_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")
    queries = [f"question number {i} about pandas" for i in range(64)]
    expected = np.array(embedder.embed_queries(queries))
    calls: list[int] = []
    embed = embedder._embed

    def counting(texts: list[str], instruction: str, *, query: bool) -> list[list[float]]:
        calls.append(len(texts))
        return embed(texts, instruction, query=query)

    monkeypatch.setattr(embedder, "_embed", counting)

    async def main() -> list[list[float]]:
        return await asyncio.gather(*(embedder.aembed_query(q) for q in queries))

    ours = asyncio.run(main())
    assert calls == [64]
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_documents_and_queries_are_not_merged(tiny_embedder_path: str) -> None:
    embedder = BGEEmbedder(tiny_embedder_path, device="cpu")

    async def main() -> tuple[list[float], list[list[float]]]:
        return await asyncio.gather(embedder.aembed_query("pandas"), embedder.aembed_documents(["pandas"]))

    query, documents = asyncio.run(main())
    np.testing.assert_allclose(query, embedder.embed_query("pandas"), atol=1e-6)
    np.testing.assert_allclose(documents[0], embedder.embed_documents(["pandas"])[0], atol=1e-6)
    assert not np.allclose(query, documents[0], atol=1e-3)  # the instruction made a difference


def test_concurrent_rerank_calls_share_one_model_run(tiny_reranker_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from bge_integrations import BGEReranker

    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    requests = [(f"question {i} about pandas", [f"passage {j} of {i}" for j in range(5)]) for i in range(8)]
    requests.append(("a duplicate-heavy one", ["same", "same", "other"]))
    expected = [reranker.score(query, documents) for query, documents in requests]
    expected_ranks = [reranker.rank(query, documents, top_n=2) for query, documents in requests]
    runs: list[int] = []
    logits = reranker._logits

    def counting(batch: list[tuple[str, list[str]]]) -> object:
        runs.append(len(batch))
        return logits(batch)

    monkeypatch.setattr(reranker, "_logits", counting)

    async def main() -> tuple[list[list[float]], list[object]]:
        scores = await asyncio.gather(*(reranker.ascore(q, d) for q, d in requests))
        ranks = await asyncio.gather(*(reranker.arank(q, d, top_n=2) for q, d in requests))
        return scores, ranks

    scores, ranks = asyncio.run(main())
    assert runs == [len(requests), len(requests)]
    for ours, theirs in zip(scores, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert scores[-1][0] == scores[-1][1]  # duplicates tie exactly
    assert [[item.index for item in r] for r in ranks] == [[item.index for item in r] for r in expected_ranks]


def test_rerank_async_scale_is_per_call(tiny_reranker_path: str) -> None:
    from bge_integrations import BGEReranker

    reranker = BGEReranker(tiny_reranker_path, device="cpu")
    documents = ["pandas eat bamboo", "Paris is in France"]

    async def main() -> tuple[list[float], list[float]]:
        return await asyncio.gather(
            reranker.ascore("pandas", documents), reranker.ascore("pandas", documents, normalize=False)
        )

    sigmoid, logits = asyncio.run(main())
    np.testing.assert_allclose(sigmoid, 1 / (1 + np.exp(-np.array(logits))), atol=1e-6)
