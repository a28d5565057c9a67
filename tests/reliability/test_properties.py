"""Properties: for any list of inputs, every output lines up with its input, whatever the batch size.

Inputs go through length sorting, de-duplication, the persistent cache, passage windowing and
batching (and the async coalescer) before the model sees them; each step reorders or merges.
Hypothesis draws input lists (duplicates, empty strings, any Unicode, texts longer than the
window) and settings, and checks that output ``i`` is what input ``i`` gets when it is embedded or
scored alone. The model-backed properties run on the tiny random-weight models of
``tests/tiny_models.py``; the pure steps run directly with many more examples.

Tolerance: a text embedded (or scored) alone and the same text in a padded batch go through
differently shaped matrix products, so fp32 sums are rounded in a different order. Over 150
examples of each model property the largest difference measured was 3.3e-7 (vectors) and 4.2e-7
(scores); ``TOLERANCE`` is 2e-6, while 99% of pairs of different texts are more than 0.1 apart
(vectors) or 1e-3 apart (scores). Duplicates and cache hits are compared exactly.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import random
import tempfile
import time
import warnings
from functools import cache
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from bge_integrations import BGEEmbedder, BGEReranker
from bge_integrations.core.batching import BatchRunner, plan_batches
from bge_integrations.core.cache import EmbeddingCache
from bge_integrations.core.coalescing import Coalescer
from bge_integrations.core.dedup import deduplicate
from bge_integrations.core.embedding_model import LoadedEmbedder
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.pairs import PairEncoder
from bge_integrations.core.reranker import _aggregate
from tests.reliability.watchdog import bounded
from tests.tiny_models import CORPUS

pytestmark = pytest.mark.filterwarnings(
    "ignore::bge_integrations.core.notices.TruncationWarning", "ignore::ResourceWarning"
)

TOLERANCE = 2e-6
"""Largest difference allowed between a text's output in a batch and alone (see the module docstring)."""
EMBED_WINDOW = 32
"""Tokens the embedder reads in these tests: long texts are cut, cheaply."""
RERANK_WINDOW, RERANK_QUERY, RERANK_OVERLAP = 40, 12, 6
"""The reranker's window, query share and window overlap here: a 60-word passage makes several windows."""

_CI = bool(os.environ.get("CI"))
MODEL = settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=_CI,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
"""Model-backed properties: each example runs the model a few times."""
PURE = settings(max_examples=300, deadline=None, database=None, derandomize=_CI)
"""Pure-Python steps: cheap, so many examples."""

WORDS = sorted({word for line in CORPUS for word in line.split()})
word = st.sampled_from(WORDS)
short_prose = st.lists(word, min_size=1, max_size=10).map(" ".join)
long_prose = st.lists(word, min_size=30, max_size=70).map(" ".join)
"""Longer than both windows: truncated by the embedder, split into windows by the reranker."""
any_unicode = st.text(st.characters(codec="utf-8"), max_size=30)
text = st.one_of(st.just(""), st.sampled_from(CORPUS), short_prose, long_prose, any_unicode)


@st.composite
def text_lists(draw: st.DrawFn, max_size: int = 20) -> list[str]:
    """Lists of texts, often drawn from a small pool so that duplicates are common."""
    if draw(st.booleans()):
        return draw(st.lists(text, max_size=max_size))
    pool = draw(st.lists(text, min_size=1, max_size=5))
    return draw(st.lists(st.sampled_from(pool), max_size=max_size))


# --- model-backed properties ------------------------------------------------------------------


@cache
def _reference_embedder(path: str) -> BGEEmbedder:
    return BGEEmbedder(path, device="cpu", max_length=EMBED_WINDOW, batch_size=1)


@cache
def _embedded_alone(path: str, role: str, text: str) -> tuple[float, ...]:
    embedder = _reference_embedder(path)
    vectors = embedder.embed_queries([text]) if role == "query" else embedder.embed_documents([text])
    return tuple(vectors[0])


@cache
def _reference_reranker(path: str) -> BGEReranker:
    return BGEReranker(
        path,
        device="cpu",
        max_length=RERANK_WINDOW,
        max_query_length=RERANK_QUERY,
        window_overlap=RERANK_OVERLAP,
        batch_size=1,
    )


@cache
def _scored_alone(path: str, query: str, passage: str) -> float:
    return _reference_reranker(path).score(query, [passage])[0]


def _embed(embedder: BGEEmbedder, role: str, texts: list[str]) -> list[list[float]]:
    return embedder.embed_queries(texts) if role == "query" else embedder.embed_documents(texts)


def _assert_aligned(path: str, role: str, texts: list[str], vectors: list[list[float]]) -> None:
    """Output i is input i's vector alone (within TOLERANCE), and equal inputs got equal outputs."""
    assert len(vectors) == len(texts)
    seen: dict[str, list[float]] = {}
    for index, (item, vector) in enumerate(zip(texts, vectors, strict=True)):
        assert all(isinstance(value, float) for value in vector)
        alone = np.array(_embedded_alone(path, role, item))
        gap = float(np.abs(np.array(vector) - alone).max())
        assert gap <= TOLERANCE, f"{role} {index} ({item[:40]!r}) is {gap:.2e} from its vector alone"
        assert vector == seen.setdefault(item, vector), f"duplicate {item[:40]!r} got a different vector"


@MODEL
@given(
    texts=text_lists(),
    batch_size=st.integers(1, 9),
    max_batch_tokens=st.none() | st.integers(1, 300),
)
def test_embedder_outputs_align_for_any_batching(
    tiny_st_embedder_path: str, texts: list[str], batch_size: int, max_batch_tokens: int | None
) -> None:
    embedder = BGEEmbedder(
        tiny_st_embedder_path,
        device="cpu",
        max_length=EMBED_WINDOW,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )
    for role in ("document", "query"):
        _assert_aligned(tiny_st_embedder_path, role, texts, _embed(embedder, role, texts))


@pytest.fixture(scope="module")
def cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for every example: later examples mix hits (earlier texts) and misses."""
    return tmp_path_factory.mktemp("property-cache")


@MODEL
@given(texts=text_lists(), batch_size=st.integers(1, 9))
def test_cached_vectors_align_and_come_back_identical(
    tiny_st_embedder_path: str, cache_folder: Path, texts: list[str], batch_size: int
) -> None:
    embedder = BGEEmbedder(
        tiny_st_embedder_path, device="cpu", max_length=EMBED_WINDOW, batch_size=batch_size, cache_dir=cache_folder
    )
    first = {role: _embed(embedder, role, texts) for role in ("document", "query")}
    for role, vectors in first.items():
        _assert_aligned(tiny_st_embedder_path, role, texts, vectors)  # queries never read documents' rows
    model_called = AssertionError("a text embedded before reached the model instead of the cache")
    with mock.patch.object(LoadedEmbedder, "embed", side_effect=model_called):
        for role, vectors in first.items():
            assert _embed(embedder, role, texts) == vectors


@MODEL
@given(texts=st.lists(text, min_size=1, max_size=8))
def test_own_tokenisation_equals_sentence_transformers_encode(tiny_st_embedder_path: str, texts: list[str]) -> None:
    """The fast path (tokenise once, batch by tokens) gives what sentence-transformers' encode gives."""
    embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu", max_length=EMBED_WINDOW)
    pipeline = embedder._loaded().model
    for role, theirs in (("document", pipeline.encode_document), ("query", pipeline.encode_query)):
        expected = theirs(texts, convert_to_numpy=True, batch_size=len(texts), show_progress_bar=False)
        np.testing.assert_allclose(_embed(embedder, role, texts), expected, atol=TOLERANCE, err_msg=role)


def test_roles_differ_so_the_role_checks_have_teeth(tiny_st_embedder_path: str) -> None:
    query = np.array(_embedded_alone(tiny_st_embedder_path, "query", "pandas"))
    document = np.array(_embedded_alone(tiny_st_embedder_path, "document", "pandas"))
    assert np.abs(query - document).max() > 100 * TOLERANCE
    as_document = np.array(_embedded_alone(tiny_st_embedder_path, "document", EN_QUERY_INSTRUCTION + "pandas"))
    np.testing.assert_allclose(query, as_document, atol=TOLERANCE)  # a query is its instruction + text


@MODEL
@given(
    query=st.one_of(short_prose, any_unicode, long_prose),
    passages=text_lists(max_size=12),
    batch_size=st.integers(1, 9),
)
def test_reranker_scores_align_for_any_batching_with_windows(
    tiny_reranker_path: str, query: str, passages: list[str], batch_size: int
) -> None:
    reranker = BGEReranker(
        tiny_reranker_path,
        device="cpu",
        max_length=RERANK_WINDOW,
        max_query_length=RERANK_QUERY,
        window_overlap=RERANK_OVERLAP,
        batch_size=batch_size,
    )
    scores = reranker.score(query, passages)
    assert len(scores) == len(passages)
    seen: dict[str, float] = {}
    for index, (passage, score) in enumerate(zip(passages, scores, strict=True)):
        alone = _scored_alone(tiny_reranker_path, query, passage)
        assert abs(score - alone) <= TOLERANCE, f"passage {index} is {abs(score - alone):.2e} from its score alone"
        assert score == seen.setdefault(passage, score), "duplicate passages got different scores"
    ranked = reranker.rank(query, passages)
    assert sorted(item.index for item in ranked) == list(range(len(passages)))
    for item in ranked:
        assert item.text == passages[item.index]
        assert abs(item.score - scores[item.index]) <= TOLERANCE
    for better, worse in itertools.pairwise(ranked):
        assert better.score > worse.score or (better.score == worse.score and better.index < worse.index)


def test_long_passages_really_make_several_windows(tiny_reranker_path: str) -> None:
    encoder = PairEncoder(
        AutoTokenizer.from_pretrained(tiny_reranker_path),
        max_length=RERANK_WINDOW,
        max_query_length=RERANK_QUERY,
        window_overlap=RERANK_OVERLAP,
    )
    batch = encoder.encode("pandas", [" ".join(WORDS[:30])], windows=True)
    assert len(batch.owners) > 2


# --- pure steps -------------------------------------------------------------------------------


@PURE
@given(
    lengths=st.lists(st.integers(1, 600), max_size=200),
    max_items=st.integers(1, 64),
    max_tokens=st.none() | st.integers(1, 4000),
)
def test_plan_batches_places_every_input_once_within_budgets(
    lengths: list[int], max_items: int, max_tokens: int | None
) -> None:
    batches = plan_batches(lengths, max_items=max_items, max_tokens=max_tokens)
    order = [index for batch in batches for index in batch]
    assert sorted(order) == list(range(len(lengths)))
    assert all(batch for batch in batches)
    for batch in batches:
        assert len(batch) <= max_items
        if max_tokens is not None and len(batch) > 1:  # one input over budget still gets its own batch
            assert len(batch) * max(lengths[i] for i in batch) <= max_tokens
    sorted_lengths = [lengths[i] for i in order]
    assert sorted_lengths == sorted(sorted_lengths, reverse=True)  # longest first: little padding


@PURE
@given(
    lengths=st.lists(st.integers(1, 50), max_size=60),
    max_items=st.integers(1, 16),
    fits=st.integers(1, 400),
)
def test_batch_runner_keeps_input_order_through_out_of_memory_halving(
    lengths: list[int], max_items: int, fits: int
) -> None:
    """A batch over ``fits`` padded tokens "runs out of memory": halves are retried, order kept."""

    def forward(rows: list[int]) -> torch.Tensor:
        if len(rows) > 1 and len(rows) * max(lengths[i] for i in rows) > fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.tensor([[float(i), float(lengths[i])] for i in rows])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        out = BatchRunner("simulated").run(lengths, forward, max_items=max_items)
    expected = [[float(i), float(length)] for i, length in enumerate(lengths)]
    assert (out.tolist() if lengths else []) == expected


@PURE
@given(texts=text_lists(max_size=50))
def test_deduplicate_round_trips(texts: list[str]) -> None:
    unique, inverse = deduplicate(texts)
    assert [unique[i] for i in inverse] == texts
    assert len(set(unique)) == len(unique) == len(set(texts))
    assert unique == sorted(unique, key=texts.index)  # first-seen order


@PURE
@given(
    owners=st.lists(st.integers(0, 9), max_size=40).map(sorted),
    scores=st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=40, max_size=40),
)
def test_window_scores_aggregate_per_passage(owners: list[int], scores: list[float]) -> None:
    count = (max(owners) + 1) if owners else 0
    window_scores = torch.tensor(scores[: len(owners)], dtype=torch.float32)
    best = _aggregate(window_scores, owners, count, "max").tolist()
    mean = _aggregate(window_scores, owners, count, "mean").tolist()
    for passage in range(count):
        mine = [float(window_scores[i]) for i, owner in enumerate(owners) if owner == passage]
        if mine:
            assert best[passage] == max(mine)
            assert math.isclose(mean[passage], sum(mine) / len(mine), rel_tol=1e-5, abs_tol=1e-5)


@cache
def _pair_encoder(path: str) -> PairEncoder:
    return PairEncoder(
        AutoTokenizer.from_pretrained(path),
        max_length=RERANK_WINDOW,
        max_query_length=RERANK_QUERY,
        window_overlap=RERANK_OVERLAP,
    )


@settings(PURE, max_examples=150)
@given(query=st.one_of(short_prose, long_prose, any_unicode), passages=text_lists(max_size=10))
def test_windows_cover_each_passage_and_fit_the_window(
    tiny_reranker_path: str, query: str, passages: list[str]
) -> None:
    encoder = _pair_encoder(tiny_reranker_path)
    plain = encoder.encode(query, passages, windows=False)
    assert plain.owners == list(range(len(passages)))
    windowed = encoder.encode(query, passages, windows=True)
    assert windowed.owners == sorted(windowed.owners)
    assert sorted(set(windowed.owners)) == list(range(len(passages)))
    assert windowed.truncated_passages == plain.truncated_passages
    assert all(len(ids) <= RERANK_WINDOW for ids in windowed.input_ids)
    for passage in range(len(passages)):
        windows = windowed.owners.count(passage)
        assert (windows > 1) == (passage in windowed.truncated_passages)


@PURE
@given(
    requests=st.lists(st.tuples(st.sampled_from("ab"), st.lists(st.integers(), max_size=12)), max_size=40),
    max_items=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_coalescer_merges_and_splits_back_exactly(
    requests: list[tuple[str, list[int]]], max_items: int, seed: int
) -> None:
    calls: list[tuple[str, int]] = []
    delays = random.Random(seed)

    def run(key: str, items: list[int]) -> list[tuple[str, int]]:
        calls.append((key, len(items)))
        if delays.random() < 0.2:
            time.sleep(0.001)  # let later requests queue up behind a busy call
        return [(key, item * 3 + 1) for item in items]

    coalescer: Coalescer[str, int, tuple[str, int]] = Coalescer(run, max_items=max_items)

    async def main() -> list[list[tuple[str, int]]]:
        return await asyncio.gather(*(coalescer.submit(key, items) for key, items in requests))

    results = bounded(lambda: asyncio.run(main()), seconds=10)
    assert results == [[(key, item * 3 + 1) for item in items] for key, items in requests]
    biggest = max((len(items) for _, items in requests), default=0)
    assert all(size <= max(max_items, biggest) for _, size in calls)
    assert sum(size for _, size in calls) == sum(len(items) for _, items in requests)
    assert coalescer._queues == {}


@settings(PURE, max_examples=60)
@given(
    entries=st.dictionaries(text, st.lists(st.floats(width=32, allow_nan=False), min_size=3, max_size=3), max_size=20),
    missing=st.lists(text, max_size=5),
    role=st.sampled_from(["query", "document"]),
)
def test_cache_gives_back_exactly_what_was_put(entries: dict[str, list[float]], missing: list[str], role: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = EmbeddingCache(folder)
        here = store.namespace({"model": "m", "role": role})
        other = store.namespace({"model": "m", "role": "other"})
        texts = list(entries)
        store.put(here, texts, np.array([entries[t] for t in texts], dtype=np.float32).reshape(len(texts), 3))
        asked = texts + [t for t in missing if t not in entries]
        found = store.get(here, asked)
        assert len(found) == len(asked)
        for item, vector in zip(asked, found, strict=True):
            if item in entries:
                assert vector is not None
                assert vector.tolist() == entries[item]
            else:
                assert vector is None
        assert store.get(other, texts) == [None] * len(texts)
        store.close()
