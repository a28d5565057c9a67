from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest

from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.training.examples import TrainingExample
from bge_integrations.training.mining import mine_hard_negatives
from tests.tiny_models import CORPUS

WORDS = sorted({word.strip(".,;:?!").lower() for text in CORPUS[1:10] for word in text.split()} - {""})


def _texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts: dict[str, None] = {}
    while len(texts) < count:
        texts[" ".join(rng.sample(WORDS, 6))] = None
    return list(texts)


POOL = _texts(40, seed=1)
QUERIES = _texts(4, seed=2)
# Query 0's own text is in the corpus: it must never come back as its negative.
CORPUS_TEXTS = [*POOL[:20], QUERIES[0], *POOL[20:]]
EXAMPLES = [
    TrainingExample(QUERIES[0], [POOL[0], POOL[5]]),
    TrainingExample(QUERIES[1], [POOL[1]], neg=[POOL[2]], prompt="Find: ", type="normal"),
    TrainingExample(QUERIES[2], [POOL[3], POOL[30]], pos_scores=[0.5, 0.4]),
    TrainingExample(QUERIES[3], [POOL[7]]),
]


@pytest.fixture
def embedder(tiny_st_embedder_path: str) -> BGEEmbedder:
    return BGEEmbedder(tiny_st_embedder_path, device="cpu")


@pytest.fixture
def reranker(tiny_reranker_path: str) -> BGEReranker:
    return BGEReranker(tiny_reranker_path, device="cpu", normalize=False)


def _ranking(embedder: BGEEmbedder, queries: list[str], pool: list[str]) -> np.ndarray:
    """Pool indices per query, best first, computed here from the embedder's own vectors."""
    docs = np.asarray(embedder.embed_documents(pool), dtype=np.float64)
    vectors = np.asarray(embedder.embed_queries(queries), dtype=np.float64)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.argsort(-(vectors @ docs.T), axis=1, kind="stable")


def _eligible(example: TrainingExample, texts: list[str]) -> list[str]:
    return [text for text in texts if text not in example.pos and text != example.query]


def test_negatives_come_from_the_range_of_the_embedders_ranking(embedder: BGEEmbedder) -> None:
    ranking = _ranking(embedder, QUERIES, CORPUS_TEXTS)
    mined = mine_hard_negatives(EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(3, 15), negatives=6, seed=0)
    for example, out, ranks in zip(EXAMPLES, mined, ranking, strict=True):
        in_range = [CORPUS_TEXTS[i] for i in ranks[3:15]]
        assert len(out.neg) == 6
        assert len(set(out.neg)) == 6
        assert set(out.neg) <= set(_eligible(example, in_range))


def test_positives_and_the_query_are_never_negatives(embedder: BGEEmbedder) -> None:
    ranking = _ranking(embedder, QUERIES, CORPUS_TEXTS)
    # Query 0's range ends just past its own text and its positives, which are all in it: with
    # as many negatives as the range has other texts, the result must be exactly those others.
    ranks = list(ranking[0])
    end = 1 + max(ranks.index(CORPUS_TEXTS.index(text)) for text in (QUERIES[0], POOL[0], POOL[5]))
    others = _eligible(EXAMPLES[0], [CORPUS_TEXTS[i] for i in ranks[:end]])
    assert len(others) == end - 3
    (out,) = mine_hard_negatives(
        EXAMPLES[:1], embedder, corpus=CORPUS_TEXTS, sample_range=(0, end), negatives=len(others)
    )
    assert sorted(out.neg) == sorted(others)
    for example, result in zip(
        EXAMPLES,
        mine_hard_negatives(EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(0, 41), negatives=30),
        strict=True,
    ):
        assert not set(result.neg) & {*example.pos, example.query}


def test_same_seed_same_negatives_other_seed_others(embedder: BGEEmbedder) -> None:
    def mine(seed: int) -> list[list[str]]:
        found = mine_hard_negatives(
            EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(0, 30), negatives=5, seed=seed
        )
        return [example.neg for example in found]

    first = mine(7)
    assert mine(7) == first
    assert mine(8) != first


def test_fill_up_when_the_range_holds_too_few(embedder: BGEEmbedder) -> None:
    ranking = _ranking(embedder, QUERIES, CORPUS_TEXTS)
    mined = mine_hard_negatives(EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(37, 60), negatives=9, seed=3)
    for example, out, ranks in zip(EXAMPLES, mined, ranking, strict=True):
        in_range = _eligible(example, [CORPUS_TEXTS[i] for i in ranks[37:]])
        assert len(in_range) < 9
        assert len(out.neg) == 9
        assert len(set(out.neg)) == 9
        assert set(in_range) <= set(out.neg)  # the range first, then the fill-up
        assert set(out.neg) <= set(_eligible(example, CORPUS_TEXTS))
    # The fill-up is sampled too: another seed fills up with other texts.
    again = mine_hard_negatives(EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(37, 60), negatives=9, seed=4)
    assert [set(example.neg) for example in again] != [set(example.neg) for example in mined]
    # A range past the end of the pool: all fill-up.
    beyond = mine_hard_negatives(EXAMPLES, embedder, corpus=CORPUS_TEXTS, sample_range=(100, 200), negatives=4)
    assert [len(example.neg) for example in beyond] == [4, 4, 4, 4]


def test_without_corpus_the_pool_is_the_examples_texts(embedder: BGEEmbedder) -> None:
    own = sorted({text for example in EXAMPLES for text in (*example.pos, *example.neg)})
    mined = mine_hard_negatives(EXAMPLES, embedder, sample_range=(0, 10), negatives=3)
    for example, out in zip(EXAMPLES, mined, strict=True):
        assert len(out.neg) == 3
        assert set(out.neg) <= set(_eligible(example, own))
    # 7 texts in all: examples with 2 positives can get at most 5 negatives, with a warning.
    with pytest.warns(UserWarning, match=r"2 of 4 examples got fewer than 6 negatives: the candidate pool \(7 texts\)"):
        short = mine_hard_negatives(EXAMPLES, embedder, sample_range=(0, 10), negatives=6)
    assert [len(example.neg) for example in short] == [5, 6, 5, 6]


def test_one_output_per_input_in_order_fields_kept_and_old_scores_dropped(embedder: BGEEmbedder) -> None:
    inputs = [*EXAMPLES, EXAMPLES[0]]
    mined = mine_hard_negatives(inputs, embedder, corpus=CORPUS_TEXTS, negatives=2, sample_range=(0, 20))
    assert len(mined) == len(inputs)
    for example, out in zip(inputs, mined, strict=True):
        assert (out.query, out.pos, out.prompt, out.type) == (example.query, example.pos, example.prompt, example.type)
        assert out.pos_scores is None
        assert out.neg_scores is None
    assert mined[1].neg != [POOL[2]]
    assert mine_hard_negatives([], embedder, corpus=CORPUS_TEXTS) == []


def _scores(reranker: BGEReranker, query: str, texts: list[str]) -> dict[str, float]:
    return dict(zip(texts, reranker.score(query, texts, normalize=True), strict=True))


def test_reranker_drops_candidates_above_the_threshold_and_writes_aligned_scores(
    embedder: BGEEmbedder, reranker: BGEReranker
) -> None:
    table = [_scores(reranker, example.query, CORPUS_TEXTS) for example in EXAMPLES]
    values = sorted(table[0].values())
    threshold = (values[len(values) // 2] + values[len(values) // 2 + 1]) / 2  # between two scores: no ties
    assert values[0] <= threshold <= values[-1]
    mined = mine_hard_negatives(
        EXAMPLES,
        embedder,
        corpus=CORPUS_TEXTS,
        sample_range=(0, 8),
        negatives=5,
        reranker=reranker,
        max_negative_score=threshold,
        seed=4,
    )
    ranking = _ranking(embedder, QUERIES, CORPUS_TEXTS)
    dropped_any = False
    for example, out, scores, ranks in zip(EXAMPLES, mined, table, ranking, strict=True):
        assert len(out.neg) == 5
        assert len(set(out.neg)) == 5
        assert set(out.neg) <= set(_eligible(example, CORPUS_TEXTS))
        assert all(scores[text] <= threshold for text in out.neg)
        # Every in-range candidate under the threshold is taken before the fill-up.
        under = [t for t in _eligible(example, [CORPUS_TEXTS[i] for i in ranks[:8]]) if scores[t] <= threshold]
        dropped_any |= len(under) < len(_eligible(example, [CORPUS_TEXTS[i] for i in ranks[:8]]))
        assert set(under[:5]) <= set(out.neg) or len(under) > 5
        assert out.neg_scores == pytest.approx([scores[text] for text in out.neg], abs=1e-5)
        assert out.pos_scores == pytest.approx(reranker.score(example.query, example.pos, normalize=True), abs=1e-5)
    assert dropped_any


def test_reranker_without_threshold_only_adds_scores(embedder: BGEEmbedder, reranker: BGEReranker) -> None:
    options: dict[str, Any] = {"corpus": CORPUS_TEXTS, "sample_range": (2, 30), "negatives": 4, "seed": 9}
    plain = mine_hard_negatives(EXAMPLES, embedder, **options)
    scored = mine_hard_negatives(EXAMPLES, embedder, reranker=reranker, progress=True, **options)
    assert [example.neg for example in scored] == [example.neg for example in plain]
    for example in scored:
        assert example.neg_scores is not None
        assert example.pos_scores is not None
        assert len(example.neg_scores) == len(example.neg)
        assert len(example.pos_scores) == len(example.pos)
        assert all(0.0 < score < 1.0 for score in [*example.pos_scores, *example.neg_scores])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"sample_range": (10, 10)},
            ValueError,
            r"sample_range must be \(start, end\) with 0 <= start < end, got \(10, 10\)",
        ),
        ({"sample_range": (-1, 5)}, ValueError, r"got \(-1, 5\)"),
        ({"sample_range": "10-100"}, ValueError, r"got '10-100'"),
        ({"negatives": 0}, ValueError, r"negatives must be >= 1, got 0"),
        ({"negatives": 2.5}, TypeError, r"negatives must be an int, got float: 2.5"),
        ({"seed": "1"}, TypeError, r"seed must be an int, got str"),
        ({"max_negative_score": 0.5}, ValueError, r"max_negative_score needs a reranker.*got 0.5"),
        ({"corpus": []}, ValueError, r"corpus must hold at least one text, got \[\]"),
        ({"corpus": "one text"}, TypeError, r"corpus must be a sequence of strings, got a single str"),
        ({"reranker": "bge-reranker-base"}, TypeError, r"reranker must be a BGEReranker or None, got str"),
        ({"progress": 1}, TypeError, r"progress must be True or False, got 1"),
    ],
)
def test_arguments_are_checked_up_front(
    tiny_st_embedder_path: str, options: dict[str, Any], error: type[Exception], message: str
) -> None:
    embedder = BGEEmbedder(tiny_st_embedder_path, device="cpu")
    with pytest.raises(error, match=message):
        mine_hard_negatives(EXAMPLES, embedder, **options)
    assert REGISTRY.load_count == 0


def test_bad_examples_embedder_and_threshold_are_named(embedder: BGEEmbedder, reranker: BGEReranker) -> None:
    with pytest.raises(TypeError, match=r"examples\[1\] must be a TrainingExample, got dict"):
        mine_hard_negatives([EXAMPLES[0], {"query": "q", "pos": ["p"]}], embedder)  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"embedder must be a BGEEmbedder, got str"):
        mine_hard_negatives(EXAMPLES, "bge-small")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_negative_score must be a number from 0 to 1.*got 1.5"):
        mine_hard_negatives(EXAMPLES, embedder, reranker=reranker, max_negative_score=1.5)
    broken = TrainingExample("q", ["p"])
    object.__setattr__(broken, "pos", [])
    with pytest.raises(ValueError, match=r"examples\[1\] has no positive \(pos is empty\): 'q'"):
        mine_hard_negatives([EXAMPLES[0], broken], embedder)


def test_progress_bars_do_not_change_the_result(embedder: BGEEmbedder, capsys: pytest.CaptureFixture[str]) -> None:
    options: dict[str, Any] = {"corpus": CORPUS_TEXTS, "sample_range": (0, 30), "negatives": 3, "seed": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = mine_hard_negatives(EXAMPLES, embedder, **options)
        loud = mine_hard_negatives(EXAMPLES, embedder, progress=True, **options)
    assert loud == quiet
    assert "Searching" in capsys.readouterr().err
