"""The framework-free engine: embedder, reranker, presets, devices and the model registry.

Read in this order: ``presets`` (the BGE family as data) and ``instructions``; ``devices``;
``loading`` (one model per process); ``embedder`` with ``embedding_model``; ``reranker`` with
``pairs`` (windows for long passages) and ``reranking_model``; bge-m3's sparse and ColBERT
outputs in ``m3_embedder`` (with ``m3_model``, ``m3_types``, ``m3_scoring``) and ``m3_reranker``.
"""

from __future__ import annotations

from bge_integrations.core.cache import CacheWarning
from bge_integrations.core.embedder import BGEEmbedder, EmbedderConfig
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION, ZH_QUERY_INSTRUCTION
from bge_integrations.core.loading import (
    LoadKey,
    ModelUnavailableError,
    allow_remote_code,
    clear_model_cache,
    loaded_models,
)
from bge_integrations.core.m3_embedder import BGEM3Embedder
from bge_integrations.core.m3_model import MissingHeadError
from bge_integrations.core.m3_reranker import BGEM3Reranker
from bge_integrations.core.m3_scoring import colbert_score, combined_score, dense_score, lexical_score
from bge_integrations.core.m3_types import M3Embeddings, M3RankedText, SparseEmbedding
from bge_integrations.core.notices import TruncationWarning
from bge_integrations.core.presets import PRESETS, ModelPreset, find_preset
from bge_integrations.core.reranker import BGEReranker, RerankerConfig
from bge_integrations.core.types import RankedText

__all__ = [
    "EN_QUERY_INSTRUCTION",
    "PRESETS",
    "ZH_QUERY_INSTRUCTION",
    "BGEEmbedder",
    "BGEM3Embedder",
    "BGEM3Reranker",
    "BGEReranker",
    "CacheWarning",
    "EmbedderConfig",
    "LoadKey",
    "M3Embeddings",
    "M3RankedText",
    "MissingHeadError",
    "ModelPreset",
    "ModelUnavailableError",
    "RankedText",
    "RerankerConfig",
    "SparseEmbedding",
    "TruncationWarning",
    "allow_remote_code",
    "clear_model_cache",
    "colbert_score",
    "combined_score",
    "dense_score",
    "find_preset",
    "lexical_score",
    "loaded_models",
]
