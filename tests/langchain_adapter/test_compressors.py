from __future__ import annotations

import copy
import warnings

import pytest
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ValidationError

from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.core.types import RankedText
from bge_integrations.langchain import BGERerank

QUERY = "Where do giant pandas live?"
LONG = " ".join(["Pandas eat bamboo in the mountain forests of Sichuan."] * 20)


def _docs() -> list[Document]:
    return [
        Document("Paris is the capital of France.", id="paris", metadata={"source": "a", "tags": ["city"]}),
        Document("The giant panda is a bear species endemic to China.", id="panda", metadata={"nested": {"n": 1}}),
        Document("Mitochondria are the powerhouse of the cell.", metadata={}),
        Document(LONG, id="long", metadata={"relevance_score": -1.0, "source": "b"}),
        Document("The quick brown fox jumps over the lazy dog.", id="fox"),
    ]


@pytest.fixture
def rerank(tiny_reranker_path: str) -> BGERerank:
    return BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=None)


@pytest.fixture
def core(tiny_reranker_path: str) -> BGEReranker:
    return BGEReranker(tiny_reranker_path, device="cpu")


def test_init_default() -> None:
    rerank = BGERerank()
    assert isinstance(rerank, BaseDocumentCompressor)
    assert rerank.model_dump() == {
        "model_name": "BAAI/bge-reranker-base",
        "max_length": None,
        "max_query_length": None,
        "windows": True,
        "window_overlap": 64,
        "aggregation": "max",
        "normalize": True,
        "device": None,
        "use_fp16": None,
        "batch_size": 32,
        "revision": None,
        "trust_remote_code": False,
        "top_n": 3,
        "score_threshold": None,
    }
    assert REGISTRY.load_count == 0


def test_scores_equal_the_core_and_order_is_best_first(rerank: BGERerank, core: BGEReranker) -> None:
    docs = _docs()
    result = rerank.compress_documents(docs, QUERY)
    expected = core.rank(QUERY, [d.page_content for d in docs])
    assert [d.page_content for d in result] == [item.text for item in expected]
    assert [d.metadata["relevance_score"] for d in result] == [item.score for item in expected]
    assert all(type(d.metadata["relevance_score"]) is float for d in result)
    scores = [d.metadata["relevance_score"] for d in result]
    assert scores == sorted(scores, reverse=True)


def test_copies_keep_id_and_metadata_and_input_is_unchanged(rerank: BGERerank) -> None:
    docs = _docs()
    before = copy.deepcopy(docs)
    result = rerank.compress_documents(docs, QUERY)
    assert docs == before
    by_content = {d.page_content: d for d in before}
    for doc in result:
        original = by_content[doc.page_content]
        assert doc.id == original.id
        assert {k: v for k, v in doc.metadata.items() if k != "relevance_score"} == {
            k: v for k, v in original.metadata.items() if k != "relevance_score"
        }
        assert all(doc is not d for d in docs)
    panda = next(d for d in result if d.id == "panda")
    panda.metadata["nested"]["n"] = 99  # the copy is deep: the input stays as it was
    assert docs == before


def test_top_n_default_is_three(tiny_reranker_path: str, core: BGEReranker) -> None:
    docs = _docs()
    result = BGERerank(model_name=tiny_reranker_path, device="cpu").compress_documents(docs, QUERY)
    assert [d.page_content for d in result] == [t.text for t in core.rank(QUERY, [d.page_content for d in docs], 3)]
    assert len(result) == 3


def test_top_n_and_threshold(rerank: BGERerank, core: BGEReranker) -> None:
    docs = _docs()
    scores = core.score(QUERY, [d.page_content for d in docs])
    threshold = sorted(scores)[2]  # keeps the best three
    rerank.score_threshold = threshold
    kept = rerank.compress_documents(docs, QUERY)
    assert len(kept) == 3
    assert all(d.metadata["relevance_score"] >= threshold for d in kept)
    rerank.top_n = 2
    assert [d.page_content for d in rerank.compress_documents(docs, QUERY)] == [d.page_content for d in kept[:2]]
    rerank.score_threshold = max(scores) + 1e-3
    assert rerank.compress_documents(docs, QUERY) == []


def test_more_top_n_than_documents(rerank: BGERerank) -> None:
    rerank.top_n = 10
    assert len(rerank.compress_documents(_docs(), QUERY)) == 5


def test_raw_logits(tiny_reranker_path: str, core: BGEReranker) -> None:
    docs = _docs()
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", normalize=False, top_n=None)
    raw = core.score(QUERY, [d.page_content for d in docs], normalize=False)
    assert sorted(d.metadata["relevance_score"] for d in rerank.compress_documents(docs, QUERY)) == sorted(raw)


def test_long_passages_are_read_as_windows(tiny_reranker_path: str) -> None:
    docs = _docs()
    texts = [d.page_content for d in docs]
    scores = {}
    for windows in (True, False):
        rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", windows=windows, top_n=None, max_length=64)
        core = BGEReranker(tiny_reranker_path, device="cpu", windows=windows, max_length=64)
        with warnings.catch_warnings(record=True):  # windows=False warns about the cut passage
            warnings.simplefilter("always")
            result = rerank.compress_documents(docs, QUERY)
            expected = core.score(QUERY, texts)[3]
        scores[windows] = next(d for d in result if d.id == "long").metadata["relevance_score"]
        assert scores[windows] == expected
    assert scores[True] != scores[False]


def test_empty_documents_load_nothing(rerank: BGERerank) -> None:
    assert rerank.compress_documents([], QUERY) == []
    assert REGISTRY.load_count == 0


async def test_async_equals_sync(rerank: BGERerank) -> None:
    docs = _docs()
    before = copy.deepcopy(docs)
    assert await rerank.acompress_documents(docs, QUERY) == rerank.compress_documents(docs, QUERY)
    assert docs == before
    assert await rerank.acompress_documents([], QUERY) == []


async def test_async_goes_through_the_core_async(rerank: BGERerank, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, list[str], int | None]] = []

    async def arank(query: str, texts: list[str], top_n: int | None, threshold: float | None) -> list[RankedText]:
        seen.append((query, texts, top_n))
        return [RankedText(index=1, score=0.5, text=texts[1])]

    monkeypatch.setattr(rerank.client, "arank", arank)
    result = await rerank.acompress_documents(_docs(), QUERY)
    assert [(d.id, d.metadata["relevance_score"]) for d in result] == [("panda", 0.5)]
    assert seen == [(QUERY, [d.page_content for d in _docs()], None)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"top_n": 0}, "top_n must be an int > 0, got 0"),
        ({"score_threshold": float("nan")}, "score_threshold must be a number or None, got nan"),
        ({"batch_size": -2}, "batch_size must be an int > 0, got -2"),
        ({"window_overlap": -1}, "window_overlap must be an int >= 0, got -1"),
        ({"aggregation": "min"}, "'max' or 'mean'"),
        ({"model_name": " "}, "model_name must be a hub id or a local path, got ' '"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGERerank(**kwargs)  # type: ignore[arg-type]


def test_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        BGERerank(top_k=3)  # type: ignore[call-arg]


def test_bad_documents_are_named(rerank: BGERerank) -> None:
    with pytest.raises(TypeError, match=r"documents\[1\] must be a Document, got str: 'text'"):
        rerank.compress_documents([Document("a"), "text"], QUERY)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="query must be a string, got NoneType"):
        rerank.compress_documents(_docs(), None)  # type: ignore[arg-type]


def test_assignment_reaches_the_core(rerank: BGERerank) -> None:
    rerank.windows = False
    rerank.max_length = 128
    assert (rerank.client.windows, rerank.client.max_length) == (False, 128)
    copied = rerank.model_copy(update={"batch_size": 5})
    assert copied.client.batch_size == 5
    assert rerank.client.batch_size == 32


def test_same_settings_load_the_model_once(tiny_reranker_path: str) -> None:
    docs = _docs()
    BGERerank(model_name=tiny_reranker_path, device="cpu").compress_documents(docs, QUERY)
    BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=1, batch_size=2).compress_documents(docs, QUERY)
    BGEReranker(tiny_reranker_path, device="cpu").score(QUERY, ["x"])
    assert REGISTRY.load_count == 1
