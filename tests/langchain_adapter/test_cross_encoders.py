from __future__ import annotations

import copy

import pytest
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import Document
from pydantic import ValidationError

from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.langchain import BGECrossEncoder, BGERerank

Q1 = "Where do giant pandas live?"
Q2 = "What is the capital of France?"
PAIRS = [
    (Q1, "The giant panda is a bear species endemic to China."),
    (Q2, "Paris is the capital of France."),
    (Q1, "Mitochondria are the powerhouse of the cell."),
    (Q2, "The giant panda is a bear species endemic to China."),
    (Q1, "Paris is the capital of France."),
]


@pytest.fixture
def encoder(tiny_reranker_path: str) -> BGECrossEncoder:
    return BGECrossEncoder(model_name=tiny_reranker_path, device="cpu")


def test_is_a_cross_encoder(encoder: BGECrossEncoder) -> None:
    assert isinstance(encoder, BaseCrossEncoder)
    assert REGISTRY.load_count == 0


def test_scores_in_input_order_equal_the_core(encoder: BGECrossEncoder, tiny_reranker_path: str) -> None:
    core = BGEReranker(tiny_reranker_path, device="cpu")
    expected = [core.score(query, [passage])[0] for query, passage in PAIRS]
    scores = encoder.score(PAIRS)
    assert scores == pytest.approx(expected, abs=1e-6)
    assert all(type(s) is float for s in scores)
    # the same passage scores differently under another query: scores are not mixed up
    assert scores[3] != pytest.approx(scores[0], abs=1e-4)
    assert scores == core.score_pairs(PAIRS)


def test_one_core_call_for_all_pairs(encoder: BGECrossEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[tuple[str, str]]] = []
    original = encoder.client.score_pairs

    def score_pairs(pairs: list[tuple[str, str]]) -> list[float]:
        calls.append(list(pairs))
        return original(pairs)

    monkeypatch.setattr(encoder.client, "score_pairs", score_pairs)
    encoder.score(PAIRS)
    assert calls == [PAIRS]


def test_empty_pairs(encoder: BGECrossEncoder) -> None:
    assert encoder.score([]) == []
    assert REGISTRY.load_count == 0


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ("query", "text_pairs must be a list of"),
        ([(Q1, "a"), (Q1,)], r"text_pairs\[1\] must be a \(query, passage\) pair"),
        ([(Q1, "a"), "ab"], r"text_pairs\[1\] must be a \(query, passage\) pair"),
        ([(Q1, None)], r"text_pairs\[0\] must hold two strings"),
    ],
)
def test_bad_pairs_are_named(encoder: BGECrossEncoder, pairs: object, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        encoder.score(pairs)  # type: ignore[arg-type]


def test_settings_reach_the_core(tiny_reranker_path: str) -> None:
    encoder = BGECrossEncoder(model_name=tiny_reranker_path, device="cpu", normalize=False, windows=False)
    assert (encoder.client.normalize, encoder.client.windows) == (False, False)
    core = BGEReranker(tiny_reranker_path, device="cpu", normalize=False)
    assert encoder.score(PAIRS[:1]) == core.score(Q1, [PAIRS[0][1]])
    with pytest.raises(ValidationError, match=r"batch_size\n  Input should be greater than 0 \[.*input_value=0,"):
        BGECrossEncoder(batch_size=0)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("batch_size", 0, "greater than 0"),
        ("max_length", -1, "greater than 0"),
        ("device", "gpu", "device must be a torch device string"),
        ("use_fp16", True, "use_fp16=True needs a CUDA or MPS device, got device='cpu'"),
        ("max_query_length", 64, "max_query_length must be < max_length=64, got 64"),
    ],
)
def test_rejected_assignment_keeps_the_previous_value(
    tiny_reranker_path: str, field: str, value: object, match: str
) -> None:
    encoder = BGECrossEncoder(model_name=tiny_reranker_path, device="cpu", max_length=64)
    before = encoder.model_dump()
    client = encoder.client
    with pytest.raises(ValidationError, match=match):
        setattr(encoder, field, value)
    assert encoder.model_dump() == before
    assert encoder.client is client
    core = BGEReranker(tiny_reranker_path, device="cpu", max_length=64)
    assert encoder.score(PAIRS[:2]) == core.score_pairs(PAIRS[:2])


def test_with_cross_encoder_reranker(encoder: BGECrossEncoder, tiny_reranker_path: str) -> None:
    docs = [Document(p, metadata={"i": i}) for i, p in enumerate(sorted({p for _, p in PAIRS}))]
    before = copy.deepcopy(docs)
    result = CrossEncoderReranker(model=encoder, top_n=2).compress_documents(docs, Q1)
    ours = BGERerank(model_name=tiny_reranker_path, device="cpu", top_n=2).compress_documents(docs, Q1)
    assert [d.page_content for d in result] == [d.page_content for d in ours]
    assert docs == before
    assert REGISTRY.load_count == 1  # the compressor and the cross-encoder share the weights
