from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ValidationError

from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.notices import TruncationWarning
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
        "max_windows": None,
        "aggregation": "max",
        "normalize": True,
        "device": None,
        "use_fp16": None,
        "batch_size": 32,
        "revision": None,
        "trust_remote_code": False,
        "prompt": None,
        "cutoff_layers": None,
        "compress_ratio": None,
        "compress_layers": None,
        "base_url": None,
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
    texts = [d.page_content for d in docs]
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", normalize=False, top_n=None)
    raw = dict(zip(texts, core.score(QUERY, texts, normalize=False), strict=True))
    assert raw != dict(zip(texts, core.score(QUERY, texts), strict=True))  # logits, not sigmoid scores
    result = rerank.compress_documents(docs, QUERY)
    assert sorted(d.page_content for d in result) == sorted(texts)
    for doc in result:  # each document carries the score of its own text
        assert doc.metadata["relevance_score"] == raw[doc.page_content]


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
        ({"top_n": 0}, r"top_n\n  Input should be greater than 0 \[.*input_value=0,"),
        ({"score_threshold": float("nan")}, r"score_threshold\n  Input should be a finite number \[.*input_value=nan,"),
        ({"score_threshold": float("inf")}, r"score_threshold\n  Input should be a finite number \[.*input_value=inf,"),
        ({"batch_size": -2}, r"batch_size\n  Input should be greater than 0 \[.*input_value=-2,"),
        ({"window_overlap": -1}, r"window_overlap\n  Input should be greater than or equal to 0 \[.*input_value=-1,"),
        ({"max_length": 0}, r"max_length\n  Input should be greater than 0 \[.*input_value=0,"),
        ({"max_query_length": -5}, r"max_query_length\n  Input should be greater than 0 \[.*input_value=-5,"),
        ({"max_windows": 0}, r"max_windows\n  Input should be greater than 0 \[.*input_value=0,"),
        ({"aggregation": "min"}, "'max' or 'mean'"),
        ({"model_name": " "}, "model_name must be a hub id or a local path, got ' '"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGERerank(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "gpu"}, "device must be a torch device string such as 'cpu' or 'cuda:0', got 'gpu'"),
        ({"device": "cpu", "use_fp16": True}, "use_fp16=True needs a CUDA or MPS device, got device='cpu'"),
        ({"max_length": 256, "max_query_length": 256}, "max_query_length must be < max_length=256, got 256"),
    ],
)
def test_machine_independent_settings_fail_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        BGERerank(**kwargs)  # type: ignore[arg-type]
    assert REGISTRY.load_count == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
def test_missing_cuda_fails_at_first_use_not_construction(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model_name=tiny_reranker_path, device="cuda", use_fp16=True)
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA, but torch sees no CUDA device"):
        rerank.compress_documents(_docs(), QUERY)


def test_query_length_against_the_default_window_fails_at_first_use(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", max_query_length=512)  # the model's 512
    with pytest.raises(ValueError, match="max_query_length must be < max_length=512, got 512"):
        rerank.compress_documents(_docs(), QUERY)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("batch_size", 0, "greater than 0"),
        ("top_n", 0, "greater than 0"),
        ("score_threshold", float("nan"), "finite number"),
        ("window_overlap", -1, "greater than or equal to 0"),
        ("aggregation", "min", "'max' or 'mean'"),
        ("model_name", " ", "model_name must be a hub id"),
        ("device", "gpu", "device must be a torch device string"),
        ("use_fp16", True, "use_fp16=True needs a CUDA or MPS device"),
        ("max_query_length", 128, "max_query_length must be < max_length=128, got 128"),
    ],
)
def test_rejected_assignment_keeps_the_previous_value(
    tiny_reranker_path: str, core: BGEReranker, field: str, value: object, match: str
) -> None:
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=2, max_length=128)
    before = rerank.model_dump()
    fields_set = set(rerank.model_fields_set)
    client = rerank.client
    with pytest.raises(ValidationError, match=match):
        setattr(rerank, field, value)
    assert rerank.model_dump() == before
    assert rerank.model_fields_set == fields_set
    assert rerank.client is client
    docs = _docs()
    expected = BGEReranker(tiny_reranker_path, device="cpu", max_length=128).rank(QUERY, [d.page_content for d in docs])
    result = rerank.compress_documents(docs, QUERY)
    assert [d.metadata["relevance_score"] for d in result] == [t.score for t in expected[:2]]
    rerank.top_n = 1  # still assignable
    assert len(rerank.compress_documents(docs, QUERY)) == 1


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
    client = rerank.client
    copied = rerank.model_copy(update={"batch_size": 5})
    assert copied.client.batch_size == 5
    assert rerank.client is client  # the copy builds its own core, it does not replace ours


def test_unrelated_assignment_keeps_the_core_and_its_counts(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", windows=False, max_length=32, top_n=None)
    with pytest.warns(TruncationWarning):
        rerank.compress_documents(_docs(), QUERY)
    client = rerank.client
    count = client.truncated_count
    assert count > 0
    rerank.top_n = 2
    rerank.score_threshold = 0.0
    rerank.windows = False  # the same value: the same settings
    assert rerank.client is client
    assert rerank.client.truncated_count == count


def test_copies_and_pickles_build_their_own_core(rerank: BGERerank) -> None:
    client = rerank.client
    for other in (copy.copy(rerank), copy.deepcopy(rerank), pickle.loads(pickle.dumps(rerank))):
        assert other.model_dump() == rerank.model_dump()
        assert other == rerank  # equal settings are equal objects, whichever has built its core
        assert other.client is not client
        assert other.client.model_name == client.model_name
    assert rerank.client is client
    assert rerank != rerank.model_copy(update={"top_n": 1})


def test_same_settings_load_the_model_once(tiny_reranker_path: str) -> None:
    docs = _docs()
    BGERerank(model_name=tiny_reranker_path, device="cpu").compress_documents(docs, QUERY)
    BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=1, batch_size=2).compress_documents(docs, QUERY)
    BGEReranker(tiny_reranker_path, device="cpu").score(QUERY, ["x"])
    assert REGISTRY.load_count == 1


def test_max_windows_reaches_the_core(tiny_reranker_path: str) -> None:
    rerank = BGERerank(model_name=tiny_reranker_path, device="cpu", max_windows=2)
    assert rerank.client.config.max_windows == 2
    assert BGERerank.model_validate(rerank.model_dump()).client.config.max_windows == 2
