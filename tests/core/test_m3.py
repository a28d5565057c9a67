"""BGEM3Embedder and BGEM3Reranker: the three bge-m3 outputs, computed independently here from the raw files.

FlagEmbedding's own outputs on the same checkpoint are compared in tests/core/test_m3_reference.py.
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from bge_integrations import BGEEmbedder, BGEM3Embedder, BGEM3Reranker, MissingHeadError, SparseEmbedding
from bge_integrations.core import m3_model
from bge_integrations.core.loading import REGISTRY
from bge_integrations.core.m3_scoring import (
    check_weights,
    colbert_score,
    combined_score,
    dense_score,
    lexical_score,
)
from bge_integrations.core.m3_types import M3RankedText, check_outputs
from tests.tiny_models import CORPUS

TEXTS = [
    "The giant panda is a bear species endemic to China.",
    "panda panda panda bear",
    "",
    "Paris is the capital and most populous city of France.",
    "zzz qqq ###",
    "为这个句子生成表示以用于检索相关文章：熊猫生活在中国。",
]


def _by_hand(path: str, texts: list[str], *, max_length: int = 512) -> tuple[np.ndarray, list[dict[int, float]], list]:
    """bge-m3's three outputs straight from transformers and the two .pt files, one text at a time."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    sparse = torch.nn.Linear(32, 1)
    sparse.load_state_dict(torch.load(Path(path) / "sparse_linear.pt", weights_only=True))
    colbert = torch.nn.Linear(32, 32)
    colbert.load_state_dict(torch.load(Path(path) / "colbert_linear.pt", weights_only=True))
    special = {tokenizer.cls_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    dense, weights, vectors = [], [], []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**batch).last_hidden_state[0]
            dense.append(torch.nn.functional.normalize(hidden[0], dim=-1).numpy())
            lexical: dict[int, float] = {}
            token_weights = torch.relu(sparse(hidden)).squeeze(-1).tolist()
            for token, weight in zip(batch["input_ids"][0].tolist(), token_weights, strict=True):
                if token not in special and weight > lexical.get(token, 0.0):
                    lexical[token] = weight
            weights.append(lexical)
            vectors.append(torch.nn.functional.normalize(colbert(hidden[1:]), dim=-1).numpy())
    return np.stack(dense), weights, vectors


@pytest.fixture(scope="module")
def by_hand(tiny_m3_path: str) -> tuple[np.ndarray, list[dict[int, float]], list]:
    return _by_hand(tiny_m3_path, TEXTS)


def test_one_pass_gives_the_three_outputs_of_the_formulas(tiny_m3_path: str, by_hand: tuple) -> None:
    dense, weights, vectors = by_hand
    out = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(TEXTS, outputs=["dense", "sparse", "colbert"])
    np.testing.assert_allclose(out.dense, dense, atol=1e-5)
    assert out.sparse is not None
    assert out.colbert is not None
    for ours, theirs in zip(out.sparse, weights, strict=True):
        assert set(ours.indices) == set(theirs)
        for index, value in ours:
            assert value == pytest.approx(theirs[index], abs=1e-5)
            assert value > 0
    for ours, theirs in zip(out.colbert, vectors, strict=True):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert len(out.sparse[2]) == 0  # "": only special tokens, none weighted
    assert out.colbert[2].shape == (1, 32)  # "": EOS only (CLS is never a ColBERT vector)


def test_lexical_weights_keep_the_max_per_token_in_first_weighted_order(tiny_m3_path: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_m3_path)
    sparse = BGEM3Embedder(tiny_m3_path, device="cpu").embed_sparse_documents(["panda panda panda bear"])[0]
    ids = tokenizer("panda panda panda bear")["input_ids"]
    assert len(sparse) < len(set(ids))  # repeated pieces and special tokens collapse/drop
    weighted_order = [i for i in dict.fromkeys(ids) if i in sparse.as_dict()]
    assert list(sparse.indices) == weighted_order


def test_dense_equals_the_dense_embedder_and_shares_its_weights(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    dense = BGEEmbedder(tiny_m3_path, device="cpu")
    out = m3.encode_documents(TEXTS, outputs="dense,sparse")
    assert np.array_equal(out.dense, np.asarray(dense.embed_documents(TEXTS), dtype=np.float32))
    assert np.array_equal(np.asarray(m3.embed_documents(TEXTS), dtype=np.float32), out.dense)
    assert m3.load_key == dense.load_key
    assert REGISTRY.load_count == 2  # the encoder once, the heads once


def test_every_input_gets_one_output_in_order_with_duplicates(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    texts = [TEXTS[1], TEXTS[0], TEXTS[1], "", TEXTS[0]]
    out = m3.encode_queries(texts, outputs=("sparse", "colbert", "dense"))
    assert len(out) == 5
    alone = [m3.encode_queries([text], outputs="dense,sparse,colbert") for text in texts]
    for i, single in enumerate(alone):
        np.testing.assert_allclose(out.dense[i], single.dense[0], atol=1e-6)
        assert out.sparse[i].indices == single.sparse[0].indices
        np.testing.assert_allclose(out.sparse[i].values, single.sparse[0].values, atol=1e-6)
        np.testing.assert_allclose(out.colbert[i], single.colbert[0], atol=1e-6)
    empty = m3.encode_documents([], outputs="sparse")
    assert empty.sparse == []
    assert empty.dense is None
    assert empty.colbert is None


def test_batching_does_not_change_outputs(tiny_m3_path: str) -> None:
    big = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(CORPUS, outputs="dense,sparse,colbert")
    small = BGEM3Embedder(tiny_m3_path, device="cpu", batch_size=1, max_batch_tokens=64).encode_documents(
        CORPUS, outputs="dense,sparse,colbert"
    )
    np.testing.assert_allclose(big.dense, small.dense, atol=1e-6)
    for a, b in zip(big.sparse, small.sparse, strict=True):
        assert a.indices == b.indices
        np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    for a, b in zip(big.colbert, small.colbert, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_truncation_reads_the_window_and_is_counted(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu", max_length=8)
    with pytest.warns(UserWarning, match="truncat"):
        out = m3.encode_documents([CORPUS[1], "a"], outputs="sparse,colbert")
    _dense, weights, vectors = _by_hand(tiny_m3_path, [CORPUS[1]], max_length=8)
    assert out.colbert[0].shape == (7, 32)
    np.testing.assert_allclose(out.colbert[0], vectors[0], atol=1e-5)
    assert set(out.sparse[0].indices) == set(weights[0])
    assert m3.truncated_count == 1


def test_normalize_false_leaves_colbert_vectors_unnormalised(tiny_m3_path: str) -> None:
    raw = BGEM3Embedder(tiny_m3_path, device="cpu", normalize=False).embed_colbert_documents([CORPUS[1]])[0]
    unit = BGEM3Embedder(tiny_m3_path, device="cpu").embed_colbert_documents([CORPUS[1]])[0]
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)


def test_cache_reads_back_every_output_exactly(tiny_m3_path: str, tmp_path: Path, monkeypatch) -> None:
    first = BGEM3Embedder(tiny_m3_path, device="cpu", cache_dir=tmp_path).encode_documents(
        TEXTS, outputs="dense,sparse,colbert"
    )
    calls = []
    real = m3_model.encode_m3

    def spy(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr("bge_integrations.core.m3_embedder.encode_m3", spy)
    again = BGEM3Embedder(tiny_m3_path, device="cpu", cache_dir=tmp_path).encode_documents(
        [*TEXTS, "a new text"], outputs="dense,sparse,colbert"
    )
    assert calls == [["a new text"]]
    assert np.array_equal(again.dense[:-1], first.dense)
    assert again.sparse[:-1] == first.sparse
    for a, b in zip(again.colbert, first.colbert, strict=False):
        assert np.array_equal(a, b)
    # Queries are cached apart from documents, and sparse apart from dense.
    BGEM3Embedder(tiny_m3_path, device="cpu", cache_dir=tmp_path).encode_queries([TEXTS[0]], outputs="sparse")
    assert calls[-1] == [TEXTS[0]]


def test_missing_head_is_a_clear_error_never_a_random_head(tiny_m3_path: str, tmp_path: Path) -> None:
    folder = tmp_path / "bge-m3-no-sparse"
    shutil.copytree(tiny_m3_path, folder)
    (folder / "sparse_linear.pt").unlink()
    m3 = BGEM3Embedder(str(folder), device="cpu")
    assert len(m3.embed_colbert_documents(["a"])[0]) > 0
    assert m3.encode_documents(["a"], outputs="dense").dense.shape == (1, 32)
    with pytest.raises(MissingHeadError, match=r"has no sparse_linear\.pt, so no sparse output"):
        m3.embed_sparse_documents(["a"])


def test_a_head_of_the_wrong_width_is_refused(tiny_m3_path: str, tmp_path: Path) -> None:
    folder = tmp_path / "bge-m3-bad-head"
    shutil.copytree(tiny_m3_path, folder)
    torch.save(torch.nn.Linear(16, 1).state_dict(), folder / "sparse_linear.pt")
    with pytest.raises(ValueError, match=r"sparse_linear\.pt .* not a Linear head on the encoder's 32-wide states"):
        BGEM3Embedder(str(folder), device="cpu").embed_sparse_documents(["a"])


def test_async_matches_sync(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")

    async def main():
        return await asyncio.gather(
            m3.aencode_documents(TEXTS[:3], outputs="dense,colbert"),
            m3.aembed_sparse_query(TEXTS[3]),
            m3.aembed_sparse_documents(TEXTS),
        )

    docs, query, sparse = asyncio.run(main())
    sync = m3.encode_documents(TEXTS[:3], outputs="dense,colbert")
    np.testing.assert_allclose(docs.dense, sync.dense, atol=1e-6)
    assert docs.sparse is None
    assert query == m3.embed_sparse_query(TEXTS[3])
    assert sparse == m3.embed_sparse_documents(TEXTS)


def test_lexical_tokens_decode_each_id(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    sparse = m3.embed_sparse_documents([CORPUS[2]])[0]
    tokenizer = AutoTokenizer.from_pretrained(tiny_m3_path)
    assert m3.lexical_tokens(sparse) == {tokenizer.decode([i]): w for i, w in sparse}
    assert m3.vocab_size == len(tokenizer)
    assert max(sparse.indices) < m3.vocab_size


def test_settings_are_checked_before_loading(tiny_m3_path: str) -> None:
    with pytest.raises(ValueError, match="backend must be 'torch' or 'auto', got 'onnx'"):
        BGEM3Embedder(tiny_m3_path, backend="onnx")
    assert BGEM3Embedder(tiny_m3_path, backend="auto", device="cpu").config.backend == "torch"  # its fastest here
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    with pytest.raises(ValueError, match=r"outputs must be among .* got .lexical."):
        m3.encode_documents(["a"], outputs=["dense", "lexical"])
    with pytest.raises(ValueError, match="at least one"):
        m3.encode_documents(["a"], outputs=[])
    with pytest.raises(TypeError, match="texts"):
        m3.embed_sparse_documents("not a list")  # type: ignore[arg-type]
    assert REGISTRY.load_count == 0
    assert check_outputs(("colbert", "dense")) == ("dense", "colbert")


def test_pickled_embedder_computes_the_same(tiny_m3_path: str) -> None:
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    before = m3.embed_sparse_documents(TEXTS)
    copy = pickle.loads(pickle.dumps(m3))
    assert copy.embed_sparse_documents(TEXTS) == before
    assert m3.release() is True
    assert REGISTRY.loaded_keys() == []


def test_sparse_embedding_type() -> None:
    sparse = SparseEmbedding.from_dict({"7": 0.5, "3": 0.25})
    assert sparse.indices == (7, 3)
    assert sparse.as_dict() == {7: 0.5, 3: 0.25}
    assert list(sparse) == [(7, 0.5), (3, 0.25)]
    with pytest.raises(ValueError, match="same length"):
        SparseEmbedding(indices=(1, 2), values=(0.1,))
    with pytest.raises(ValueError, match="distinct"):
        SparseEmbedding(indices=(1, 1), values=(0.1, 0.2))


def test_scoring_functions() -> None:
    assert lexical_score({"1": 0.5, "2": 0.5}, SparseEmbedding((2, 3), (0.4, 9.0))) == pytest.approx(0.2)
    assert lexical_score({}, {"1": 1.0}) == 0.0
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    p = np.array([[0.6, 0.8], [-1.0, 0.0]], dtype=np.float32)
    assert colbert_score(q, p) == pytest.approx((0.6 + 0.8) / 2)
    # MaxSim over the passage's real tokens only: a negative best stays negative.
    assert colbert_score(np.array([[-1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.0)
    assert colbert_score(np.array([[-1.0, 0.0]]), np.array([[1.0, 0.0]])) == pytest.approx(-1.0)
    assert dense_score([1.0, 0.0], [0.5, 0.5]) == 0.5
    assert combined_score(1.0, 0.0, 0.0, weights=(1, 1, 2)) == 0.25
    with pytest.raises(ValueError, match="shapes"):
        colbert_score(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="three numbers"):
        check_weights((1, 2))
    with pytest.raises(ValueError, match="non-negative"):
        check_weights((1, -1, 1))
    with pytest.raises(ValueError, match="not all be 0"):
        check_weights((0, 0, 0))
    with pytest.raises(TypeError, match="lexical weights"):
        lexical_score([1, 2], {})  # type: ignore[arg-type]


def test_reranker_ranks_by_the_weighted_score_with_components(tiny_m3_path: str) -> None:
    reranker = BGEM3Reranker(tiny_m3_path, device="cpu", weights=(0.4, 0.2, 0.4))
    query = "Where do pandas live?"
    ranked = reranker.rank(query, CORPUS)
    assert sorted(item.index for item in ranked) == list(range(len(CORPUS)))
    assert all(isinstance(item, M3RankedText) for item in ranked)
    m3 = BGEM3Embedder(tiny_m3_path, device="cpu")
    q = m3.encode_queries([query], outputs="dense,sparse,colbert")
    docs = m3.encode_documents(CORPUS, outputs="dense,sparse,colbert")
    for item in ranked:
        i = item.index
        assert item.text == CORPUS[i]
        assert item.dense == pytest.approx(dense_score(q.dense[0], docs.dense[i]), abs=1e-6)
        assert item.sparse == pytest.approx(lexical_score(q.sparse[0], docs.sparse[i]), abs=1e-6)
        assert item.colbert == pytest.approx(colbert_score(q.colbert[0], docs.colbert[i]), abs=1e-6)
        assert item.score == pytest.approx(combined_score(item.dense, item.sparse, item.colbert), abs=1e-9)
    scores = [item.score for item in ranked]
    assert scores == sorted(scores, reverse=True)
    assert reranker.score(query, CORPUS) == pytest.approx(reranker.score_pairs([(query, d) for d in CORPUS]))
    assert reranker.rank(query, CORPUS, top_n=2) == ranked[:2]
    assert [c["combined"] for c in reranker.score_components(query, CORPUS)] == reranker.score(query, CORPUS)
    assert asyncio.run(reranker.arank(query, CORPUS, top_n=3)) == ranked[:3]
    assert reranker.rank(query, []) == []
    assert REGISTRY.load_count == 2  # the reranker's encoder is the embedder's


def test_reranker_weights_change_the_order_as_they_should(tiny_m3_path: str) -> None:
    query = "capital of France"
    dense_only = BGEM3Reranker(tiny_m3_path, device="cpu", weights=(1, 0, 0)).rank(query, CORPUS)
    assert [item.score for item in dense_only] == [item.dense for item in dense_only]
    sparse_only = BGEM3Reranker(tiny_m3_path, device="cpu", weights=(0, 1, 0)).rank(query, CORPUS)
    assert [item.score for item in sparse_only] == pytest.approx([item.sparse for item in sparse_only])
    with pytest.raises(ValueError, match="weights"):
        BGEM3Reranker(tiny_m3_path, weights=(1, 1))


def test_sentence_transformers_own_loaders_put_random_heads_on_the_checkpoint(tiny_m3_path: str) -> None:
    """SparseEncoder and MultiVectorEncoder load bge-m3 without its heads: what they return is not bge-m3's."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    ours = BGEM3Embedder(tiny_m3_path, device="cpu").encode_documents(CORPUS[:3], outputs="sparse,colbert")
    outputs = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        sparse = SparseEncoder(tiny_m3_path, device="cpu").encode(CORPUS[:3], convert_to_tensor=True).to_dense()
        outputs.append(sparse)
    assert sparse.shape[1] != BGEM3Embedder(tiny_m3_path, device="cpu").vocab_size  # not lexical weights at all
    assert not torch.allclose(outputs[0], outputs[1])  # a fresh random head on every load
    torch.manual_seed(0)
    vectors = MultiVectorEncoder(tiny_m3_path, device="cpu").encode(CORPUS[:3])
    assert vectors[0].shape[-1] != ours.colbert[0].shape[-1] or not np.allclose(
        np.asarray(vectors[0]), ours.colbert[0], atol=1e-3
    )
