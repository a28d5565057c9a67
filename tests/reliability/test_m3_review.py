"""Defects a review of issue 13 (bge-m3) found, each failing before its fix; and probes that passed.

Each test names its finding in the review (F1, F2, ...). Left as they are (see the issue's notes):
an empty encode gives a (0, 0) dense array without loading the model; compat windows keep a
released model alive until the next call re-checks it (at most four windows are kept).
"""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bge_integrations import BGEM3Embedder, BGEM3Reranker, ModelUnavailableError

M3 = str(Path(__file__).parents[1] / "data" / "bge-m3-tiny")


@pytest.fixture(scope="module")
def m3() -> BGEM3Embedder:
    return BGEM3Embedder(M3, device="cpu")


# F1: a BGEM3Embedder stops pickling once any async method ran (ModelHandle.__getstate__ drops
# "_coalescer" but not the m3 "_m3_coalescer" cached_property, whose run() is a local closure).
def test_f1_pickles_after_async_encode() -> None:
    m3 = BGEM3Embedder(M3, device="cpu")
    asyncio.run(m3.aencode_documents(["hello world"], outputs="sparse"))
    copy = pickle.loads(pickle.dumps(m3))
    assert (
        copy.embed_sparse_documents(["hello world"])[0].indices == m3.embed_sparse_documents(["hello world"])[0].indices
    )


# F2: BGEM3Reranker accepted every BGEEmbedder setting, and its dense score is the dot product
# of the dense vectors: precision="binary"/"int8" made the ranking garbage, truncate_dim changed it.
# Now refused by name.
@pytest.mark.parametrize("settings", [{"precision": "binary"}, {"precision": "int8"}, {"truncate_dim": 8}])
def test_f2_reranker_refuses_dense_output_shaping(settings: dict[str, Any]) -> None:
    (name,) = settings
    with pytest.raises(ValueError, match=f"{name} does not apply to it"):
        BGEM3Reranker(M3, device="cpu", **settings)


# F3: compat.BGEM3FlagModel keeps one LoadedEmbedder view (a fresh copy of the Rust tokenizer,
# TextFeatures, BatchRunner) per distinct max_length, forever: a caller varying max_length leaks.
def test_f3_compat_windows_are_bounded() -> None:
    from bge_integrations.compat import BGEM3FlagModel

    model = BGEM3FlagModel(M3, devices="cpu", use_fp16=False)
    for length in range(8, 72):
        model.encode(["hello world"], max_length=length)
    assert len(model._windows) <= 4, f"{len(model._windows)} windows held"


# F4: a head file that cannot be fetched (offline, local_files_only, a network error) is taken
# for "the checkpoint has no head": LocalEntryNotFoundError subclasses EntryNotFoundError. The
# REGISTRY then keeps heads with sparse=None until release(), and the MissingHeadError says
# "it is not a bge-m3 checkpoint" for BAAI/bge-m3 itself.
def test_f4_unreachable_head_file_is_not_a_missing_head(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from bge_integrations.core import m3_model

    def offline(*args: object, **kwargs: object) -> str:
        raise LocalEntryNotFoundError("cannot reach the hub and the file is not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    config = BGEM3Embedder("BAAI/bge-m3", device="cpu").config
    with pytest.raises(ModelUnavailableError, match=r"sparse_linear\.pt is neither in the local Hugging Face cache"):
        m3_model._head_file(config, m3_model.SPARSE_HEAD, token=None)


# ---- probes that pass (what was checked and found fine) -----------------------------------


def test_ok_5mb_text_is_read_from_a_prefix(m3: BGEM3Embedder) -> None:
    import time

    big = "word " * 1_000_000
    start = time.perf_counter()
    out = m3.encode_documents([big], outputs="sparse,colbert")
    assert time.perf_counter() - start < 20
    assert out.colbert is not None
    assert len(out.colbert[0]) == m3._loaded().max_length - 1  # CLS dropped, window full


def test_ok_cache_mixes_no_outputs_roles_or_rows(tmp_path: Path, m3: BGEM3Embedder) -> None:
    texts = ["alpha beta", "gamma", "alpha beta", "delta epsilon zeta", ""]
    ref = m3.encode_documents(texts, outputs="dense,sparse,colbert")
    cached = BGEM3Embedder(M3, device="cpu", cache_dir=str(tmp_path))
    cached.encode_documents(["gamma", "delta epsilon zeta"], outputs="sparse")
    cached.encode_queries(["alpha beta"], outputs="colbert")
    for _ in range(2):  # first: partly stored; second: all stored
        out = cached.encode_documents(texts, outputs="dense,sparse,colbert")
        assert out.sparse is not None
        assert out.colbert is not None
        assert out.dense is not None
        for a, b in zip(out.sparse, ref.sparse or [], strict=True):
            assert a.indices == b.indices
            np.testing.assert_allclose(a.values, b.values, atol=1e-5)
        for x, y in zip(out.colbert, ref.colbert or [], strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)
        assert ref.dense is not None
        np.testing.assert_allclose(out.dense, ref.dense, atol=1e-5)


def test_ok_compat_window_above_load_window_matches_core() -> None:
    from bge_integrations.compat import BGEM3FlagModel

    text = " ".join(f"w{i}" for i in range(200))
    flag = BGEM3FlagModel(M3, devices="cpu", use_fp16=False, passage_max_length=16)
    got = flag.encode([text], max_length=48, return_sparse=True, return_colbert_vecs=True)
    core = BGEM3Embedder(M3, device="cpu", max_length=48).encode_documents([text], outputs="dense,sparse,colbert")
    assert core.dense is not None
    np.testing.assert_allclose(got["dense_vecs"], core.dense, atol=1e-5)
    assert core.colbert is not None
    assert core.sparse is not None
    np.testing.assert_allclose(got["colbert_vecs"][0], core.colbert[0], atol=1e-5)
    assert [int(k) for k in got["lexical_weights"][0]] == list(core.sparse[0].indices)


# F6: warm_up() only asks the registry for the heads; when they are in memory but the shared
# encoder was released (by a BGEEmbedder of the same load key, or by any adapter sharing it),
# warm_up() loads nothing and the first real call pays the load (Haystack's warm_up relies on it).
def test_f6_warm_up_reloads_a_released_shared_encoder() -> None:
    from bge_integrations import BGEEmbedder
    from bge_integrations.core.loading import REGISTRY

    m3 = BGEM3Embedder(M3, device="cpu")
    m3.warm_up()
    dense = BGEEmbedder(M3, device="cpu")
    assert dense.load_key == m3.load_key  # one copy of the weights, as documented
    dense.release()
    m3.warm_up()
    assert REGISTRY.peek(m3.load_key) is not None, "warm_up() left the encoder unloaded"


# F7: the heads lived in the registry under the encoder's kind and model, so loaded_models()
# listed bge-m3 twice (two "embedder" entries of one model); now they are an "m3-heads" entry.
def test_f7_heads_are_not_listed_as_a_second_model() -> None:
    from bge_integrations.core.loading import loaded_models

    m3 = BGEM3Embedder(M3, device="cpu")
    m3.warm_up()
    mine = m3.load_key
    same = [
        k
        for k in loaded_models()
        if (k.kind, k.model, k.device) == (mine.kind, mine.model, mine.device) and set(mine.options) <= set(k.options)
    ]
    assert len(same) == 1, same
