"""FlagEmbedding's model tables (``inference/embedder/model_mapping.py``, ``reranker/model_mapping.py``) as data.

Copied from FlagEmbedding 1.4.0 (commit 7ed43d67ec03fbe5c31c0992dbfa941fb1860549, MIT licence): the
same names, model classes, pooling methods, ``trust_remote_code`` flags and query instruction
formats. The classes are named by :class:`EmbedderModelClass` / :class:`RerankerModelClass`;
:mod:`bge_integrations.compat.auto` says which of them this package runs. One row is ours:
``bge-large-zh-noinstruct``, a BGE v1 model that FlagEmbedding's table lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType


class EmbedderModelClass(Enum):
    """FlagEmbedding's embedder classes, by the names ``FlagAutoModel.from_finetuned(model_class=...)`` takes.

    Example:
        >>> EmbedderModelClass("encoder-only-base")
        <EmbedderModelClass.ENCODER_ONLY_BASE: 'encoder-only-base'>

    """

    ENCODER_ONLY_BASE = "encoder-only-base"
    ENCODER_ONLY_M3 = "encoder-only-m3"
    DECODER_ONLY_BASE = "decoder-only-base"
    DECODER_ONLY_ICL = "decoder-only-icl"
    DECODER_ONLY_PSEUDO_MOE = "decoder-only-pseudo_moe"


class RerankerModelClass(Enum):
    """FlagEmbedding's reranker classes, by the names ``FlagAutoReranker.from_finetuned(model_class=...)`` takes.

    Example:
        >>> RerankerModelClass("encoder-only-base")
        <RerankerModelClass.ENCODER_ONLY_BASE: 'encoder-only-base'>

    """

    ENCODER_ONLY_BASE = "encoder-only-base"
    DECODER_ONLY_BASE = "decoder-only-base"
    DECODER_ONLY_LAYERWISE = "decoder-only-layerwise"
    DECODER_ONLY_LIGHTWEIGHT = "decoder-only-lightweight"


DEFAULT_POOLING = MappingProxyType(
    {
        EmbedderModelClass.ENCODER_ONLY_BASE: "cls",
        EmbedderModelClass.ENCODER_ONLY_M3: "cls",
        EmbedderModelClass.DECODER_ONLY_BASE: "last_token",
        EmbedderModelClass.DECODER_ONLY_ICL: "last_token",
        EmbedderModelClass.DECODER_ONLY_PSEUDO_MOE: "last_token",
    }
)
"""Each class's ``DEFAULT_POOLING_METHOD``: the pooling used when model_class is given without one."""


@dataclass(frozen=True)
class EmbedderEntry:
    """One row of FlagEmbedding's ``AUTO_EMBEDDER_MAPPING`` (its ``EmbedderConfig``)."""

    model_class: EmbedderModelClass
    pooling_method: str
    trust_remote_code: bool = False
    query_instruction_format: str = "{}{}"


@dataclass(frozen=True)
class RerankerEntry:
    """One row of FlagEmbedding's ``AUTO_RERANKER_MAPPING`` (its ``RerankerConfig``)."""

    model_class: RerankerModelClass
    trust_remote_code: bool = False


_BASE, _M3 = EmbedderModelClass.ENCODER_ONLY_BASE, EmbedderModelClass.ENCODER_ONLY_M3
_LLM, _ICL = EmbedderModelClass.DECODER_ONLY_BASE, EmbedderModelClass.DECODER_ONLY_ICL
_INSTRUCT_QUERY = "Instruct: {}\nQuery: {}"
_TAGGED = "<instruct>{}\n<query>{}"


def _cls(trust_remote_code: bool = False) -> EmbedderEntry:
    return EmbedderEntry(_BASE, "cls", trust_remote_code)


def _mean(query_instruction_format: str = "{}{}") -> EmbedderEntry:
    return EmbedderEntry(_BASE, "mean", query_instruction_format=query_instruction_format)


def _llm(query_instruction_format: str, trust_remote_code: bool = False) -> EmbedderEntry:
    return EmbedderEntry(_LLM, "last_token", trust_remote_code, query_instruction_format)


BGE_EMBEDDERS = MappingProxyType(
    {
        "bge-reasoner-embed-qwen3-8b-0923": _llm(_INSTRUCT_QUERY),
        "bge-code-v1": _llm(_TAGGED, trust_remote_code=True),
        "bge-en-icl": EmbedderEntry(_ICL, "last_token", query_instruction_format=_TAGGED),
        "bge-multilingual-gemma2": _llm(_TAGGED),
        "bge-m3": EmbedderEntry(_M3, "cls"),
        "bge-large-en-v1.5": _cls(),
        "bge-base-en-v1.5": _cls(),
        "bge-small-en-v1.5": _cls(),
        "bge-large-zh-v1.5": _cls(),
        "bge-base-zh-v1.5": _cls(),
        "bge-small-zh-v1.5": _cls(),
        "bge-large-en": _cls(),
        "bge-base-en": _cls(),
        "bge-small-en": _cls(),
        "bge-large-zh": _cls(),
        "bge-base-zh": _cls(),
        "bge-small-zh": _cls(),
        "bge-large-zh-noinstruct": _cls(),  # ours: a BGE v1 model missing from FlagEmbedding's table
    }
)
"""FlagEmbedding's ``BGE_MAPPING`` (plus bge-large-zh-noinstruct)."""

AUTO_EMBEDDER_MAPPING = MappingProxyType(
    {
        **BGE_EMBEDDERS,
        # Qwen3-Embedding
        "Qwen3-Embedding-0.6B": _llm("Instruct: {}\nQuery:{}"),
        "Qwen3-Embedding-4B": _llm("Instruct: {}\nQuery:{}"),
        "Qwen3-Embedding-8B": _llm("Instruct: {}\nQuery:{}"),
        # E5
        "e5-mistral-7b-instruct": _llm(_INSTRUCT_QUERY),
        "e5-large-v2": _mean(),
        "e5-base-v2": _mean(),
        "e5-small-v2": _mean(),
        "multilingual-e5-large-instruct": _mean(_INSTRUCT_QUERY),
        "multilingual-e5-large": _mean(),
        "multilingual-e5-base": _mean(),
        "multilingual-e5-small": _mean(),
        "e5-large": _mean(),
        "e5-base": _mean(),
        "e5-small": _mean(),
        # GTE
        "gte-Qwen2-7B-instruct": _llm(_INSTRUCT_QUERY, trust_remote_code=True),
        "gte-Qwen2-1.5B-instruct": _llm(_INSTRUCT_QUERY, trust_remote_code=True),
        "gte-Qwen1.5-7B-instruct": _llm(_INSTRUCT_QUERY, trust_remote_code=True),
        "gte-multilingual-base": _cls(trust_remote_code=True),
        "gte-large-en-v1.5": _cls(trust_remote_code=True),
        "gte-base-en-v1.5": _cls(trust_remote_code=True),
        "gte-large": _mean(),
        "gte-base": _mean(),
        "gte-small": _mean(),
        "gte-large-zh": _cls(),
        "gte-base-zh": _cls(),
        "gte-small-zh": _cls(),
        # SFR, Linq, BCE
        "SFR-Embedding-2_R": _llm(_INSTRUCT_QUERY),
        "SFR-Embedding-Mistral": _llm(_INSTRUCT_QUERY),
        "Linq-Embed-Mistral": _llm(_INSTRUCT_QUERY),
        "bce-embedding-base_v1": _cls(),
    }
)
"""FlagEmbedding's ``AUTO_EMBEDDER_MAPPING``: model name (the last part of the path or hub id) to its row."""

_RERANKER = RerankerEntry(RerankerModelClass.ENCODER_ONLY_BASE)

AUTO_RERANKER_MAPPING = MappingProxyType(
    {
        "bge-reranker-base": _RERANKER,
        "bge-reranker-large": _RERANKER,
        "bge-reranker-v2-m3": _RERANKER,
        "bge-reranker-v2-gemma": RerankerEntry(RerankerModelClass.DECODER_ONLY_BASE),
        "bge-reranker-v2-minicpm-layerwise": RerankerEntry(RerankerModelClass.DECODER_ONLY_LAYERWISE),
        "bge-reranker-v2.5-gemma2-lightweight": RerankerEntry(RerankerModelClass.DECODER_ONLY_LIGHTWEIGHT),
        # Named with their organisation, so the lookup by last path part never finds them (as in FlagEmbedding).
        "jinaai/jina-reranker-v2-base-multilingual": _RERANKER,
        "Alibaba-NLP/gte-multilingual-reranker-base": _RERANKER,
        "maidalun1020/bce-reranker-base_v1": _RERANKER,
        "jinaai/jina-reranker-v1-turbo-en": _RERANKER,
    }
)
"""FlagEmbedding's ``AUTO_RERANKER_MAPPING``: model name to its row."""


def support_native_bge_model_list() -> list[str]:
    """The BGE embedders of the table, as FlagEmbedding's function of this name lists them.

    Example:
        >>> "bge-m3" in support_native_bge_model_list()
        True

    """
    return list(BGE_EMBEDDERS)


def support_model_list() -> list[str]:
    """Every embedder of the table, as FlagEmbedding's function of this name lists them."""
    return list(AUTO_EMBEDDER_MAPPING)


__all__ = [
    "AUTO_EMBEDDER_MAPPING",
    "AUTO_RERANKER_MAPPING",
    "BGE_EMBEDDERS",
    "DEFAULT_POOLING",
    "EmbedderEntry",
    "EmbedderModelClass",
    "RerankerEntry",
    "RerankerModelClass",
    "support_model_list",
    "support_native_bge_model_list",
]
