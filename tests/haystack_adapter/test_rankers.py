"""BGERanker against the core BGEReranker, on the tiny XLM-RoBERTa cross-encoder."""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import replace

import pytest
from haystack import Document
from haystack.utils import ComponentDevice

from bge_integrations import BGEReranker, TruncationWarning
from bge_integrations.core.loading import REGISTRY, loaded_models
from bge_integrations.haystack import BGERanker

QUERY = "Where do giant pandas live?"
DOCS = [
    Document(content="The giant panda is a bear species endemic to China.", meta={"title": "Panda"}),
    Document(content="Paris is the capital and most populous city of France.", meta={"title": "Paris"}),
    Document(content="Mitochondria are the powerhouse of the cell."),
    Document(content="The quick brown fox jumps over the lazy dog.", meta={"title": None}),
    Document(content="Vitamin D deficiency is common in northern latitudes."),
]
TEXTS = [doc.content for doc in DOCS]
# The settings named as in Haystack's SentenceTransformersSimilarityRanker, at their defaults.
SENTENCE_TRANSFORMERS_DEFAULTS = {
    "query_prefix": "",
    "query_suffix": "",
    "document_prefix": "",
    "document_suffix": "",
    "model_kwargs": None,
    "tokenizer_kwargs": None,
    "config_kwargs": None,
    "backend": "torch",
}
LLM_DEFAULTS = {"prompt": None, "cutoff_layers": None, "compress_ratio": None, "compress_layers": None}
# The remote-server settings (base_url: a server embeds/scores instead of a local model), at their defaults.
REMOTE_DEFAULTS = {"base_url": None, "api_key": {"type": "env_var", "env_vars": ["BGE_API_KEY"], "strict": False}}
LONG = "The quick brown fox jumps over the lazy dog. " * 20 + "The giant panda lives in China. " * 2


def core(path: str, **kwargs) -> BGEReranker:
    return BGEReranker(path, device="cpu", **kwargs)


def expected_order(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def test_init_default():
    ranker = BGERanker()
    assert ranker.model == "BAAI/bge-reranker-base"
    assert ranker.device is None
    assert ranker.top_k == 10
    assert ranker.score_threshold is None
    assert ranker.scale_score is True
    assert ranker.meta_fields_to_embed == []
    assert ranker.embedding_separator == "\n"
    assert (ranker.windows, ranker.window_overlap, ranker.aggregation) == (True, 64, "max")
    assert (ranker.max_length, ranker.max_query_length, ranker.batch_size) == (None, None, 32)
    assert (ranker.use_fp16, ranker.revision, ranker.trust_remote_code) == (None, None, False)
    assert ranker.reranker.normalize is True
    assert REGISTRY.load_count == 0


def test_init_translates_settings_to_the_core():
    ranker = BGERanker(
        model="my/reranker",
        device="cpu",
        scale_score=False,
        windows=False,
        window_overlap=8,
        aggregation="mean",
        max_length=128,
        max_query_length=32,
        batch_size=4,
        use_fp16=False,
        revision="v1",
        trust_remote_code=True,
    )
    reranker = ranker.reranker
    assert (reranker.model_name, reranker.device, reranker.normalize) == ("my/reranker", "cpu", False)
    assert (reranker.windows, reranker.window_overlap, reranker.aggregation) == (False, 8, "mean")
    assert (reranker.max_length, reranker.max_query_length, reranker.batch_size) == (128, 32, 4)
    assert (reranker.use_fp16, reranker.revision, reranker.trust_remote_code) == (False, "v1", True)


@pytest.mark.parametrize("top_k", [0, -1, 2.5, None])
def test_init_bad_top_k(top_k):
    with pytest.raises(ValueError, match=f"top_k must be an int > 0, got {top_k}"):
        BGERanker(top_k=top_k)


def test_init_bad_score_threshold():
    with pytest.raises(ValueError, match="score_threshold must be a number or None, got 'high'"):
        BGERanker(score_threshold="high")  # type: ignore[arg-type]


def test_init_bad_aggregation_comes_from_the_core():
    with pytest.raises(ValueError, match="aggregation must be 'max' or 'mean', got 'min'"):
        BGERanker(aggregation="min")  # type: ignore[arg-type]


def test_to_dict():
    assert BGERanker().to_dict() == {
        "type": "bge_integrations.haystack.rankers.BGERanker",
        "init_parameters": {
            "model": "BAAI/bge-reranker-base",
            "device": None,
            "top_k": 10,
            "score_threshold": None,
            "scale_score": True,
            "meta_fields_to_embed": [],
            "embedding_separator": "\n",
            "windows": True,
            "window_overlap": 64,
            "max_windows": None,
            "aggregation": "max",
            "max_length": None,
            "max_query_length": None,
            "batch_size": 32,
            "use_fp16": None,
            "revision": None,
            "trust_remote_code": False,
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            **SENTENCE_TRANSFORMERS_DEFAULTS,
            **LLM_DEFAULTS,
            **REMOTE_DEFAULTS,
        },
    }


def test_to_dict_with_custom_init_parameters():
    ranker = BGERanker(
        model="my/reranker",
        device=ComponentDevice.from_str("cuda:0"),
        top_k=3,
        score_threshold=0.25,
        scale_score=False,
        meta_fields_to_embed=["title"],
        embedding_separator=" ",
        windows=False,
        window_overlap=16,
        max_windows=3,
        aggregation="mean",
        max_length=256,
        max_query_length=64,
        batch_size=8,
        use_fp16=True,
        revision="abc",
        trust_remote_code=True,
    )
    assert ranker.to_dict() == {
        "type": "bge_integrations.haystack.rankers.BGERanker",
        "init_parameters": {
            "model": "my/reranker",
            "device": {"type": "single", "device": "cuda:0"},
            "top_k": 3,
            "score_threshold": 0.25,
            "scale_score": False,
            "meta_fields_to_embed": ["title"],
            "embedding_separator": " ",
            "windows": False,
            "window_overlap": 16,
            "max_windows": 3,
            "aggregation": "mean",
            "max_length": 256,
            "max_query_length": 64,
            "batch_size": 8,
            "use_fp16": True,
            "revision": "abc",
            "trust_remote_code": True,
            "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
            **SENTENCE_TRANSFORMERS_DEFAULTS,
            **LLM_DEFAULTS,
            **REMOTE_DEFAULTS,
        },
    }


def test_from_dict():
    data = BGERanker(device="cpu", top_k=2, score_threshold=0.5, meta_fields_to_embed=["title"]).to_dict()
    ranker = BGERanker.from_dict(data)
    assert isinstance(ranker, BGERanker)
    assert ranker.device == ComponentDevice.from_str("cpu")
    assert (ranker.top_k, ranker.score_threshold, ranker.meta_fields_to_embed) == (2, 0.5, ["title"])
    assert ranker.reranker.device == "cpu"
    assert ranker.to_dict() == data


def test_run_scores_equal_the_core_and_are_sorted(tiny_reranker_path):
    result = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS)["documents"]
    scores = core(tiny_reranker_path).score(QUERY, TEXTS)
    order = expected_order(scores)
    assert [doc.id for doc in result] == [DOCS[i].id for i in order]
    assert [doc.score for doc in result] == [scores[i] for i in order]  # same texts, same batch: identical
    assert all(0.0 < doc.score < 1.0 for doc in result)  # sigmoid scale by default
    assert all(isinstance(doc.score, float) for doc in result)


def test_run_scale_score_false_gives_raw_logits(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    raw = ranker.run(query=QUERY, documents=DOCS, scale_score=False)["documents"]
    scaled = {doc.id: doc.score for doc in ranker.run(query=QUERY, documents=DOCS)["documents"]}
    logits = core(tiny_reranker_path, normalize=False).score(QUERY, TEXTS)
    assert {doc.id: doc.score for doc in raw} == {doc.id: logit for doc, logit in zip(DOCS, logits, strict=True)}
    assert [doc.score for doc in raw] == sorted(logits, reverse=True)
    for doc in raw:  # the tiny model's scores differ by ~1e-6; float32 sigmoid is within 1e-7
        assert 1 / (1 + math.exp(-doc.score)) == pytest.approx(scaled[doc.id], rel=0, abs=1e-7)
    init_raw = BGERanker(model=tiny_reranker_path, device="cpu", scale_score=False)
    assert init_raw.run(query=QUERY, documents=DOCS) == {"documents": raw}
    assert (
        init_raw.run(query=QUERY, documents=DOCS, scale_score=True)["documents"]
        == ranker.run(query=QUERY, documents=DOCS)["documents"]
    )


def test_top_k_from_init_and_run(tiny_reranker_path):
    all_docs = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS)["documents"]
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", top_k=2)
    assert ranker.run(query=QUERY, documents=DOCS)["documents"] == all_docs[:2]
    assert ranker.run(query=QUERY, documents=DOCS, top_k=4)["documents"] == all_docs[:4]
    assert ranker.run(query=QUERY, documents=DOCS, top_k=1)["documents"] == all_docs[:1]


@pytest.mark.parametrize("top_k", [0, -2, 1.5])
def test_run_bad_top_k(tiny_reranker_path, top_k):
    with pytest.raises(ValueError, match=f"top_k must be an int > 0, got {top_k}"):
        BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS, top_k=top_k)
    assert REGISTRY.load_count == 0


def test_score_threshold_from_init_and_run(tiny_reranker_path):
    all_docs = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS)["documents"]
    middle = all_docs[2].score
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", score_threshold=middle)
    assert ranker.run(query=QUERY, documents=DOCS)["documents"] == all_docs[:3]
    assert ranker.run(query=QUERY, documents=DOCS, score_threshold=all_docs[0].score)["documents"] == all_docs[:1]
    assert ranker.run(query=QUERY, documents=DOCS, score_threshold=2.0)["documents"] == []
    with pytest.raises(ValueError, match="score_threshold must be a number or None, got 'x'"):
        ranker.run(query=QUERY, documents=DOCS, score_threshold="x")  # type: ignore[arg-type]


def test_threshold_applies_on_the_run_scale(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", scale_score=False)
    raw = ranker.run(query=QUERY, documents=DOCS)["documents"]
    cut = raw[1].score  # a logit: no sigmoid applied before comparing
    assert ranker.run(query=QUERY, documents=DOCS, score_threshold=cut)["documents"] == raw[:2]


def test_every_input_gets_one_output_duplicates_kept_ties_in_input_order(tiny_reranker_path):
    first = Document(id="a", content=DOCS[0].content)
    twin = Document(id="b", content=DOCS[0].content)
    same_id = Document(id="a", content=DOCS[1].content)  # Haystack's own ranker would drop one "a"
    documents = [DOCS[2], first, same_id, twin]
    result = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=documents)["documents"]
    assert len(result) == 4
    assert sorted(doc.content for doc in result) == sorted(doc.content for doc in documents)
    positions = [i for i, doc in enumerate(result) if doc.content == DOCS[0].content]
    assert [result[i].id for i in positions] == ["a", "b"]  # equal scores keep input order
    assert result[positions[0]].score == result[positions[1]].score


def test_meta_fields_to_embed(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", meta_fields_to_embed=["title"], embedding_separator=": ")
    result = ranker.run(query=QUERY, documents=DOCS)["documents"]
    texts = ["Panda: " + TEXTS[0], "Paris: " + TEXTS[1], TEXTS[2], TEXTS[3], TEXTS[4]]
    scores = core(tiny_reranker_path).score(QUERY, texts)
    assert {doc.id: doc.score for doc in result} == {DOCS[i].id: scores[i] for i in range(len(DOCS))}
    plain = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=DOCS[:1])["documents"]
    assert plain[0].score != scores[0]


def test_long_passages_are_reranked_by_windows(tiny_reranker_path):
    documents = [Document(content=LONG), Document(content=TEXTS[1])]
    windowed = BGERanker(model=tiny_reranker_path, device="cpu", max_length=48, window_overlap=8)
    truncated = BGERanker(model=tiny_reranker_path, device="cpu", max_length=48, window_overlap=8, windows=False)
    by_windows = windowed.run(query=QUERY, documents=documents)["documents"]
    with pytest.warns(TruncationWarning, match=r"windows=False"):
        by_start = truncated.run(query=QUERY, documents=documents)["documents"]
    texts = [LONG, TEXTS[1]]
    expected_windows = core(tiny_reranker_path, max_length=48, window_overlap=8).score(QUERY, texts)
    expected_start = core(tiny_reranker_path, max_length=48, window_overlap=8, windows=False).score(QUERY, texts)
    long_windows = next(doc.score for doc in by_windows if doc.content == LONG)
    long_start = next(doc.score for doc in by_start if doc.content == LONG)
    assert long_windows == expected_windows[0]
    assert long_start == expected_start[0]
    assert long_windows >= long_start  # the best window's score: at least the first window's (the beginning)
    assert truncated.reranker.truncated_count >= 1
    assert windowed.reranker.truncated_count == 0


def test_run_returns_copies_and_leaves_inputs_untouched(tiny_reranker_path):
    documents = copy.deepcopy(DOCS)
    documents[0] = replace(documents[0], score=0.123)  # e.g. a retriever score
    before = copy.deepcopy(documents)
    result = BGERanker(model=tiny_reranker_path, device="cpu").run(query=QUERY, documents=documents)["documents"]
    assert documents == before
    assert all(out is not doc for out in result for doc in documents)
    panda = next(doc for doc in result if doc.id == documents[0].id)
    assert panda.score != 0.123
    assert panda.meta == documents[0].meta
    panda.meta["title"] = "changed"
    assert documents[0].meta["title"] == "Panda"


def test_run_empty_documents_loads_nothing():
    assert BGERanker(model="not/loaded", device="cpu").run(query=QUERY, documents=[]) == {"documents": []}
    assert REGISTRY.load_count == 0


@pytest.mark.parametrize(
    ("query", "documents", "match"),
    [
        ([QUERY], DOCS, r"query must be a string, got list"),
        (None, DOCS, r"query must be a string, got NoneType"),
        (QUERY, "a passage", r"BGERanker expects a list of Documents, got str: 'a passage'"),
        (QUERY, [DOCS[0], "a passage"], r"documents\[1\] is str: 'a passage'"),
        (QUERY, TEXTS, r"documents\[0\] is str"),
    ],
)
def test_run_wrong_input_format(tiny_reranker_path, query, documents, match):
    with pytest.raises(TypeError, match=match):
        BGERanker(model=tiny_reranker_path, device="cpu").run(query=query, documents=documents)
    assert REGISTRY.load_count == 0


async def test_run_async_equals_run(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", top_k=3, meta_fields_to_embed=["title"])
    for kwargs in ({}, {"top_k": 2}, {"scale_score": False}, {"score_threshold": 0.5}):
        assert (await ranker.run_async(query=QUERY, documents=DOCS, **kwargs)) == ranker.run(
            query=QUERY, documents=DOCS, **kwargs
        )
    with pytest.raises(TypeError, match="got str"):
        await ranker.run_async(query=QUERY, documents="text")
    with pytest.raises(ValueError, match="top_k must be an int > 0, got 0"):
        await ranker.run_async(query=QUERY, documents=DOCS, top_k=0)


def test_warmup_doesnt_reload(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    ranker.warm_up()
    ranker.warm_up()
    ranker.run(query=QUERY, documents=DOCS)
    assert REGISTRY.load_count == 1


async def test_warm_up_async_loads_once_off_the_event_loop(tiny_reranker_path, monkeypatch):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    threads = []
    original = ranker.reranker.warm_up
    monkeypatch.setattr(ranker.reranker, "warm_up", lambda: threads.append(threading.get_ident()) or original())
    await ranker.warm_up_async()
    await ranker.warm_up_async()
    assert REGISTRY.load_count == 1
    assert len(threads) == 2
    assert threading.get_ident() not in threads


def test_rankers_configured_alike_share_one_model_and_release_frees_it(tiny_reranker_path):
    one = BGERanker(model=tiny_reranker_path, device="cpu", top_k=1)
    two = BGERanker(model=tiny_reranker_path, device=ComponentDevice.from_str("cpu"), windows=False, max_length=64)
    one.run(query=QUERY, documents=DOCS)
    two.run(query=QUERY, documents=DOCS)
    core(tiny_reranker_path).score(QUERY, TEXTS)
    assert REGISTRY.load_count == 1
    assert len(loaded_models()) == 1
    assert two.release() is True
    assert loaded_models() == []
    assert one.release() is False
    one.run(query=QUERY, documents=DOCS)  # loads again on use
    assert REGISTRY.load_count == 2


def test_max_windows_reaches_the_core(tiny_reranker_path):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu", max_length=48, window_overlap=8, max_windows=2)
    assert ranker.reranker.config.max_windows == 2
    assert BGERanker.from_dict(ranker.to_dict()).max_windows == 2
    with pytest.warns(TruncationWarning, match=r"longer than the first 2 windows \(48 tokens each"):
        [scored] = ranker.run(query=QUERY, documents=[Document(content=LONG)])["documents"]
    assert (
        scored.score == core(tiny_reranker_path, max_length=48, window_overlap=8, max_windows=2).score(QUERY, [LONG])[0]
    )
    with pytest.raises(ValueError, match="max_windows must be an int > 0, got 0"):
        BGERanker(max_windows=0)


@pytest.mark.parametrize(
    ("name", "value", "error", "match"),
    [
        ("top_k", 0, ValueError, "top_k must be an int > 0, got 0"),
        ("scale_score", "yes", TypeError, "scale_score must be True or False, got str: 'yes'"),
        ("scale_score", None, TypeError, "scale_score must be True or False, got NoneType: None"),
        ("score_threshold", "high", ValueError, "score_threshold must be a number or None, got 'high'"),
        ("model", "", ValueError, "model must be a hub id or a local path, got ''"),
        ("meta_fields_to_embed", "title", TypeError, "meta_fields_to_embed must be a sequence of strings"),
    ],
)
def test_a_setting_assigned_later_is_checked_under_its_own_name(tiny_reranker_path, name, value, error, match):
    ranker = BGERanker(model=tiny_reranker_path, device="cpu")
    setattr(ranker, name, value)
    with pytest.raises(error, match=match):
        ranker.run(query=QUERY, documents=DOCS)
    with pytest.raises(error, match=match):
        BGERanker(**{"model": tiny_reranker_path, name: value})


def test_run_takes_keywords_only_as_haystacks_own_ranker():
    with pytest.raises(TypeError, match="positional"):
        BGERanker().run(QUERY, DOCS)  # type: ignore[misc]
