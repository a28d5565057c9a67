"""The framework-free engine: embedder, reranker, presets, devices and the model registry.

Read in this order: ``presets`` (the BGE family as data) and ``instructions``; ``devices``;
``loading`` (one model per process); ``embedder`` with ``embedding_model``; ``reranker`` with
``pairs`` (windows for long passages) and ``reranking_model``.
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
from bge_integrations.core.notices import TruncationWarning
from bge_integrations.core.presets import PRESETS, ModelPreset, find_preset
from bge_integrations.core.reranker import BGEReranker, RerankerConfig
from bge_integrations.core.types import RankedText

__all__ = [
    "EN_QUERY_INSTRUCTION",
    "PRESETS",
    "ZH_QUERY_INSTRUCTION",
    "BGEEmbedder",
    "BGEReranker",
    "CacheWarning",
    "EmbedderConfig",
    "LoadKey",
    "ModelPreset",
    "ModelUnavailableError",
    "RankedText",
    "RerankerConfig",
    "TruncationWarning",
    "allow_remote_code",
    "clear_model_cache",
    "find_preset",
    "loaded_models",
]
