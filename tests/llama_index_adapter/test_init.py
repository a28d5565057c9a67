"""The package's public names and the install hint when LlamaIndex is missing."""

from __future__ import annotations

import importlib
import sys

import pytest

import bge_integrations.llama_index


def test_public_api() -> None:
    assert set(bge_integrations.llama_index.__all__) == {
        "BGEEmbedding",
        "BGERerank",
        "QUERY_CACHE_COLLECTION",
        "RETRIEVAL_SCORE_KEY",
        "BGEM3SparseEmbedding",
        "BGEM3Rerank",
        "M3_SCORE_KEYS",
        "bge_m3_sparse_fns",
        "reciprocal_rank_fusion",
    }


def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.core", None)
    monkeypatch.delitem(sys.modules, "bge_integrations.llama_index")
    with pytest.raises(ImportError, match=r'pip install "bge-integrations\[llama-index\]"'):
        importlib.import_module("bge_integrations.llama_index")
